"""One line that says which machine a benchmark ran on (every recorded figure carries it)."""

from __future__ import annotations

import argparse
import datetime
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


def provenance(script: str, args: argparse.Namespace, machine_note: str = "") -> list[str]:
    """The closing lines of a benchmark's Markdown file: machine, date and the command that wrote it
    (its options as parsed, ``--out`` left out)."""
    command = f"python benchmarks/{script} " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out")
    return [f"Machine: {describe()}{machine_note}.",
            f"Date: {datetime.date.today().isoformat()}. Command: `{command}`.", ""]


def write_table(args: argparse.Namespace, script: str, title: str, intro: str, columns: list[str],
                rows: list[list[str]], machine_note: str = "") -> None:
    """Write (to ``args.out``) and print a benchmark's Markdown file: title, what was measured, one
    table, and its :func:`provenance`."""
    text = "\n".join([f"# {title}", "", intro, "", f"| {' | '.join(columns)} |", "|" + "---|" * len(columns),
                      *(f"| {' | '.join(r)} |" for r in rows), "", *provenance(script, args, machine_note)])
    args.out.write_text(text)
    print(text)
