"""Writing outputs safely: atomic writes, and the guard that keeps a command from eating its input.

Two promises, each kept in one place so that every command keeps them the same way:

* **Atomic**: ``atomic_open`` (and ``write_text_atomic``, ``write_bytes_atomic``,
  ``write_json_atomic``) writes a temporary file in the destination's folder, flushes and fsyncs
  it, renames it over the destination with ``os.replace`` and fsyncs the folder. A crash, a full
  disk or an exception in the middle leaves the previous file (or none) and no temporary file;
  never a partial one. A failure is an ``OutputError`` naming the file.
* **Guarded**: ``check_outputs`` runs before any work and refuses an output path that is one of
  the command's inputs (after resolving relative paths and symlinks, and hard links by device and
  inode), or lies inside an input folder, or is given twice, or sits where nothing can be written.
  It never lets a command replace a file that tunesift did not write: tunesift records what it
  wrote in a small ledger, ``.tunesift-outputs.json``, in the output's folder (name, size and
  modification time); an existing file that the ledger does not list, or that changed since, is
  refused unless ``overwrite=True`` (the CLI's ``--overwrite``). Rerunning a command onto its own
  earlier output therefore just replaces it, while a user's file is never lost silently.
  Commands that write a folder (``bench``, ``tasks``, ``corpora build``) claim it in the ledger:
  a new or empty folder, or one claimed before, is theirs; a folder holding other files is refused
  unless ``overwrite`` (and even then only the files the command writes are replaced).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tunesift.errors import OutputError

#: The ledger of what tunesift wrote in a folder (hidden, one per folder written into).
LEDGER = ".tunesift-outputs.json"
_TMP_SUFFIX = ".tmp"

PathLike = str | Path


# ---- atomic writes -----------------------------------------------------------------------------


def _tmp_name(path: Path) -> Path:
    # hidden, unique per process and call: two writers of one file never share a temporary file
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}")


def _fsync(fd: int) -> None:
    os.fsync(fd)  # one indirection, so that tests can make exactly this step fail


def fsync_dir(folder: PathLike) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or str(exc)


@contextlib.contextmanager
def atomic_open(
    path: PathLike,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    ``mode`` is ``"w"`` (text) or ``"wb"``. If the body raises, or the write, fsync or rename
    fails, the temporary file is removed and ``path`` keeps its previous content (or stays
    absent); an ``OSError`` is re-raised as an ``OutputError`` naming ``path``. The new file gets
    the permissions a plain ``open`` would give it (0666 less the umask).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes with mode 'w' or 'wb', got {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {path.parent}: {_reason(exc)}", path) from None
    tmp = _tmp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write: {_reason(exc)}", path) from None
    done = False
    try:
        binary = mode == "wb"
        with os.fdopen(
            fd, mode, encoding=None if binary else encoding, newline=None if binary else newline
        ) as fh:
            yield fh
            fh.flush()
            _fsync(fh.fileno())
        os.replace(tmp, path)
        done = True
    except OSError as exc:
        raise OutputError(
            f"cannot write: {_reason(exc)} (the previous file, if any, is unchanged)", path
        ) from None
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    fsync_dir(path.parent)


def write_text_atomic(path: PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see ``atomic_open``); returns ``path``."""
    with atomic_open(path, "w", encoding=encoding, newline="") as fh:
        fh.write(text)
    return Path(path)


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_open``); returns ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json_atomic(path: PathLike, obj: Any, **dumps: Any) -> Path:
    """Write ``obj`` as JSON (``json.dumps(obj, **dumps)`` plus a newline) atomically."""
    return write_text_atomic(path, json.dumps(obj, **dumps) + "\n")


def write_jsonl_atomic(path: PathLike, rows: Iterable[Any], **dumps: Any) -> Path:
    """Write one JSON value per line atomically; ``dumps`` defaults to ``ensure_ascii=False``."""
    dumps.setdefault("ensure_ascii", False)
    with atomic_open(path, "w", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, **dumps) + "\n")
    return Path(path)


# ---- the ledger --------------------------------------------------------------------------------


def _read_ledger(folder: Path) -> dict[str, Any]:
    try:
        obj = json.loads((folder / LEDGER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _write_ledger(folder: Path, ledger: dict[str, Any]) -> None:
    ledger["note"] = "files tunesift wrote here; it replaces only these without --overwrite"
    write_json_atomic(folder / LEDGER, ledger, indent=1, sort_keys=True)


def record_outputs(paths: Iterable[PathLike], command: str = "") -> None:
    """Note in each folder's ledger that tunesift wrote these files (name, size, mtime)."""
    by_folder: dict[Path, list[Path]] = {}
    for p in paths:
        p = Path(p)
        by_folder.setdefault(p.parent, []).append(p)
    for folder, files in by_folder.items():
        ledger = _read_ledger(folder)
        entries = ledger.setdefault("files", {})
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            entries[f.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "command": command}
        _write_ledger(folder, ledger)


def written_by_tunesift(path: PathLike) -> bool:
    """True when ``path`` is a file tunesift wrote and nobody changed since, or lies in a folder
    a tunesift command claimed (see ``check_outputs``)."""
    path = Path(path)
    ledger = _read_ledger(path.parent)
    if ledger.get("claimed_by"):
        return True
    entry = ledger.get("files", {}).get(path.name)
    if not isinstance(entry, dict):
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns


# ---- the guard ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    """A path and the option that gave it, for messages in the caller's language."""

    option: str
    path: Path


def _named(items: Iterable[tuple[str, PathLike | None]]) -> list[Named]:
    return [Named(opt, Path(p)) for opt, p in items if p is not None and str(p) != ""]


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links: same device and inode
    except OSError:
        return False


def _inside(child: Path, folder: Path) -> bool:
    try:
        child.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder_to_be: Path, option: str) -> None:
    """Fail now, not after the work, when nothing can be created where ``folder_to_be`` goes."""
    base = _nearest_existing(folder_to_be)
    if not base.is_dir():
        raise OutputError(f"{option}: cannot write under {base}: it is a file, not a folder")
    probe = base / f".tunesift-probe.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise OutputError(f"{option}: cannot write in {base}: {_reason(exc)}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_outputs(
    *,
    files: Sequence[tuple[str, PathLike | None]] = (),
    folders: Sequence[tuple[str, PathLike | None]] = (),
    inputs: Sequence[tuple[str, PathLike | None]] = (),
    overwrite: bool = False,
    command: str = "tunesift",
) -> None:
    """Refuse, before any work, outputs that would destroy an input or a user's file.

    ``files`` are ``(option, path)`` of the files the command will write, ``folders`` the output
    folders it writes into (give the files it writes there in ``files`` too), ``inputs`` what it
    reads (files or folders; missing ones are left to the readers). Raises ``OutputError`` when
    an output is an input (same path after resolving, or a hard link to it), lies inside an input
    folder, is an existing folder where a file goes, is given twice, cannot be written, or exists
    without having been written by tunesift and ``overwrite`` is false. Claims each output folder
    in its ledger once everything passed.
    """
    outs = _named(files)
    dirs = _named(folders)
    ins = [n for n in _named(inputs) if n.path.exists()]

    def flag(n: Named) -> str:
        return f"{n.option} {n.path}"

    for out in [*dirs, *outs]:  # a whole folder first: its message is the clearer one
        for inp in ins:
            if _same(out.path, inp.path):
                raise OutputError(
                    f"{flag(out)} is also an input ({flag(inp)}): writing it would destroy the "
                    "input; choose another output path"
                )
            if inp.path.is_dir() and _inside(out.path, inp.path):
                raise OutputError(
                    f"{flag(out)} lies inside the input folder {inp.path} ({inp.option}); "
                    "choose an output outside it"
                )
            if out in dirs and inp.path.is_dir() and _inside(inp.path, out.path):
                raise OutputError(
                    f"the input folder {inp.path} ({inp.option}) lies inside the output folder "
                    f"{flag(out)}; choose another output folder"
                )
    for i, a in enumerate(outs):
        for b in outs[i + 1 :]:
            if a.path.resolve() == b.path.resolve():
                raise OutputError(f"{flag(a)} and {flag(b)} name the same file")
        if a.path.is_dir():
            raise OutputError(f"{flag(a)} is a folder; give a file path")
    for d in dirs:
        if d.path.exists() and not d.path.is_dir():
            raise OutputError(f"{flag(d)} is a file; give a folder")
        if not overwrite and d.path.is_dir() and not _claimable(d.path):
            raise OutputError(
                f"{flag(d)} already holds files that tunesift did not write; choose a new or "
                "empty folder, or pass overwrite to write into it anyway",
                param="overwrite",
            )
    for out in outs:
        if overwrite or not out.path.exists() or written_by_tunesift(out.path):
            continue
        raise OutputError(
            f"{flag(out)} already exists and was not written by tunesift (or was changed since); "
            "pass overwrite to replace it, or choose another path",
            param="overwrite",
        )
    for out in outs:
        _probe_writable(out.path.parent, out.option)
    for d in dirs:
        _probe_writable(d.path, d.option)
    for d in dirs:
        _claim(d.path, command)


def _claimable(folder: Path) -> bool:
    ledger = _read_ledger(folder)
    if ledger.get("claimed_by"):
        return True
    return not any(p.name != LEDGER for p in folder.iterdir())


def _claim(folder: Path, command: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder: {_reason(exc)}", folder) from None
    ledger = _read_ledger(folder)
    if not ledger.get("claimed_by"):
        ledger["claimed_by"] = command
        _write_ledger(folder, ledger)


def build_folder_atomic(target: PathLike, build: Callable[[Path], Any], marker: str) -> Path:
    """``build(tmp)`` into a temporary sibling of ``target``, then rename it into place.

    A no-op when ``target/marker`` exists. When another process renamed a finished folder there
    first, theirs is kept; a folder there without ``marker`` (stale, or an older layout) is
    replaced. A failed or interrupted build leaves nothing behind.
    """
    target = Path(target)
    if (target / marker).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # the folder is there and not empty
            if (target / marker).exists():  # another process finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(target)
                os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
