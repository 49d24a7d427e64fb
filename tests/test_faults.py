"""Fault campaigns at CI size (``benchmarks/faults.py`` runs them large), and, as regular tests,
each failure they found, fixed.

CI sizes and their cost on a 2-core CPU: kill 10 faults (~60 s), chaos 30 fetches (~2 s),
concurrency 2 rounds (~25 s), limits 3 rounds (~30 s), fuzz 300 examples (~10 s).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from offbench.errors import OffbenchError
from tests import campaigns


def assert_clean(fig: campaigns.Figure) -> None:
    print(fig.line())
    assert fig.lost == 0, "\n".join(fig.problems)


# -- the campaigns, small ----------------------------------------------------------------------------
def test_kill_campaign(isolated: Path) -> None:
    """Seed 2 is the one that found seeds killed between their checkpoint files resuming apart."""
    fig = campaigns.kill_campaign(10, isolated / "kill", seed=2)
    assert fig.faults == 10
    assert_clean(fig)


def test_chaos_download_campaign(isolated: Path) -> None:
    fig = campaigns.chaos_campaign(30, isolated / "chaos", seed=0)
    assert fig.faults >= 30 and sum(v for k, v in fig.outcomes.items() if k.startswith("fetched")) >= 20
    assert_clean(fig)


def test_concurrency_campaign(isolated: Path) -> None:
    fig = campaigns.concurrency_campaign(2, isolated / "concurrency", seed=1)  # seed 1: a round of 2, one of 4
    assert_clean(fig)


def test_limits_campaign(isolated: Path) -> None:
    fig = campaigns.limits_campaign(3, isolated / "limits", seed=3)
    assert {k.split(":")[0] for k in fig.outcomes} == {"fsize", "as"}
    assert_clean(fig)


def test_fuzz_campaign(isolated: Path) -> None:
    pytest.importorskip("hypothesis")
    fig = campaigns.fuzz_campaign(isolated / "fuzz", examples=300, seed=0)
    assert fig.outcomes["one-line error"] > 100 and fig.outcomes["imported"] > 20
    assert_clean(fig)


# -- what the kill campaign found ----------------------------------------------------------------------
def small_plans(results: Path, seeds: int = 2):
    from offbench.launch import plan_runs

    return plan_runs(["keytodoor-1k"], ["bc"], seeds, results, ["eval_every=50", "hidden=[16]"], steps=150,
                     eval_episodes=2)


def metrics(plan) -> list[dict]:
    return [json.loads(line) for line in plan.dir.metrics.read_text().splitlines()]


def test_seeds_killed_between_their_checkpoint_files_resume_together_exactly(isolated: Path, monkeypatch) -> None:
    """A group's seeds save one file each; killed after seed 0's file at step 100 and before seed
    1's, seed 0 is at 100 and seed 1 at 50. Both resume from 50 (seed 0 from the checkpoint kept
    before its latest), as one group, and end bit-identical to a run never stopped (before: they
    resumed as two groups, equal only up to float rounding)."""
    import offbench.checkpoints as ckpts
    from offbench.train import execute_seeds

    reference = small_plans(isolated / "reference")
    execute_seeds(reference, "cpu")
    plans = small_plans(isolated / "killed")
    real_save, calls = ckpts.torch.save, []

    def dying_save(obj, f):
        calls.append(obj["step"])
        if obj["step"] == 100 and calls.count(100) == 2:  # the second seed's file at step 100
            raise KeyboardInterrupt
        real_save(obj, f)

    monkeypatch.setattr(ckpts.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        execute_seeds(plans, "cpu")
    monkeypatch.setattr(ckpts.torch, "save", real_save)
    assert [ckpts.checkpoint_step(p.dir.checkpoint) for p in plans] == [100, 50]
    assert ckpts.shared_step([p.dir.checkpoint for p in plans]) == 50
    from offbench.launch.plan import group_seeds

    assert len(group_seeds(plans)) == 1  # one group again
    summaries = execute_seeds(plans, "cpu")
    assert all(s["seeds_together"] == 2 for s in summaries)
    for got, want in zip(plans, reference):
        assert metrics(got) == metrics(want)
        assert not ckpts.previous(got.dir.checkpoint).exists()  # finished: the older checkpoint is gone


def test_a_finished_run_loses_the_lock_and_temporary_files_a_killed_attempt_left(isolated: Path) -> None:
    from offbench.launch import run_plans

    plans = small_plans(isolated / "r", seeds=1)
    run_plans(plans, "cpu", workers=1)
    run = plans[0].dir
    host, dead = socket.gethostname(), 2**22 + 17  # above Linux's largest pid: no such process
    run.lock.write_text(json.dumps({"host": host, "pid": dead, "token": "dead", "since": 0}))
    (run.root / f".summary.json.@{host}@{dead}.abcd1234.tmp").write_text("{")
    live = run.root / f".config.json.@{host}@{os.getpid()}.efgh5678.tmp"  # a writer still at work: kept
    live.write_text("{")
    outcome = run_plans(plans, "cpu", workers=1)
    assert len(outcome.skipped) == 1
    assert not run.lock.exists() and list(run.root.glob(".*.tmp")) == [live]


def test_records_are_written_with_the_umasks_permissions(isolated: Path) -> None:
    """Atomic writes went through mkstemp's 0600: results a group could not read."""
    from offbench.paths import UMASK, write_json_atomic

    path = isolated / "x.json"
    write_json_atomic(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~UMASK


def test_a_run_waits_for_another_process_running_it_then_takes_its_result(isolated: Path) -> None:
    """Two `offbench run` of the same runs: before, the second failed every run it found locked."""
    args = campaigns.offbench_cmd("run", "--algo", "bc", "--env", "keytodoor-1k", "--seeds", "2", "--workers", "1",
                                  "--threads", "1", "--steps", "150", "--set", "eval_every=50",
                                  "--results", str(isolated / "r"))
    trace = isolated / "trace"
    env = campaigns.child_env(OFFBENCH_TRACE=str(trace))
    procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert set(campaigns.trained(trace).values()) == {1}


# -- what the limits campaign found --------------------------------------------------------------------
def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """torch's writer reports a full disk as ``RuntimeError: [enforce fail ...] unexpected pos``,
    which reached the user as an internal error."""
    import offbench.checkpoints as ckpts
    from tests.test_algorithms import toy_dataset
    from tests.test_fidelity_corl import build

    algo = build("bc", "hopper-medium", [0], {"hidden": "[8]"}, toy_dataset())
    path = tmp_path / "checkpoint.pt"
    rng = [np.random.default_rng(0)]
    ckpts.save_checkpoints([path], algo, 10, rng)
    kept = path.read_bytes()

    def full(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 190848 vs 190740")

    monkeypatch.setattr(ckpts.torch, "save", full)
    with pytest.raises(OffbenchError, match=r"cannot write .*checkpoint.pt \(the write failed\): disk full") as e:
        ckpts.save_checkpoints([path], algo, 20, rng)
    assert "\n" not in str(e.value) and path.read_bytes() == kept and not list(tmp_path.glob(".*.tmp"))


def test_a_cache_file_unreadable_for_want_of_memory_is_not_called_damaged(tmp_path: Path) -> None:
    """Under an address-space limit, HDF5's gzip filter fails and h5py says the read failed: the
    error said "delete it and fetch again" about a good file."""
    code = """
import resource, sys
from pathlib import Path
from offbench.data import store
from offbench.errors import OffbenchError
import numpy as np
path = Path(sys.argv[1])
arrays = {"observations": np.random.default_rng(0).normal(size=(200_000, 8)).astype(np.float32),
          "actions": np.zeros((200_000, 2), np.float32), "rewards": np.zeros(200_000, np.float32),
          "terminals": np.zeros(200_000, bool), "timeouts": np.zeros(200_000, bool), "episode_starts": np.array([0])}
store.write(path, arrays, {})
vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (2 << 20), resource.RLIM_INFINITY))
try:
    store.read(path)
except OffbenchError as e:
    print(e)
"""
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.hdf5")], capture_output=True, text=True,
                       env=campaigns.child_env(), timeout=120)
    assert "out of memory reading it" in p.stdout and "(the file is kept)" in p.stdout, p.stdout + p.stderr
    assert (tmp_path / "big.hdf5").is_file()


def test_out_of_memory_in_a_run_is_one_line_naming_it(isolated: Path, monkeypatch) -> None:
    import offbench.train as train

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(train, "_execute", no_memory)
    with pytest.raises(OffbenchError, match=r"keytodoor-1k/bc/seed-0: out of memory; free memory or run fewer"):
        train.execute_seeds(small_plans(isolated / "r", seeds=1), "cpu")


# -- what the fuzz campaign found ----------------------------------------------------------------------
def registry_error(tmp_path: Path, monkeypatch, text: str | bytes) -> str:
    from offbench.data import cache

    path = tmp_path / "datasets.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setenv("OFFBENCH_DATASETS", str(path))
    with pytest.raises(OffbenchError) as e:
        cache.fetch("x")
    assert "\n" not in str(e.value)
    return str(e.value)


ENTRY = ('[x]\ndomain = "mujoco"\nsource = "{source}"\nenv = "Hopper-v4"\nmax_episode_steps = {steps}\n'
         'target_returns = [1.0]\nbase_url = "http://127.0.0.1:9/"\nfile = "x.hdf5"\n')


@pytest.mark.parametrize(("text", "message"), [
    (ENTRY.format(source="d4rl", steps='"Ä"'), r"max_episode_steps must be an integer, got 'Ä'"),
    (ENTRY.format(source="d4rl", steps=-3), "max_episode_steps must be >= 1"),
    (ENTRY.format(source="d4rl", steps=1000).replace("[1.0]", '["X"]'), "target_returns must be a list of numbers"),
    (ENTRY.format(source="dqn_replay", steps=1000), "lacks 'transitions', which source 'dqn_replay' needs"),
    (b"[x]\ndomain = \"\xd9\"\n", "not UTF-8 text"),
])
def test_registry_entries_of_the_wrong_shape_are_one_line_errors(tmp_path: Path, monkeypatch, text, message) -> None:
    """Found by the fuzz campaign as ValueError, KeyError and UnicodeDecodeError tracebacks."""
    assert message in registry_error(tmp_path, monkeypatch, text)


def pendulum_npz(path: Path, **changes) -> Path:
    arrays = {**campaigns._pendulum(), **changes}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: pendulum_npz(d / "a.npz", observations=np.asarray(0.5, np.float32)), "'observations' is a single value"),
    (lambda d: pendulum_npz(d / "b.npz", observations=np.full((125, 3), np.inf, np.float32)),
     "'observations' holds NaN or infinit"),
    (lambda d: pendulum_npz(d / "c.npz", actions=np.zeros((125, 1), np.complex64)), "has dtype complex64, expected real"),
])
def test_importers_refuse_values_that_are_not_data(isolated: Path, tmp_path: Path, make, message) -> None:
    from offbench.data.register import register_dataset

    with pytest.raises(OffbenchError, match=message):
        register_dataset("mine", make(tmp_path), "Pendulum-v1")
    assert not (isolated / "cache" / "local-datasets.toml").exists()


def test_an_npz_declaring_more_rows_than_memory_is_refused(isolated: Path, tmp_path: Path) -> None:
    from offbench.data.register import register_dataset

    path = tmp_path / "huge.npz"
    campaigns._huge_npz(path, "actions", campaigns._pendulum())
    with pytest.raises(OffbenchError, match="declares more data than memory holds"):
        register_dataset("mine", path, "Pendulum-v1")


def test_a_damaged_npy_header_in_a_replay_checkpoint_is_one_line(tmp_path: Path) -> None:
    """A flipped byte in the header's dict made numpy's parser raise tokenize.TokenError."""
    import gzip

    from offbench.data.sources.dqn_replay import NpyStream

    path = tmp_path / "$store$_action_ckpt.0.gz"
    header = b"\x93NUMPY\x01\x00v\x00{'descr': '<i4', 'fortran_order': False, 'shape': (3,), "
    with gzip.open(path, "wb") as f:
        f.write(header + b" " * (118 - len(header)) + b"\n" + np.zeros(3, np.int32).tobytes())
    with pytest.raises(OffbenchError, match="not a gzip-compressed .npy file"):
        NpyStream(path)


def test_a_damaged_minari_file_is_one_line(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("minari")
    from offbench.data.register import register_dataset

    monkeypatch.setenv("OFFBENCH_HOME", str(tmp_path / "home"))
    fuzzer = campaigns.Fuzzer(tmp_path / "work", campaigns.Figure("x"))
    damaged = tmp_path / "minari"
    import shutil

    shutil.copytree(fuzzer.minari_dir, damaged)
    data = next(damaged.rglob("main_data.hdf5"))
    data.write_bytes(b"\0" * 8 + data.read_bytes()[8:])  # its HDF5 signature gone
    with pytest.raises(OffbenchError, match="minari cannot read"):
        register_dataset("mine", damaged, "Pendulum-v1")


def test_the_campaign_harness_sees_a_write_through_a_link(tmp_path: Path) -> None:
    """The fuzz campaign's check can fail: a file written through a link outside is reported."""
    fig = campaigns.Figure("x")
    fuzzer = campaigns.Fuzzer.__new__(campaigns.Fuzzer)
    fuzzer.work, fuzzer.fig, fuzzer.count = tmp_path, fig, 0
    fuzzer.outside = tmp_path / "outside"
    fuzzer.outside.mkdir()
    before = fuzzer.snapshot()
    time.sleep(0.01)
    (fuzzer.outside / "written.bin").write_bytes(b"x")
    assert set(fuzzer.snapshot()) - set(before) == {str(fuzzer.outside / "written.bin")}


def test_a_thread_that_cannot_start_is_one_line(isolated: Path) -> None:
    """Under a memory limit the run lock's heartbeat thread could not start: an internal error."""
    code = """
import sys, threading
from offbench.cli import main
def refuse(self):
    raise RuntimeError("can't start new thread")
threading.Thread.start = refuse
sys.argv = ["offbench", *sys.argv[1:]]
main()
"""
    p = subprocess.run([sys.executable, "-c", code, "run", "--algo", "random", "--env", "keytodoor-1k", "--workers",
                        "1", "--results", str(isolated / "r")], capture_output=True, text=True,
                       env=campaigns.child_env(), timeout=300)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and "cannot start a thread" in lines[0], p.stderr


# -- what the hour-long fuzz run found -------------------------------------------------------------------
def test_an_npz_member_with_an_unknown_compression_method_is_one_line(isolated: Path, tmp_path: Path) -> None:
    """zipfile raises NotImplementedError for a damaged compression-method field."""
    from offbench.data.register import register_dataset

    path = pendulum_npz(tmp_path / "a.npz")
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # the first central-directory entry, whose method zipfile reads
    data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(OffbenchError, match="not a readable .npz"):
        register_dataset("mine", path, "Pendulum-v1")


def test_a_name_with_a_newline_stays_on_one_line() -> None:
    from offbench.errors import unknown

    assert "\n" not in str(unknown("dataset source", "bad\nname", ["d4rl", "minari"]))


@pytest.mark.parametrize(("payload", "message"), [(b"", "damaged or truncated|truncated"),
                                                  (np.arange(3, dtype=np.int64), "expected one integer")])
def test_a_damaged_add_count_in_a_replay_checkpoint_is_one_line(tmp_path: Path, payload, message) -> None:
    """A truncated scalar raised EOFError; an array where dopamine stores one count, ValueError."""
    import gzip

    from offbench.data.sources.dqn_replay import NpyStream
    from tests.upstream import write_npy_gz

    path = tmp_path / "add_count_ckpt.0.gz"
    if isinstance(payload, bytes):  # a scalar's header, its 8 bytes cut off inside the gzip stream
        write_npy_gz(path, np.array(7, np.int64))
        path.write_bytes(path.read_bytes()[:-12])
        with pytest.raises(OffbenchError, match=message):
            with NpyStream(path) as s:
                s.read_all()
        return
    write_npy_gz(path, payload)
    with gzip.open(path) as f:
        assert f.read()  # a valid file, only of the wrong shape
    from offbench.data.sources import dqn_replay

    with pytest.raises(OffbenchError, match=message):
        dqn_replay.checked_count(path)
