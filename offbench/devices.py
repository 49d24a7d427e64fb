"""Which torch device a command computes on."""

from __future__ import annotations

import torch

from offbench.errors import UsageError


def resolve_device(device: torch.device | str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; asking for CUDA without it is an error. A
    ``torch.device`` is already resolved and comes back as it is."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here; use --device auto or cpu")
    return dev
