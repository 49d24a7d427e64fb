"""Launchers: the same sweep through the local process pool and through Slurm tasks (submitit's
local executor, the same task code a cluster runs), and their bad input."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from offbench.results import read_metrics
from tests.test_cli import offbench, one_line_error

SWEEP = ["run", "--algo", "bc,pbc", "--env", "keytodoor-1k", "--seeds", "2", "--steps", "40", "--eval-episodes", "4",
         "--set", "eval_every=20"]
#: Summary fields that say how a run was executed rather than what it computed.
EXECUTION = {"train_seconds", "threads", "seeds_together", "cuda_visible_devices"}


def records(root: Path) -> dict[str, tuple[dict, list[dict]]]:
    """Every run's summary (without execution fields) and metrics log, by run folder."""
    out = {}
    for run in sorted(root.glob("*/*/*/seed-*")):
        summary = {k: v for k, v in json.loads((run / "summary.json").read_text()).items() if k not in EXECUTION}
        out[str(run.relative_to(root))] = (summary, read_metrics(run / "metrics.jsonl"))
    return out


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux ``/proc``)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def test_slurm_tasks_compute_what_the_local_pool_computes(isolated: Path) -> None:
    """One seed per process and one torch thread on both sides, so every loss and evaluation is
    the same computation in the same order: the records must be equal, not just close."""
    pytest.importorskip("submitit")
    local, slurm = isolated / "local", isolated / "slurm"
    p = offbench(*SWEEP, "--results", str(local), "--workers", "4", "--threads", "1")
    assert p.returncode == 0, p.stderr
    p = offbench(*SWEEP, "--results", str(slurm), "--launcher", "slurm", "--slurm-cluster", "local")
    assert p.returncode == 0, p.stderr
    assert "4 finished" in p.stdout
    a, b = records(local), records(slurm)
    assert len(a) == 4 and a == b
    assert len([d for d in (slurm / ".slurm").iterdir() if d.name.isdigit()]) == 4  # one task (and log) per run
    tables = [offbench("report", "--format", "csv", "--results", str(root)).stdout for root in (local, slurm)]
    assert tables[0] == tables[1] and "keytodoor-1k" in tables[0]
    again = offbench(*SWEEP, "--results", str(slurm), "--launcher", "slurm", "--slurm-cluster", "local")
    assert again.returncode == 0 and "0 finished, 4 already done" in again.stdout


@pytest.fixture
def ray_cluster(tmp_path: Path):
    """A Ray cluster started as a user would (``ray start --head`` on 127.0.0.1), stopped after."""
    pytest.importorskip("ray")
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = str(Path(sys.executable).parent / "ray")
    # a private cluster on loopback: no token authentication (Ray's default asks clients for a token)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    subprocess.run([ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus",
                    "2", "--include-dashboard", "false", "--disable-usage-stats"], check=True, capture_output=True,
                   env=env, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_ray_tasks_on_a_running_cluster_compute_what_the_local_pool_computes(isolated: Path, ray_cluster: str) -> None:
    local, ray = isolated / "local", isolated / "ray"
    p = offbench(*SWEEP, "--results", str(local), "--workers", "4", "--threads", "1")
    assert p.returncode == 0, p.stderr
    p = offbench(*SWEEP, "--results", str(ray), "--launcher", "ray", "--ray-address", ray_cluster,
                 env={"RAY_AUTH_MODE": "disabled"})
    assert p.returncode == 0 and "4 finished" in p.stdout, p.stderr
    assert records(local) == records(ray) and len(records(ray)) == 4
    assert "INFO" not in p.stderr and "WARNING" not in p.stderr  # Ray's notices only with --verbose


def ray_task_pids() -> list[int]:
    """Processes running an offbench seed group as a Ray task (Ray names them after the function)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and "run_seed_group" in cmdline:
            pids.append(int(proc.name))
    return pids


def test_a_killed_ray_worker_is_retried_and_resumes_from_its_checkpoint(isolated: Path) -> None:
    """The worker process is killed after the first checkpoint; Ray runs the task again, which
    resumes, and the records equal an uninterrupted run's."""
    pytest.importorskip("ray")
    import subprocess
    import sys

    args = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "1500", "--eval-episodes", "4",
            "--set", "eval_every=100"]
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    killed, straight = isolated / "killed", isolated / "straight"
    proc = subprocess.Popen([sys.executable, "-m", "offbench", *args, "--results", str(killed), "--launcher", "ray"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(killed.glob("*/*/*/seed-0/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    tasks = ray_task_pids()
    assert tasks, "the Ray task's process was not found"
    for pid in tasks:
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "1 finished" in out, err
    metrics = read_metrics(next(killed.glob("*/*/*/seed-0")) / "metrics.jsonl")
    assert offbench(*args, "--results", str(straight), "--workers", "1", "--threads", "1").returncode == 0
    assert records(killed) == records(straight)
    assert [r["step"] for r in metrics if r["kind"] == "eval"] == list(range(100, 1501, 100))


def test_ray_bad_input_is_one_line_and_submits_nothing(isolated: Path, tmp_path: Path) -> None:
    run = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "2"]
    line = one_line_error(offbench(*run, "--ray-address", "127.0.0.1:6379"), 2)
    assert "--ray-address" in line and "--launcher ray" in line
    line = one_line_error(offbench(*run, "--launcher", "ray", "--ray-address", "127.0.0.1:9"), 1)
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in line
    no_ray = tmp_path / "no-ray" / "ray"
    no_ray.mkdir(parents=True)
    (no_ray / "__init__.py").write_text("raise ImportError('ray is not installed')\n")
    line = one_line_error(offbench(*run, "--launcher", "ray", env={"PYTHONPATH": str(no_ray.parent)}), 2)
    assert "pip install 'offbench[ray]'" in line
    assert not (isolated / "results").exists()


def test_a_killed_slurm_task_resumes_on_the_next_submission(isolated: Path) -> None:
    pytest.importorskip("submitit")
    args = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "1500", "--eval-episodes", "4",
            "--set", "eval_every=100"]
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    killed, straight = isolated / "killed", isolated / "straight"
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "offbench", *args, "--results", str(killed), "--launcher", "slurm",
                             "--slurm-cluster", "local"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(killed.glob("*/*/*/seed-0/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (job,) = [d for d in (killed / ".slurm").iterdir() if d.name.isdigit()]
    # the local executor's job id is the pid of its controller, which runs the task as a child
    tasks = children(int(job.name))
    assert tasks, "the task process was not found"
    for pid in tasks:
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    run_dir = next(killed.glob("*/*/*/seed-0"))
    assert not (run_dir / "summary.json").exists(), "the run finished before its task could be killed"
    assert proc.returncode == 1 and "Slurm task" in err and "its log:" in err, err
    p = offbench(*args, "--results", str(killed), "--launcher", "slurm", "--slurm-cluster", "local")
    assert p.returncode == 0 and "resum" in p.stdout + p.stderr, p.stderr
    assert offbench(*args, "--results", str(straight), "--workers", "1", "--threads", "1").returncode == 0
    assert records(killed) == records(straight)


def test_the_sbatch_script_carries_every_slurm_option(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    from offbench.launch.slurm import SlurmOptions, parse_time, sbatch_script

    options = SlurmOptions(partition="gpu", gpus_per_job=1, cpus_per_job=4, time_minutes=parse_time("01:30:00"),
                           mem="16G", extra={"account": "lab", "qos": "high"})
    script = sbatch_script(options, tmp_path / "%j")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --time=90", "#SBATCH --mem=16G", "#SBATCH --account=lab", "#SBATCH --qos=high",
                 "#SBATCH --signal=USR2@90"):  # the signal: submitit requeues a task before its time runs out
        assert line in script.splitlines(), (line, script)
    assert parse_time("45") == 45 and parse_time("1-00:00:30") == 24 * 60 + 1


def test_slurm_bad_input_is_one_line_and_writes_nothing(isolated: Path) -> None:
    run = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "2"]
    line = one_line_error(offbench(*run, "--slurm-partition", "gpu"), 2)
    assert "--slurm-partition" in line and "--launcher slurm" in line
    line = one_line_error(offbench(*run, "--launcher", "slurm", "--slurm-time", "soon"), 2)
    assert "--slurm-time soon" in line
    line = one_line_error(offbench(*run, "--launcher", "slurm", "--slurm-opt", "account"), 2)
    assert "KEY=VALUE" in line
    path = os.environ["PATH"]
    no_sbatch = ":".join(d for d in path.split(":") if not (Path(d) / "sbatch").exists())
    p = offbench(*run, "--launcher", "slurm", env={"PATH": no_sbatch})
    if p.returncode == 2 and "offbench[slurm]" in p.stderr:  # submitit itself is missing
        return
    assert "'sbatch'" in one_line_error(p, 1)
    assert not (isolated / "results").exists()


@pytest.mark.parametrize("launcher", [[], ["--launcher", "slurm", "--slurm-cluster", "local"]], ids=["local", "slurm"])
def test_a_run_prints_progress_lines_between_evaluations(isolated: Path, launcher: list[str]) -> None:
    """Not on a terminal, a run between evaluations still says where it is at least every
    OFFBENCH_PROGRESS_SECONDS (60 by default; 0.5 here), from events (local) or from the run's
    records (Slurm tasks report nothing back until they end)."""
    if launcher:
        pytest.importorskip("submitit")
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    p = offbench("run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "6000", "--eval-episodes", "1",
                 "--set", "eval_every=0", "--results", str(isolated / "r"), *launcher,
                 env={"OFFBENCH_PROGRESS_SECONDS": "0.5"})
    assert p.returncode == 0, p.stderr
    progress = [line for line in p.stdout.splitlines() if line.startswith("progress: keytodoor-1k/bc/seed-0 step ")]
    assert progress, p.stdout
    steps = [int(line.split(" step ")[1].split("/")[0].replace(",", "")) for line in progress]
    assert steps == sorted(steps) and 0 < steps[0] and steps[-1] <= 6000 and progress[0].count("/6,000") == 1


def test_a_task_whose_node_lacks_the_dataset_fails_naming_the_path(isolated: Path) -> None:
    """Tasks never download: the command fetches each dataset once. A task that does not find it
    (a node that does not see OFFBENCH_HOME) fails in one line naming the path it looked at."""
    pytest.importorskip("submitit")
    import torch

    from offbench.data.cache import dataset_path
    from offbench.launch import RunOutcome, Sink, plan_runs
    from offbench.launch.slurm import SlurmLauncher, SlurmOptions

    plans = plan_runs(["keytodoor-1k"], ["bc"], 1, isolated / "r", steps=2, eval_episodes=1)
    outcome = RunOutcome()
    SlurmLauncher(SlurmOptions(cluster="local"), isolated / "r").run([plans], torch.device("cpu"),
                                                                     Sink(outcome, lambda *a: None))
    ((plan, why),) = outcome.failed
    assert f"keytodoor-1k is not cached (no {dataset_path('keytodoor-1k')})" in why and "\n" not in why
    assert not dataset_path("keytodoor-1k").exists()  # the task did not download it
    assert json.loads(plan.dir.failed.read_text())["error"] == why  # `offbench status` shows it


def test_detached_slurm_tasks_finish_on_their_own_and_status_sees_them(isolated: Path) -> None:
    pytest.importorskip("submitit")
    results = isolated / "r"
    p = offbench(*SWEEP, "--results", str(results), "--launcher", "slurm", "--slurm-cluster", "local", "--detach")
    assert p.returncode == 0, p.stderr
    assert "4 runs submitted" in p.stdout and "offbench status" in p.stdout
    assert sum(line.startswith("submitted: keytodoor-1k/") for line in p.stdout.splitlines()) == 4
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        groups = json.loads(offbench("status", "--json", "--results", str(results)).stdout)["groups"]
        if sum(g["finished"] for g in groups) == 4:
            break
        time.sleep(1)
    assert sum(g["finished"] for g in groups) == 4, groups
    line = one_line_error(offbench(*SWEEP, "--detach"), 2)
    assert "--detach is for --launcher slurm" in line


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """A generated continuous-action set (the D4RL recipe on Pendulum-v1, tiny budgets; no MuJoCo
    needed) and the records of a bc,iql sweep on it through the local pool."""
    from tests.test_generate import TINY

    home = tmp_path_factory.mktemp("pendulum")
    env = {"OFFBENCH_HOME": str(home / "cache")}
    p = offbench("generate", "Pendulum-v1", "--preset", "tiny", "--levels", "medium", *TINY, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    local = home / "local"
    p = offbench(*PENDULUM_SWEEP, "--results", str(local), "--workers", "4", "--threads", "1", env=env)
    assert p.returncode == 0, p.stderr
    return env, local


PENDULUM_SWEEP = ["run", "--algo", "bc,iql", "--env", "pendulum-medium-local", "--seeds", "2", "--steps", "30",
                  "--eval-episodes", "1", "--set", "eval_every=15"]


@pytest.mark.parametrize("launcher", ["ray", "slurm"])
def test_continuous_algorithms_on_a_generated_set_match_across_launchers(pendulum, launcher: str, tmp_path: Path) -> None:
    pytest.importorskip("ray" if launcher == "ray" else "submitit")
    env, local = pendulum
    flags = ["--launcher", "ray"] if launcher == "ray" else ["--launcher", "slurm", "--slurm-cluster", "local"]
    p = offbench(*PENDULUM_SWEEP, "--results", str(tmp_path / launcher), *flags, env=env)
    assert p.returncode == 0 and "4 finished" in p.stdout, p.stderr
    assert records(tmp_path / launcher) == records(local) and len(records(local)) == 4


def test_visible_gpus_follow_cuda_visible_devices() -> None:
    from offbench.launch.local import visible_gpus

    assert visible_gpus("2,5", 2) == ["2", "5"]
    assert visible_gpus(None, 3) == ["0", "1", "2"]
    assert visible_gpus("", 2) == ["0", "1"]
    assert visible_gpus("4,6,7", 2) == ["4", "6"]  # more names than devices torch sees


def test_each_pool_worker_sees_only_its_own_gpu(isolated: Path) -> None:
    """Where several GPUs are visible, the local pool pins worker i to GPU i through
    CUDA_VISIBLE_DEVICES, set in the worker before anything touches CUDA. Shown on the CPU path
    (the variable is set all the same; each run's summary records it): two groups, two workers,
    GPU names 7 and 9."""
    import torch

    from offbench.launch import RunOutcome, Sink, plan_runs
    from offbench.launch.local import _run_in_pool

    plans = plan_runs(["keytodoor-1k"], ["bc"], 2, isolated / "r", steps=2, eval_episodes=1)
    outcome = RunOutcome()
    _run_in_pool([plans[:1], plans[1:]], torch.device("cpu"), Sink(outcome, lambda *a: None), 2, 1, ["7", "9"])
    assert not outcome.failed
    assert sorted(s["cuda_visible_devices"] for s in outcome.finished) == ["7", "9"]


@pytest.mark.parametrize("launcher", [["--launcher", "ray"], ["--launcher", "slurm", "--slurm-cluster", "local"]],
                         ids=["ray", "slurm"])
def test_ctrl_c_cancels_the_submitted_tasks_and_keeps_their_checkpoints(isolated: Path, launcher: list[str]) -> None:
    pytest.importorskip("ray" if "ray" in launcher else "submitit")
    import subprocess
    import sys

    args = ["run", "--algo", "bc", "--env", "keytodoor-1k", "--steps", "100000", "--eval-episodes", "1",
            "--set", "eval_every=200", "--results", str(isolated / "r"), *launcher]
    assert offbench("fetch", "keytodoor-1k").returncode == 0
    # SIGINT handled as in a terminal's foreground job (a shell running the tests in the background
    # hands its children SIGINT ignored; see tests/test_interrupt.py)
    proc = subprocess.Popen([sys.executable, "-m", "offbench", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((isolated / "r").glob("*/*/*/seed-0/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    run = next((isolated / "r").glob("*/*/*/seed-0"))
    step = json.loads(offbench("status", "--json", "--results", str(isolated / "r")).stdout)["runs"][0]
    assert step["state"] == "waiting" and step["step"] >= 200  # no task trains it any more; its checkpoint stays
    time.sleep(2)
    size = (run / "metrics.jsonl").stat().st_size
    time.sleep(2)
    assert (run / "metrics.jsonl").stat().st_size == size  # really stopped
    assert (run / "checkpoint.pt").exists() and not (run / "summary.json").exists()
