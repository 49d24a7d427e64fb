"""Randomized fault campaigns: N faults injected at random, each outcome checked, one figure.

Each campaign takes its size ``n`` and a seed, and returns a :class:`Figure` (faults injected,
outcomes by kind, runs or files lost, seconds). The tests (``tests/test_faults.py``) run them at
a size CI affords; ``benchmarks/faults.py`` runs them large and writes ``benchmarks/faults.md``.
Everything runs on this machine: real ``offbench`` processes killed with SIGKILL, a loopback HTTP
server misbehaving on purpose, real resource limits.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Fields of a run's summary that describe how it was executed, not what it computed: the time it
#: took, and how many seeds shared its last process (a seed resumed alone after training with
#: another says 1).
TIMING = {"train_seconds", "seeds_together"}


@dataclass
class Figure:
    """What a campaign did and what came of it."""

    campaign: str
    faults: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # each a lost run or a broken promise, in words

    def fail(self, what: str) -> None:
        self.lost += 1
        self.problems.append(what)

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return f"{self.campaign}: {self.faults} faults ({kinds}); lost {self.lost}; {self.seconds:.0f} s"


def offbench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "offbench", *args]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of an ``offbench`` child: this one's, the repository first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def group_gone(pgid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``proc`` (started in its own session), its whole group killed on the way out."""
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- what a finished run left behind -------------------------------------------------------------
def run_records(results: Path) -> dict[str, dict[str, Any]]:
    """Per run directory (relative to ``results``): its metrics lines and summary, parsed; an
    unreadable record raises (that is a finding)."""
    out = {}
    for summary in sorted(results.glob("*/*/*/seed-*/summary.json")):
        run = summary.parent
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        json.loads((run / "config.json").read_text())
        out[str(run.relative_to(results))] = {
            "metrics": metrics,
            "summary": {k: v for k, v in json.loads(summary.read_text()).items() if k not in TIMING}}
    return out


def leftovers(results: Path) -> list[str]:
    """Locks and temporary files a finished tree should not hold."""
    return sorted(str(p.relative_to(results)) for p in results.rglob("*")
                  if p.name.endswith((".lock", ".tmp")) or ".tmp" in p.name)


def checkpoints_load(results: Path) -> list[str]:
    """The checkpoints that do not load (each a finding)."""
    from offbench.checkpoints import load_checkpoint

    bad = []
    for ckpt in results.rglob("checkpoint.pt"):
        try:
            load_checkpoint(ckpt)
        except Exception as e:  # noqa: BLE001  (any failure to load is what is counted)
            bad.append(f"{ckpt}: {type(e).__name__}: {e}")
    return bad


# -- 1. kill campaign ------------------------------------------------------------------------------
#: A small seed-batched run: two seeds in one process, an evaluation and a checkpoint every 100
#: steps, so that training, evaluations, checkpoint writes and summary writes all occur in a few
#: seconds of its life; one torch thread, so that its arithmetic does not depend on the load.
KILL_RUN = ("run", "--algo", "bc", "--env", "keytodoor-1k", "--seeds", "2", "--workers", "1", "--threads", "1",
            "--steps", "600", "--eval-episodes", "3", "--set", "eval_every=100")
#: The same run as tasks of submitit's local executor (Slurm's code path, on this machine): one
#: task per seed group, one CPU each.
KILL_RUN_SLURM = ("run", "--algo", "bc", "--env", "keytodoor-1k", "--seeds", "2", "--steps", "600",
                  "--eval-episodes", "3", "--set", "eval_every=100", "--launcher", "slurm", "--slurm-cluster", "local")
PHASES = ("eval", "checkpoint", "summary")


def trace_lines(path: Path, start: int) -> list[list[str]]:
    """The markers written from byte ``start`` of the trace on (one attempt's, whichever of its
    processes trains: the command itself, or a task a launcher started)."""
    if not path.exists():
        return []
    with open(path, "rb") as f:
        f.seek(start)
        return [line.split() for line in f.read().decode().splitlines() if line.strip()]


def phase_at_kill(lines: list[list[str]]) -> str:
    """Where a killed process was: inside a phase (its begin without its end), training (after
    the training loop began), or starting (before: imports, data, locks)."""
    if not lines:
        return "starting"
    last = lines[-1]
    _, _, name, edge, _ = last
    if edge == "begin" and name != "train":
        return name
    return "training"


def start_run(args: tuple[str, ...], results: Path, trace: Path, extra_env: dict[str, str] | None = None
              ) -> subprocess.Popen:
    with open(trace.with_suffix(".err"), "a") as err:  # the child's own copy stays open
        return subprocess.Popen(offbench_cmd(*args, "--results", str(results)), stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True, cwd=ROOT,
                                env=child_env(OFFBENCH_TRACE=str(trace), **(extra_env or {})))


def kill_at(proc: subprocess.Popen, trace: Path, target: str, rng: random.Random, budget_s: float,
            start: int = 0) -> bool:
    """SIGKILL ``proc``'s group at a random moment (``target`` "time": uniformly within
    ``budget_s``) or just after it enters phase ``target`` (a random 0-3 ms later); False if it
    finished first."""
    if target == "time":
        deadline = time.monotonic() + rng.uniform(0.0, budget_s)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            time.sleep(0.002)
    else:
        goal = rng.randint(1, 3)  # one of its first few occurrences
        while len([x for x in trace_lines(trace, start) if x[2] == target and x[3] == "begin"]) < goal:
            if proc.poll() is not None:
                return False
            time.sleep(0.0005)
        time.sleep(rng.uniform(0.0, 0.003))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def kill_campaign(n: int, work: Path, seed: int = 0, per_trial: tuple[int, int] = (1, 3),
                  run_args: tuple[str, ...] = KILL_RUN) -> Figure:
    """``n`` SIGKILLs of ``offbench run`` at random moments (a quarter uniformly in time, the rest
    just inside an evaluation, a checkpoint write or a summary write), over trials of 1-3 kills
    each followed by an uninterrupted resume; every trial's records must equal those of a run
    never interrupted, parse, load, leave no process and no lock behind."""
    fig, rng, t0 = Figure("kill"), random.Random(seed), time.monotonic()
    reference = work / "reference"
    p = subprocess.run(offbench_cmd(*run_args, "--results", str(reference)), capture_output=True, text=True,
                       cwd=ROOT, env=child_env(), timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"the reference run failed: {p.stderr.strip()[-500:]}")
    expected = run_records(reference)
    duration = time.monotonic() - t0
    trial = 0
    while fig.faults < n:
        trial += 1
        results, trace = work / f"trial-{trial}", work / f"trial-{trial}.trace"
        for _ in range(min(rng.randint(*per_trial), n - fig.faults)):
            target = rng.choice(("time", *PHASES, *PHASES))
            start = trace.stat().st_size if trace.exists() else 0
            with reaped(start_run(run_args, results, trace)) as proc:
                if not kill_at(proc, trace, target, rng, duration, start):
                    continue  # it finished first: nothing killed
                fig.faults += 1
                fig.outcomes[f"killed {phase_at_kill(trace_lines(trace, start))}"] += 1
                if not group_gone(proc.pid):
                    fig.fail(f"trial {trial}: a process of the killed group survived")
        resume = subprocess.run(offbench_cmd(*run_args, "--results", str(results)), capture_output=True,
                                text=True, cwd=ROOT, env=child_env(), timeout=600)
        check_trial(fig, f"trial {trial}", resume, results, expected)
    fig.seconds = time.monotonic() - t0
    return fig


def check_trial(fig: Figure, name: str, resume: subprocess.CompletedProcess, results: Path,
                expected: dict[str, dict[str, Any]]) -> None:
    if resume.returncode != 0:
        fig.fail(f"{name}: the resume exited {resume.returncode}: {resume.stderr.strip()[-300:]}")
        return
    try:
        got = run_records(results)
    except (OSError, ValueError) as e:
        fig.fail(f"{name}: an unreadable record: {e}")
        return
    if got.keys() != expected.keys():
        fig.fail(f"{name}: runs {sorted(got)} instead of {sorted(expected)}")
    for run, records in expected.items():
        if run in got and got[run] != records:
            fig.fail(f"{name}: {run} differs from the uninterrupted run")
    for bad in checkpoints_load(results):
        fig.fail(f"{name}: {bad}")
    for left in leftovers(results):
        fig.fail(f"{name}: left behind {left}")


# -- 2. chaos downloads ----------------------------------------------------------------------------
def chaos_entry(url: str, sha256: str) -> str:
    """A registry entry for the campaigns' hopper file at ``url``, its sha256 pinned."""
    from tests.test_sources import D4RL_ENTRY

    return (D4RL_ENTRY.format(name="chaos", url=url, file="gym_mujoco_v2/hopper_medium-v2.hdf5")
            + f'file_sha256 = "{sha256}"\n')
#: How often the server misbehaves each way (the rest of the time it serves the file).
CHAOS_WEIGHTS = {"ok": 3, "cut": 2, "500": 1, "503": 1, "drip": 1, "long-length": 1, "short-length": 1,
                 "ignore-range": 1, "other-file": 1}


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def chaos_campaign(n: int, work: Path, seed: int = 0, attempts: int = 8) -> Figure:
    """``n`` fetches of a pinned D4RL file from a loopback server that, on each request, cuts the
    body at a random byte, answers 500 or 503, drips it slowly, lies about its Content-Length,
    ignores Range, or serves another file of the same size (weights :data:`CHAOS_WEIGHTS`). Each
    fetch is retried up to ``attempts`` times, as its error says to; every failed attempt must be
    one line naming the URL, the cache must never hold a file other than the source, and a fetch
    that ends must give the source's arrays."""
    import hashlib

    import numpy as np

    from offbench.data import cache
    from offbench.errors import OffbenchError
    from tests.upstream import CHAOS, d4rl_arrays, serve, write_d4rl

    fig, rng, t0 = Figure("chaos download"), random.Random(seed), time.monotonic()
    root = work / "upstream"
    src = d4rl_arrays([30, 40, 25, 50, 7], obs_dim=11, act_dim=3)
    path = write_d4rl(root / "gym_mujoco_v2" / "hopper_medium-v2.hdf5", src)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    modes = [m for m in CHAOS for _ in range(CHAOS_WEIGHTS[m])]
    with serve(root) as server:
        def chaos(rel: str, range_header: str | None) -> tuple[str, float]:
            mode = rng.choice(modes)
            fig.outcomes[f"served {mode}"] += 1
            fig.faults += mode != "ok"
            return mode, rng.random()

        server.chaos = chaos
        registry = work / "datasets.toml"
        registry.write_text(chaos_entry(server.url, digest))
        for i in range(n):
            home = work / f"home-{i}"
            with environ(OFFBENCH_HOME=str(home), OFFBENCH_DATASETS=str(registry)):
                for attempt in range(1, attempts + 1):
                    try:
                        cache.fetch("chaos")
                    except OffbenchError as e:
                        text = str(e)
                        if "\n" in text or server.url.rstrip("/") not in text:
                            fig.fail(f"fetch {i}, attempt {attempt}: not one line naming the URL: {text!r}")
                    except Exception as e:  # noqa: BLE001  (any other exception is a finding)
                        fig.fail(f"fetch {i}, attempt {attempt}: {type(e).__name__}: {e}")
                    wrong = [p for p in home.rglob("hopper_medium-v2.hdf5")
                             if hashlib.sha256(p.read_bytes()).hexdigest() != digest]
                    if wrong:
                        fig.fail(f"fetch {i}, attempt {attempt}: the cache holds a wrong file {wrong[0]}")
                    if cache.is_cached("chaos"):
                        data = cache.load("chaos", fetch_missing=False)
                        if not all(np.array_equal(getattr(data, k), src[k]) for k in ("observations", "actions",
                                                                                       "rewards", "terminals")):
                            fig.fail(f"fetch {i}: the cached arrays differ from the source's")
                        fig.outcomes[f"fetched in {attempt} attempt{'s' if attempt > 1 else ''}"] += 1
                        break
                else:
                    fig.outcomes[f"refused after {attempts} attempts, one line each"] += 1
    fig.seconds = time.monotonic() - t0
    return fig


# -- 4. concurrency --------------------------------------------------------------------------------
CONCURRENT_RUN = ("run", "--algo", "bc", "--env", "keytodoor-1k", "--seeds", "4", "--workers", "1", "--threads", "1",
                  "--steps", "300", "--eval-episodes", "3", "--set", "eval_every=100")


def trained(trace: Path) -> Counter[str]:
    """How many times each run began training (per seed label) in a trace file."""
    counts: Counter[str] = Counter()
    for parts in (line.split() for line in trace.read_text().splitlines() if line.strip()):
        if parts[2] == "train" and parts[3] == "begin":
            counts.update(parts[1].split(","))
    return counts


def concurrency_campaign(n: int, work: Path, seed: int = 0) -> Figure:
    """``n`` rounds, each of 2 or 4 processes started together: ``offbench run`` of the same runs on
    one results tree (every process must exit 0, each run train once and equal a run made alone),
    then ``offbench fetch`` of one dataset into one cache (every process exits 0, one file)."""
    import hashlib

    from tests.upstream import d4rl_arrays, serve, write_d4rl

    fig, rng, t0 = Figure("concurrency"), random.Random(seed), time.monotonic()
    reference = work / "reference"
    subprocess.run(offbench_cmd(*CONCURRENT_RUN, "--results", str(reference)), capture_output=True, cwd=ROOT,
                   env=child_env(), timeout=600, check=True)
    expected = run_records(reference)
    upstream = work / "upstream"
    path = write_d4rl(upstream / "gym_mujoco_v2" / "hopper_medium-v2.hdf5",
                      d4rl_arrays([30, 40, 25, 50, 7], obs_dim=11, act_dim=3))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with serve(upstream) as server:
        registry = work / "datasets.toml"
        registry.write_text(chaos_entry(server.url, digest))
        for r in range(n):
            k = rng.choice((2, 4))
            results, trace = work / f"round-{r}", work / f"round-{r}.trace"
            procs = [subprocess.Popen(offbench_cmd(*CONCURRENT_RUN, "--results", str(results)), cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                      env=child_env(OFFBENCH_TRACE=str(trace)), start_new_session=True)
                     for _ in range(k)]
            codes = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in procs]
            fig.faults += k - 1
            bad = [err.strip()[-200:] for code, err in codes if code != 0]
            if bad:
                fig.fail(f"round {r}: {len(bad)} of {k} run processes failed: {bad[0]}")
            twice = {run: c for run, c in trained(trace).items() if c != 1}
            if twice:
                fig.fail(f"round {r}: runs trained more than once: {twice}")
            check_trial(fig, f"round {r}", subprocess.CompletedProcess([], 0, "", ""), results, expected)
            fig.outcomes[f"{k} run processes together: all exit 0, each run trained once"] += not bad and not twice
            home = work / f"home-{r}"
            env = child_env(OFFBENCH_HOME=str(home), OFFBENCH_DATASETS=str(registry))
            fetches = [subprocess.Popen(offbench_cmd("fetch", "chaos"), cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env=env) for _ in range(k)]
            codes = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in fetches]
            fig.faults += k - 1
            files = [p for p in home.rglob("hopper_medium-v2.hdf5*") if not p.name.endswith((".lock", ".json"))]
            ok = all(code == 0 for code, _ in codes) and len(files) == 1 and \
                hashlib.sha256(files[0].read_bytes()).hexdigest() == digest
            if not ok:
                fig.fail(f"round {r}: {k} fetches: exit codes {[c for c, _ in codes]}, files {files}")
            fig.outcomes[f"{k} fetches together: all exit 0, one file"] += ok
    fig.seconds = time.monotonic() - t0
    return fig


# -- 5. resource limits ----------------------------------------------------------------------------
LIMITED = """
import resource, sys
kind, value = sys.argv[1], int(sys.argv[2])
from offbench.cli import main
import offbench.algos, offbench.data.cache, offbench.launch, offbench.train, torch
torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)  # torch's lazy imports, before the limit
if kind == "fsize":
    resource.setrlimit(resource.RLIMIT_FSIZE, (value, value))
else:  # this much address space beyond what the process has mapped now
    vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + value, vm + value))
sys.argv = ["offbench", *sys.argv[3:]]
main()
"""


def one_line_errors(stderr: str) -> list[str]:
    """The lines of ``stderr`` that break the one-line-error promise (tracebacks, internal errors)."""
    return [line for line in stderr.splitlines() if line.startswith(("Traceback", "error: internal error"))
            or line.startswith("  File ")]


def limits_campaign(n: int, work: Path, seed: int = 0) -> Figure:
    """``n`` rounds, each a run interrupted after a checkpoint, then the same command under, in turn,
    a random file-size limit below a checkpoint's size (RLIMIT_FSIZE) or a random address-space headroom
    (RLIMIT_AS, 0.5-512 MB beyond what the started process maps; its dataset load needs part of it):
    it finishes or fails with one-line errors, the previous checkpoints stay byte-identical (file
    size) and, without the limit, the same command finishes the run as a run never limited."""
    import hashlib

    fig, rng, t0 = Figure("limits"), random.Random(seed), time.monotonic()
    reference = work / "reference"
    subprocess.run(offbench_cmd(*KILL_RUN, "--results", str(reference)), capture_output=True, cwd=ROOT,
                   env=child_env(), timeout=600, check=True)
    expected = run_records(reference)
    ckpt_size = next(reference.rglob("checkpoint.pt")).stat().st_size
    for r in range(n):
        results, trace = work / f"round-{r}", work / f"round-{r}.trace"
        with reaped(start_run(KILL_RUN, results, trace)) as proc:
            kill_at(proc, trace, "checkpoint", rng, 0.0, 0)
        kind = ("fsize", "as")[r % 2]  # in turn
        # address space: 0.5-512 MB beyond what the started process maps, log-uniform (loading the
        # dataset and making the model need some MB: both outcomes occur)
        value = rng.randint(1 << 10, ckpt_size - 1) if kind == "fsize" else int(2 ** rng.uniform(19, 29))
        before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in results.rglob("checkpoint*.pt")}
        p = subprocess.run([sys.executable, "-c", LIMITED, kind, str(value), *KILL_RUN, "--results", str(results)],
                           capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=600)
        fig.faults += 1
        broken = one_line_errors(p.stderr)
        if broken:
            fig.fail(f"round {r}: {kind} {value}: not one line: {broken[0]} ... {p.stderr.strip().splitlines()[-1]}")
        if p.returncode == 0:
            fig.outcomes[f"{kind}: finished within the limit"] += 1
        else:
            last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}, no message"
            reason = "disk" if "disk full" in p.stderr else "memory" if "memory" in p.stderr else last[:100]
            fig.outcomes[f"{kind}: one-line errors ({reason})"] += not broken
            if kind == "fsize":
                after = {q: hashlib.sha256(q.read_bytes()).hexdigest() for q in before if q.exists()}
                if after != before:
                    fig.fail(f"round {r}: a previous checkpoint changed or went missing under the file-size limit")
        resume = subprocess.run(offbench_cmd(*KILL_RUN, "--results", str(results)), capture_output=True, text=True,
                                cwd=ROOT, env=child_env(), timeout=600)
        check_trial(fig, f"round {r}", resume, results, expected)
    fig.seconds = time.monotonic() - t0
    return fig


# -- 3. fuzzed importers ---------------------------------------------------------------------------
FUZZ_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
FORMATS = ("hdf5", "npz", "minari", "dqn-replay", "registry")


def _strategies() -> Any:
    from hypothesis import strategies as st

    key = st.sampled_from(FUZZ_KEYS)
    mutation = st.one_of(
        st.tuples(st.just("none")),
        st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
        st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 7)), min_size=1,
                                            max_size=16)),
        st.tuples(st.just("nan"), key, st.sampled_from([float("nan"), float("inf"), float("-inf")])),
        st.tuples(st.just("dtype"), key, st.sampled_from(["int8", "float16", "float64", "complex64", "S4", "bool",
                                                           "uint64"])),
        st.tuples(st.just("shape"), key, st.sampled_from(["drop-row", "add-dim", "scalar", "flatten", "empty"])),
        st.tuples(st.just("huge"), key),
        st.tuples(st.just("missing"), key),
        st.tuples(st.just("negative"), st.integers(-2**62, -1)),
        st.tuples(st.just("symlink-out")),
        st.tuples(st.just("symlink-cache")),
        st.tuples(st.just("dotdot"), st.sampled_from(["../escape", "a/../../b", "..", "x/..", "/abs/path", "..\\win"])),
    )
    entry = st.fixed_dictionaries({
        "domain": st.one_of(st.sampled_from(["mujoco", "atari", "robotics"]), st.text(max_size=8)),
        "source": st.one_of(st.sampled_from(["d4rl", "minari", "dqn_replay", "generated", "keytodoor"]),
                            st.text(max_size=8)),
        "env": st.one_of(st.sampled_from(["Hopper-v4", "Pendulum-v1"]), st.text(max_size=12), st.integers()),
        "max_episode_steps": st.one_of(st.integers(-2**63, 2**63 - 1), st.text(max_size=4), st.floats()),
        "file": st.one_of(st.sampled_from(["../../etc/passwd", "a/../../b.hdf5", "/etc/passwd", "ok.hdf5"]),
                          st.text(max_size=12)),
        "observation_dim": st.one_of(st.integers(-2**40, 2**40), st.text(max_size=3)),
        "target_returns": st.one_of(st.lists(st.floats(allow_nan=True), max_size=3), st.text(max_size=3)),
    })
    return st.sampled_from(FORMATS), mutation, entry


def _pendulum(seed: int = 0) -> dict[str, Any]:
    from tests.test_register import pendulum_arrays

    return pendulum_arrays(seed)


def _mutate_arrays(arrays: dict[str, Any], mutation: tuple) -> dict[str, Any]:
    import numpy as np

    kind, out = mutation[0], dict(arrays)
    if kind == "nan":
        a = out[mutation[1]].astype(np.float32)
        a.flat[len(a) // 2] = mutation[2]
        out[mutation[1]] = a
    elif kind == "dtype":
        out[mutation[1]] = out[mutation[1]].astype(mutation[2])
    elif kind == "shape":
        a, how = out[mutation[1]], mutation[2]
        out[mutation[1]] = {"drop-row": a[:-1], "add-dim": a[..., None], "scalar": np.asarray(a.flat[0]),
                            "flatten": a.reshape(-1), "empty": a[:0]}[how]
    elif kind == "missing":
        out.pop(mutation[1])
    return out


def _flip_or_truncate(path: Path, mutation: tuple) -> None:
    data = bytearray(path.read_bytes())
    if mutation[0] == "truncate":
        path.write_bytes(bytes(data[: int(mutation[1] * len(data))]))
    elif mutation[0] == "flip" and data:
        for where, bit in mutation[1]:
            data[min(int(where * len(data)), len(data) - 1)] ^= 1 << bit
        path.write_bytes(bytes(data))


def _huge_npz(path: Path, key: str, arrays: dict[str, Any]) -> None:
    """An .npz whose ``key`` member's header declares 2**40 rows (its data: a few bytes)."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w") as z:
        for k, a in arrays.items():
            if k == key:
                header = {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False,
                          "shape": (2**40, *a.shape[1:])}
                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, header)
                z.writestr(f"{k}.npy", buf.getvalue() + b"\0" * 64)
            else:
                buf = io.BytesIO()
                np.save(buf, a)
                z.writestr(f"{k}.npy", buf.getvalue())


def _write_hdf5(path: Path, arrays: dict[str, Any], huge: str | None) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for k, a in arrays.items():
            if k == huge:  # declared 2**40 rows, none written (chunked: the file stays small)
                f.create_dataset(k, shape=(2**40, *a.shape[1:]), dtype=a.dtype, chunks=True)
            else:
                f.create_dataset(k, data=a)


class Fuzzer:
    """Valid inputs of every importer made once; :meth:`example` mutates one and imports it."""

    def __init__(self, work: Path, fig: Figure) -> None:
        self.work, self.fig, self.count = work, fig, 0
        self.outside = work / "outside"
        self.outside.mkdir(parents=True)
        (self.outside / "victim.bin").write_bytes(b"must stay as it is")
        self.bases = work / "bases"
        self.minari_dir = self._minari() if _has("minari") else None
        self.replay_dir = self._replay() if _has("ale_py") else None

    def _minari(self) -> Path:
        import gymnasium as gym
        import numpy as np
        from minari import create_dataset_from_buffers
        from minari.data_collector import EpisodeBuffer

        arrays, buffers, start = _pendulum(2), [], 0
        with environ(MINARI_DATASETS_PATH=str(self.bases / "minari")):
            for i, t in enumerate([40, 25, 60]):
                obs = np.concatenate([arrays["observations"][start : start + t],
                                      arrays["next_observations"][start + t - 1 :][:1]])
                buffers.append(EpisodeBuffer(id=i, observations=list(obs), actions=list(arrays["actions"][start : start + t]),
                                             rewards=list(arrays["rewards"][start : start + t]),
                                             terminations=[False] * t, truncations=[False] * (t - 1) + [True], infos={}))
                start += t
            with contextlib.redirect_stderr(io.StringIO()), __import__("warnings").catch_warnings():
                __import__("warnings").simplefilter("ignore")
                ds = create_dataset_from_buffers(
                    "fuzz/pendulum/random-v0", buffers, observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                    action_space=gym.spaces.Box(-1, 1, (1,), np.float32), algorithm_name="test", author="offbench",
                    author_email="tests@example.org", code_permalink="https://example.org/offbench", description="fuzz")
        return Path(ds.storage.data_path).parent

    def _replay(self) -> Path:
        from tests.upstream import dqn_checkpoint, write_dqn_checkpoint

        root = self.bases / "replay" / "Pong" / "1" / "replay_logs"
        arrays = dqn_checkpoint([20, 15], seed=3, capacity=20 + 15 + 6 + 8)
        write_dqn_checkpoint(root, 3, arrays)
        return self.bases / "replay"

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every file of the work directory outside the examples' homes and inputs."""
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in self.work.rglob("*")
                if p.is_file() and not p.is_symlink() and not p.relative_to(self.work).parts[0].startswith("ex-")}

    def example(self, fmt: str, mutation: tuple, entry: dict[str, Any]) -> None:
        import numpy as np

        from offbench.data import cache
        from offbench.data.register import register_dataset
        from offbench.data.cache import file_for
        from offbench.errors import OffbenchError

        self.count += 1
        ex = self.work / f"ex-{self.count}"
        home, src = ex / "home", ex / "input"
        src.mkdir(parents=True)
        name = mutation[1] if mutation[0] == "dotdot" else f"fuzz-{self.count}"
        kind = mutation[0]
        label = f"{fmt} {kind}" + (f" {mutation[1]}" if kind in ("nan", "dtype", "shape", "huge", "missing") else "")
        env_id = "Pendulum-v1"
        registry, before = None, self.snapshot()
        try:
            if fmt in ("hdf5", "npz"):
                arrays = _mutate_arrays(_pendulum(), mutation)
                path = src / ("data.hdf5" if fmt == "hdf5" else "data.npz")
                if kind == "huge" and fmt == "npz":
                    _huge_npz(path, mutation[1], arrays)
                elif fmt == "hdf5":
                    _write_hdf5(path, arrays, mutation[1] if kind == "huge" else None)
                else:
                    np.savez(path, **arrays)
                _flip_or_truncate(path, mutation)
            elif fmt == "minari" and self.minari_dir is not None:
                path = src / "minari"
                shutil.copytree(self.minari_dir, path)
                self._mutate_directory(path, mutation, "metadata.json", "total_steps")
            elif fmt == "dqn-replay" and self.replay_dir is not None:
                path, env_id = src / "replay", "ALE/Pong-v5"
                shutil.copytree(self.replay_dir, path)
                self._mutate_directory(path, mutation, None, None)
            else:  # a registry entry, fetched (its server, if any, is a closed loopback port)
                registry = src / "datasets.toml"
                registry.write_text(_toml_entry(name, entry, mutation))
                _flip_or_truncate(registry, mutation)
                path = None
            if kind == "symlink-out" and path is not None and path.is_file():
                real = self.outside / f"real-{self.count}{path.suffix}"
                shutil.move(path, real)
                path.symlink_to(real)
            with environ(OFFBENCH_HOME=str(home), **({"OFFBENCH_DATASETS": str(registry)} if registry else {})):
                if kind == "symlink-cache" and _valid_name(name):  # the cache file to write: a link to outside
                    target = file_for(name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(self.outside / "victim.bin")
                before = self.snapshot()
                try:
                    if path is None:
                        cache.fetch(name)
                    else:
                        register_dataset(name, path, env_id)
                    self.fig.outcomes["imported"] += 1
                except OffbenchError as e:
                    text = str(e)
                    if "\n" in text.strip():
                        self.fig.fail(f"{label}: an error of {len(text.splitlines())} lines: {text[:200]!r}")
                    self.fig.outcomes["one-line error"] += 1
                    leftover = [p for p in (home / "datasets").glob(f"{name}*")] if _valid_name(name) else []
                    leftover = [p for p in leftover if not p.is_symlink()]
                    local = home / "local-datasets.toml"
                    if leftover or (local.exists() and f"[{name}]" in local.read_text().replace('"', "")):
                        self.fig.fail(f"{label}: failed ({text[:120]}) yet cached or registered {leftover}")
        except Exception as e:  # noqa: BLE001  (any other exception is a finding)
            import traceback

            frame = next((f for f in reversed(traceback.extract_tb(e.__traceback__)) if "/offbench/" in f.filename),
                         None)
            where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
            self.fig.fail(f"{label}: {type(e).__name__}{where}: {str(e)[:200]}")
            self.fig.outcomes["other exception"] += 1
        self.fig.faults += kind != "none"
        if (self.outside / "victim.bin").read_bytes() != b"must stay as it is":
            self.fig.fail(f"{label}: a file outside $OFFBENCH_HOME was written through a link")
            (self.outside / "victim.bin").write_bytes(b"must stay as it is")
        changed = {p for p, stat in self.snapshot().items() if before.get(p) != stat}
        if changed:
            self.fig.fail(f"{label}: wrote outside $OFFBENCH_HOME: {sorted(changed)[:3]}")
        shutil.rmtree(ex, ignore_errors=True)

    def _mutate_directory(self, root: Path, mutation: tuple, meta: str | None, count_field: str | None) -> None:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        if not files:
            return
        chosen = files[self.count % len(files)]
        kind = mutation[0]
        if kind in ("truncate", "flip"):
            _flip_or_truncate(chosen, mutation)
        elif kind == "negative":
            metas = [p for p in files if meta and p.name == meta]
            if metas:
                data = json.loads(metas[0].read_text())
                data[count_field] = mutation[1]
                metas[0].write_text(json.dumps(data))
            else:  # dopamine's add_count
                from tests.upstream import write_npy_gz
                import numpy as np

                for p in files:
                    if p.name.startswith("add_count"):
                        write_npy_gz(p, np.array(mutation[1], np.int64))
        elif kind == "symlink-out":
            real = self.outside / f"linked-{self.count}"
            real.write_bytes(chosen.read_bytes())
            chosen.unlink()
            chosen.symlink_to(real)
        elif kind == "missing":
            chosen.unlink()


def _valid_name(name: str) -> bool:
    return "/" not in name and "\\" not in name and name not in ("", ".", "..")


def _toml_entry(name: str, entry: dict[str, Any], mutation: tuple) -> str:
    import math

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    lines = [f"[{json.dumps(name)}]", *(f"{k} = {value(v)}" for k, v in entry.items()),
             'base_url = "http://127.0.0.1:9/"', "ref_min_return = 0.0", "ref_max_return = 1.0"]
    return "\n".join(lines) + "\n"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def fuzz_campaign(work: Path, examples: int | None = None, seconds: float | None = None, seed: int = 0) -> Figure:
    """Mutated inputs of every importer (see :func:`_strategies`), generated by hypothesis: a fixed
    number of ``examples`` from a fixed seed, or batches of 200 from successive seeds for
    ``seconds``. Each must import or fail with one ``OffbenchError`` line; a failure registers and
    caches nothing; nothing outside ``$OFFBENCH_HOME`` changes."""
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import seed as hypothesis_seed
    from hypothesis import settings

    fig, t0 = Figure("fuzz"), time.monotonic()
    fuzzer = Fuzzer(work, fig)
    formats, mutations, entries = _strategies()

    def batch(n: int, s: int) -> None:
        @hypothesis_seed(s)
        @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(formats, mutations, entries)
        def check(fmt: str, mutation: tuple, entry: dict[str, Any]) -> None:
            fuzzer.example(fmt, mutation, entry)

        check()

    if seconds is None:
        batch(examples or 100, seed)
    else:
        s = seed
        while time.monotonic() - t0 < seconds:
            batch(200, s)
            s += 1
    fig.outcomes["examples"] = fuzzer.count
    fig.seconds = time.monotonic() - t0
    return fig
