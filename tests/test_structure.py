"""The package's shape (issue 13): no import cycle, no layer imports a higher one (the layers of
docs/architecture.md), nobody imports another module's private names, no source file over 600
lines. Read from the source with ``ast``, nothing is imported.

Every import counts, also one inside a function (a lazy import hides a cycle from the
interpreter, not from a reader) and ``from pkg import name`` counts as an import of the submodule
``pkg.name`` when there is one, else of ``pkg`` itself (its ``__init__``). Importing ``a.b.c``
also runs the ``__init__`` of ``a`` and ``a.b``; those implicit edges are not counted, or every
package ``__init__`` that re-exports a submodule would close a cycle with it.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tunesift"
MAX_LINES = 600


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve_from(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(package: Path) -> Iterator[tuple[str, str, str | None, int]]:
    """(importing module, imported module, name or None, line) for every import in the package."""
    modules = module_names(package)
    root = package.name
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == root:
                        yield module, alias.name, None, node.lineno
            elif isinstance(node, ast.ImportFrom):
                source = _resolve_from(module, path, node)
                if source.split(".")[0] != root:
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in modules:
                        yield module, sub, None, node.lineno
                    else:
                        yield module, source, alias.name, node.lineno


def import_graph(package: Path) -> dict[str, set[str]]:
    modules = module_names(package)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for importer, imported, _, _ in imports(package):
        if imported in modules and imported != importer:
            graph[importer].add(imported)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(package: Path) -> list[str]:
    """``file:line: module imports other._name`` for every import of another module's private name,
    and every ``module._name`` attribute read through an imported module."""
    modules = module_names(package)
    found = []
    for importer, imported, name, line in imports(package):
        if name is not None and _private(name) and imported != importer:
            rel = modules[importer].relative_to(package.parent)
            found.append(f"{rel}:{line}: {importer} imports {imported}.{name}")
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        aliases = _module_aliases(tree, importer, path, modules)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
                and aliases[node.value.id] != importer
            ):
                rel = path.relative_to(package.parent)
                found.append(
                    f"{rel}:{node.lineno}: {importer} reads {aliases[node.value.id]}.{node.attr}"
                )
    return sorted(found)


def _module_aliases(
    tree: ast.Module, module: str, path: Path, modules: dict[str, Path]
) -> dict[str, str]:
    """Local names bound to a module of the package (``import a.b as m``, ``from a import b``)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    out[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(module, path, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    out[alias.asname or alias.name] = f"{source}.{alias.name}"
    return out


#: docs/architecture.md's layers, bottom up: a module may import its own layer and those below
LAYERS: dict[str, int] = {
    "_version": 0, "errors": 0, "paths": 0,
    "outputs": 1, "engine": 1, "models": 1,
    "corpus": 2, "corpora": 2, "features": 2, "ot": 2,
    "methods": 3,
    "selection": 4,
    "api": 5, "comparison": 5, "report": 5, "evaluate": 5, "tasks": 5,
    "cli": 6, "__main__": 6, "": 7,  # "": the package __init__
}  # fmt: skip


def upward_imports(package: Path, layers: dict[str, int] = LAYERS) -> list[str]:
    """``importer:line -> imported`` for every import of a higher layer than the importer's."""

    def layer(module: str) -> int:
        parts = module.split(".")
        return layers[parts[1] if len(parts) > 1 else ""]

    return sorted(
        f"{importer}:{line} -> {imported}"
        for importer, imported, _, line in imports(package)
        if layer(imported) > layer(importer)
    )


def long_files(package: Path, limit: int = MAX_LINES) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            out.append(f"{path.relative_to(package.parent)}: {n} lines")
    return out


# --- the package -----------------------------------------------------------------------------------


def test_no_import_cycle():
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_every_module_has_a_layer():
    tops = {name.split(".")[1] if "." in name else "" for name in module_names(PACKAGE)}
    assert tops <= set(LAYERS), f"add to LAYERS (and docs/architecture.md): {tops - set(LAYERS)}"


def test_no_layer_imports_a_higher_one():
    found = upward_imports(PACKAGE)
    assert not found, "imports of a higher layer:\n" + "\n".join(found)


def test_no_module_imports_another_modules_private_names():
    found = private_imports(PACKAGE)
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_no_source_file_over_600_lines():
    found = long_files(PACKAGE)
    assert not found, f"source files over {MAX_LINES} lines:\n" + "\n".join(found)


def test_version_lives_in_a_module_that_imports_nothing():
    import tunesift
    from tunesift._version import __version__

    tree = ast.parse((PACKAGE / "_version.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert tunesift.__version__ == __version__
    upward = [f"{m} line {line}" for m, target, _, line in imports(PACKAGE) if target == "tunesift"]
    assert not upward, "modules importing the package __init__: " + ", ".join(upward)


def test_no_submodule_shadows_a_public_name():
    # `import tunesift.compare` once made `tunesift.compare` the module, not the function (the
    # package's lazy __getattr__ is not consulted for an attribute the import system has set).
    import importlib
    import pkgutil

    import tunesift

    submodules = {m.name for m in pkgutil.iter_modules([str(PACKAGE)])}
    assert not submodules & set(tunesift.__all__)
    for name in sorted(submodules - {"__main__"}):
        importlib.import_module(f"tunesift.{name}")
    assert callable(tunesift.select) and callable(tunesift.compare)


# --- the checker itself, on a tiny package ------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_checker_finds_a_cycle_through_a_lazy_import(tmp_path):
    pkg = _package(
        tmp_path,
        {
            "a.py": "from pkg.b import f\n",
            "b.py": "def f():\n    from pkg import a\n    return a\n",
            "sub/__init__.py": "",
            "sub/c.py": "from .. import a\n",  # relative, one way: no cycle
        },
    )
    assert import_graph(pkg)["pkg.sub.c"] == {"pkg.a"}
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"]]


def test_checker_finds_private_names_imported_or_read_across_modules(tmp_path):
    pkg = _package(
        tmp_path,
        {
            "a.py": "_x = 1\n__version__ = '1'\ndef _own():\n    return _x\n",
            "b.py": "from pkg.a import _x, __version__\n",
            "c.py": "import pkg.a as a\nfrom pkg import a as aa\ny = a._own() + aa._x\n",
            "d.py": "from pkg.a import __version__\n",
        },
    )
    found = private_imports(pkg)
    assert [f.split(": ", 1)[1] for f in found] == [
        "pkg.b imports pkg.a._x",
        "pkg.c reads pkg.a._own",
        "pkg.c reads pkg.a._x",
    ]


def test_checker_finds_an_upward_import(tmp_path):
    pkg = _package(
        tmp_path,
        {"low.py": "def f():\n    from pkg import high\n", "high.py": "from pkg.low import f\n"},
    )
    assert upward_imports(pkg, {"low": 0, "high": 1, "": 2}) == ["pkg.low:2 -> pkg.high"]


@pytest.mark.parametrize("lines, over", [(600, False), (601, True)])
def test_checker_counts_lines(tmp_path, lines, over):
    pkg = _package(tmp_path, {"big.py": "x = 1\n" * lines})
    assert bool(long_files(pkg)) is over
