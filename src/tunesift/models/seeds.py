"""Seeded random streams and a run scope: every stochastic step takes its numbers from one seed.

A run derives independent ``torch.Generator`` streams from its seed, one per purpose, as
``seed * 1000 + offset``; the offsets below are the registry of purposes, so two parts of the
package never draw from the same stream by accident. ``run_scope`` sets torch's CPU thread count
(bitwise-repeatable numbers on the CPU need the same count) and forks torch's global RNGs, so a
run that seeds them (dropout, a head's initialization) leaves the caller's state untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# offsets that derive independent streams from one seed (never reuse one for another purpose)
SHUFFLE = 1  # batch order of a training stage
MLM_MASK = 2  # masked-LM masks
HEAD_SHUFFLE = 3  # batch order of the masked-LM head warm-up
HEAD_MASK = 4  # masks of the head warm-up
LORA_INIT = 5  # LoRA's A matrices (torch's global RNG, seeded just before peft draws them)


def stream_seed(seed: int, offset: int) -> int:
    """The seed of stream ``offset`` of run ``seed``."""
    return int(seed) * 1000 + int(offset)


def generator(seed: int, offset: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for stream ``offset`` of run ``seed``."""
    import torch

    g = torch.Generator()
    g.manual_seed(stream_seed(seed, offset))
    return g


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (restored afterwards); None changes nothing."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def run_scope(threads: int | None, device: torch.device) -> Iterator[None]:
    """Set torch's CPU threads and fork its global RNGs (CPU, and ``device`` when CUDA)."""
    import torch

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch_threads(threads):
        yield
