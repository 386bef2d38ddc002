"""One device resolver for the whole package (featurizers, Sinkhorn, evaluation, GradEx).

Rules: ``"auto"`` is the first CUDA device when torch sees one, else the CPU (never MPS: a
deliberate choice, so "auto" gives the same numbers on a laptop as on a CPU server); ``"cpu"``;
``"cuda"`` or ``"cuda:N"`` only when torch sees that CUDA device; ``"mps"`` only when torch's MPS
backend is available. Anything else, or a device that is not there, is a one-line
``TunesiftError`` naming the Python parameter ``device`` (the CLI translates it to its flag).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tunesift.errors import TunesiftError

if TYPE_CHECKING:
    import torch

DEVICE_FORMS = ("auto", "cpu", "cuda", "cuda:N", "mps")
_SYNTAX = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")


def check_device(device: str) -> str:
    """``device`` unchanged when it is one of ``DEVICE_FORMS``; a ``TunesiftError`` otherwise.

    Checks the spelling only (no torch import): configurations call it in ``validate``.
    """
    if not isinstance(device, str) or not _SYNTAX.fullmatch(device):
        raise TunesiftError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}",
            param="device",
        )
    return device


def resolve_device(device: str = "auto") -> torch.device:
    """The ``torch.device`` that ``device`` names, after checking that torch can use it.

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    TunesiftError
        A misspelt device, or a CUDA/MPS device that torch does not see.
    """
    import torch

    check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TunesiftError(
                f"device {device!r} was asked for, but torch sees no CUDA device", param="device"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise TunesiftError(
                f"device {device!r} was asked for, but torch sees "
                f"{torch.cuda.device_count()} CUDA device(s)",
                param="device",
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise TunesiftError(
            "device 'mps' was asked for, but torch's MPS backend is unavailable", param="device"
        )
    return torch.device(device)
