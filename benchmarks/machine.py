"""One line that says which machine a benchmark ran on (every recorded figure carries it)."""

from __future__ import annotations

import os
import platform

import torch


def describe(device: torch.device | None = None) -> str:
    """CPU model, cores, the instruction set torch's CPU kernels use, torch and its threads, GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device is not None and device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
    else:
        gpu = "no GPU used" if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads, {gpu}")
