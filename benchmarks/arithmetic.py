"""How much arithmetic a gradient step does, and how fast this device can do it at best.

Shared by ``throughput.py`` and ``d3rlpy_throughput.py`` (which runs in d3rlpy's own virtual
environment, so this module needs nothing but torch). Together the two give a ceiling: a step
of F floating-point operations in matrix products cannot take less than F / peak seconds, whatever
else it does, so a library's steps/s is at most peak / F.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

#: Matrix-product shapes (M, K, N) the default configs multiply: batch 256 through 256-wide layers,
#: CQL's 7,680 sampled state-action rows, DT's 64 x 60 tokens through 128 -> 512 layers.
SHAPES = ((256, 256, 256), (7680, 256, 256), (3840, 128, 512), (3840, 512, 128))


def flops_per_step(step: Callable[[], Any], steps: int = 2) -> float:
    """Floating-point operations of the matrix products in one call of ``step`` (attention too
    where it is written as matrix products; torch counts none for its fused CPU attention),
    counted by torch's FlopCounterMode over ``steps`` untimed calls (an actor updating every
    other step is counted at its average)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        for _ in range(steps):
            step()
    return counter.get_total_flops() / steps


def peak_matmul_rate(device: torch.device, seconds: float = 0.5) -> float:
    """The best float32 matrix-product rate (FLOP/s) this device reaches on :data:`SHAPES`."""
    best = 0.0
    for m, k, n in SHAPES:
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        out = torch.empty(m, n, device=device)
        for _ in range(3):
            torch.mm(a, b, out=out)
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(10):
                torch.mm(a, b, out=out)
            if device.type == "cuda":
                torch.cuda.synchronize()
            calls += 10
        best = max(best, 2 * m * k * n * calls / (time.perf_counter() - start))
    return best
