"""`run --log`: TensorBoard event files and W&B runs (offline) carry what metrics.jsonl records."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from offbench.results import read_metrics
from tests.test_cli import offbench, one_line_error

RUN = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--eval-episodes", "2", "--set", "eval_every=50"]


def tensorboard_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def logged(run: Path, kind: str, key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in read_metrics(run / "metrics.jsonl") if r["kind"] == kind]


def test_tensorboard_holds_every_logged_value_also_after_a_resume(isolated: Path) -> None:
    """TensorBoard stores scalars as float32, so each value equals the log's rounded to float32.
    The run is killed after its first checkpoint and resumed: what the interrupted attempt logged
    after the checkpoint is purged, so every step appears once."""
    pytest.importorskip("tensorboard")
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    results = isolated / "r"
    args = [*RUN, "--steps", "3000", "--results", str(results), "--log", "tensorboard", "--workers", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "offbench", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(results.glob("*/*/*/seed-0/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # some steps past the checkpoint, logged and then redone
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = next(results.glob("*/*/*/seed-0"))
    assert not (run / "summary.json").exists(), "the run finished before it could be killed"
    assert offbench(*args).returncode == 0
    scalars = tensorboard_scalars(run)
    for tag, kind, key in (("train/loss", "train", "loss"), ("eval/score", "eval", "score")):
        expected = [(step, float(np.float32(v))) for step, v in logged(run, kind, key)]
        assert scalars[tag] == expected, tag


def wandb_history(run: Path) -> tuple[str, list[dict]]:
    """The run id and history rows of the W&B offline run under ``run``, read from its transaction
    log: W&B's header, then LevelDB-log records (32 KiB blocks; chunk types full, first, middle,
    last) each holding one protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run.glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, records, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            records.append(pending + chunk)
            pending = b""
        elif kind in (2, 3):
            pending += chunk
    history = []
    for raw in records:
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
    return path.stem.removeprefix("run-"), history


def test_wandb_offline_run_holds_every_logged_value(isolated: Path) -> None:
    pytest.importorskip("wandb")
    results = isolated / "r"
    p = offbench(*RUN, "--steps", "200", "--results", str(results), "--log", "wandb", env={"WANDB_MODE": "offline"})
    assert p.returncode == 0, p.stderr
    assert "wandb:" not in p.stdout + p.stderr  # W&B's console notices only with --verbose
    run = next(results.glob("*/*/*/seed-0"))
    run_id, history = wandb_history(run)
    assert run_id == f"{run.parent.name}-0"  # stable: a resumed run continues the same W&B run
    train = [(h["_step"], h["train/loss"]) for h in history if "train/loss" in h]
    evals = [(h["_step"], h["eval/score"]) for h in history if "eval/score" in h]
    assert train == logged(run, "train", "loss") and evals == logged(run, "eval", "score")


def test_loggers_bad_input_is_one_line(isolated: Path, tmp_path: Path) -> None:
    line = one_line_error(offbench(*RUN, "--steps", "2", "--log", "mlflow"), 2)
    assert "--log mlflow" in line and "tensorboard, wandb" in line
    pytest.importorskip("wandb")
    no_account = {"WANDB_MODE": "online", "WANDB_API_KEY": "", "HOME": str(tmp_path), "NETRC": str(tmp_path / "none")}
    line = one_line_error(offbench(*RUN, "--steps", "2", "--log", "wandb", env=no_account), 2)
    assert "wandb login" in line and "WANDB_MODE=offline" in line
    assert not (isolated / "results").exists()
