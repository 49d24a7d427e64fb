"""The ``offbench`` command line: each command parses options and calls one library function."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from offbench import __version__
from offbench.errors import Interrupted, OffbenchDeprecation, OffbenchError, UsageError

# piped or redirected, tables keep their natural width: names are never cut to fit 80 columns
console = Console(width=None if sys.stdout.isatty() else 100_000)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 100_000)


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _show_warning(message: Any, category: type[Warning], *args: Any, _default: Any = warnings.showwarning,
                  **kwargs: Any) -> None:
    """offbench's own warnings (former names) as one ``warning:`` line; others as Python shows them."""
    if issubclass(category, OffbenchDeprecation):
        click.echo(f"warning: {message}", err=True)
    else:
        _default(message, category, *args, **kwargs)


class OffbenchGroup(click.Group):
    """Prints every error as one line (``--debug`` for a traceback) with the right exit code."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:  # noqa: D102
        argv = list(sys.argv[1:] if args is None else args)
        warnings.showwarning = _show_warning
        debug = "--debug" in argv
        if debug:  # accepted anywhere on the line, not only before the command
            argv = ["--debug", *(a for a in argv if a != "--debug")]
        if "--verbose" in argv:  # likewise; seen by every process this command starts
            argv = ["--verbose", *(a for a in argv if a != "--verbose")]
            os.environ["OFFBENCH_VERBOSE"] = "1"
        try:
            return super().main(argv, *rest, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            err_console.print("interrupted")
            sys.exit(130)
        except click.UsageError as e:
            if debug:
                raise
            cmd = e.ctx.command_path if e.ctx else "offbench"
            click.echo(f"error: {e.format_message()} (see '{cmd} --help')", err=True)
            sys.exit(2)
        except OffbenchError as e:
            if debug:
                raise
            click.echo(str(e) if isinstance(e, Interrupted) else f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:  # click's other errors (a file option it cannot open, ...)
            if debug:
                raise
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except MemoryError:
            if debug:
                raise
            click.echo("error: out of memory; free memory or run fewer --workers, then run the same command again",
                       err=True)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001  (an internal error: one line, the traceback on request)
            if debug:
                raise
            if isinstance(e, RuntimeError) and "can't start new thread" in str(e):
                click.echo("error: cannot start a thread (out of memory or over a process limit); free memory or "
                           "run fewer --workers, then run the same command again", err=True)
                sys.exit(1)
            detail = " ".join(str(e).split())
            click.echo(f"error: internal error ({type(e).__name__}: {detail}); run with --debug for the traceback",
                       err=True)
            sys.exit(1)


_threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                               help="Torch threads per job (default: the CPU cores free at start, shared between jobs).")


@click.group(cls=OffbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="offbench")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--verbose", is_flag=True, help="Show third-party libraries' log lines (retries, warnings).")
def main(debug: bool, verbose: bool) -> None:
    """Offline RL benchmarking: fetch datasets, train algorithms over many seeds, report tables.

    \b
    Example (Key-to-Door, no network needed):
      offbench fetch keytodoor-10k
      offbench run --algo dt,pbc,bc,cql,random --env keytodoor-10k --seeds 3
      offbench report
    """


@main.command("list")
@click.argument("what", type=click.Choice(["datasets", "algos", "all"]), default="all")
@click.option("--json", "as_json", is_flag=True, help="Print the lists as JSON.")
@click.option("--remote", type=click.Choice(["minari"]), default=None,
              help="List a remote catalogue's datasets instead (each usable as minari:<id>).")
def list_cmd(what: str, as_json: bool, remote: str | None) -> None:
    """List registered datasets (source, cached, size on disk) and algorithms.

    \b
    Example:
      offbench list datasets
      offbench list datasets --json
      offbench list datasets --remote minari
    """
    from offbench.algos import algorithm_names
    from offbench.data.cache import list_datasets

    if remote:
        if what != "datasets":
            raise UsageError("--remote lists datasets: 'offbench list datasets --remote minari'")
        from offbench.data.sources.minari import remote_catalogue

        rows = remote_catalogue()
        if as_json:
            click.echo(json.dumps({"datasets": rows}, indent=1))
            return
        t = Table(title="remote Minari datasets")
        for col in ("name", "episodes", "steps", "env"):
            t.add_column(col)
        for row in rows:
            t.add_row(row["name"], str(row["episodes"]), str(row["steps"]), row["env"])
        console.print(t)
        return

    if as_json:
        from offbench.algos import get_algorithm

        listing: dict[str, Any] = {}
        if what in ("datasets", "all"):
            listing["datasets"] = list_datasets()
        if what in ("algos", "all"):
            listing["algos"] = [{"name": n, "description": ((get_algorithm(n).__doc__ or "").strip().splitlines() or [""])[0]}
                                for n in algorithm_names()]
        click.echo(json.dumps(listing, indent=1, default=str))
        return
    if what in ("datasets", "all"):
        t = Table(title="datasets", caption="every dataset also has a '-sparse' variant (delayed reward), derived on load")
        for col in ("name", "domain", "source", "cached", "size", "description"):
            t.add_column(col)
        for row in list_datasets():
            t.add_row(row["name"], row["domain"], row["source"], "yes" if row["cached"] else "no",
                      _size(row["size_bytes"]), row["description"])
        console.print(t)
    if what in ("algos", "all"):
        from offbench.algos import get_algorithm

        t = Table(title="algorithms")
        t.add_column("name")
        t.add_column("description")
        for name in algorithm_names():
            doc = (get_algorithm(name).__doc__ or "").strip().splitlines()
            t.add_row(name, doc[0] if doc else "")
        console.print(t)


@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def info(name: str, as_json: bool) -> None:
    """Show a dataset's facts: episodes, transitions, returns, spaces, provenance, content_sha256.

    \b
    Example:
      offbench info keytodoor-10k --json
    """
    from offbench.data.cache import info as dataset_info

    facts = dataset_info(name)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    t = Table(show_header=False, title=name)
    t.add_column("fact", no_wrap=True)
    t.add_column("value", overflow="fold")
    for k, v in facts.items():
        t.add_row(k, "—" if v is None else str(v))
    console.print(t)


@main.command()
@click.argument("names", nargs=-1)
@click.option("--all", "fetch_all", is_flag=True, help="Every registered dataset (not the -sparse variants, derived on load).")
@click.option("--force", is_flag=True, help="Rebuild even if cached (the old file stays until the new one is complete).")
@click.option("--mirror", "mirrors", metavar="BASE", envvar="OFFBENCH_MIRROR", multiple=True,
              help="Download from a mirror holding the upstream files under the same relative paths; several are "
                   "tried in order until one serves the file ($OFFBENCH_MIRROR: space-separated).")
@click.option("--from-file", "from_file", type=click.Path(path_type=Path), default=None,
              help="Import a D4RL HDF5 file copied from elsewhere (one dataset).")
@click.option("--from-dir", "from_dir", type=click.Path(path_type=Path), default=None,
              help="Import a Minari dataset directory or a DQN-replay directory (one dataset).")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Parallel downloads.")
def fetch(names: tuple[str, ...], fetch_all: bool, force: bool, mirrors: tuple[str, ...], from_file: Path | None,
          from_dir: Path | None, workers: int) -> None:
    """Download or build datasets into the cache ($OFFBENCH_HOME, default ~/.cache/offbench).

    NAMES are dataset names or globs. Interrupted downloads resume where they stopped.

    \b
    Example:
      offbench fetch keytodoor-1k keytodoor-10k
      offbench fetch 'hopper-*' --mirror http://mirror.example.org/offline_rl/
      offbench fetch walker2d-medium --from-file ~/walker2d_medium-v2.hdf5
    """
    from offbench.data.cache import fetch_many
    from offbench.data.spec import base_names, resolve_names

    if not names and not fetch_all:
        raise click.UsageError("name the datasets to fetch, or pass --all")
    if from_file and from_dir:
        raise click.UsageError("give --from-file or --from-dir, not both")
    chosen = base_names() if fetch_all else resolve_names(list(names))
    if mirrors:
        chosen = _mirrored(chosen, set(names))
    try:
        with _download_progress() as progress:
            outcome = fetch_many(chosen, force=force, mirror=mirrors or None, local=from_file or from_dir,
                                 workers=workers, progress=progress)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: run the same fetch again to resume the downloads") from None
    for f in outcome:
        if f.error is None:
            console.print(f"{f.name}: {'already cached' if f.already_cached else 'cached'} at {f.path}")
    failed = [f for f in outcome if f.error is not None]
    if len(failed) == 1:
        raise failed[0].error
    for f in failed:
        click.echo(f"error: {f.error}", err=True)
    if failed:
        sys.exit(1)


def _mirrored(chosen: list[str], named: set[str]) -> list[str]:
    """The datasets a mirror serves: those downloaded from a base URL. Others matched by a glob
    are left out with one note; one named exactly is an error."""
    from offbench.data.spec import get_spec

    def served(name: str) -> bool:
        return not str(get_spec(name).params.get("base_url", "file:")).startswith("file:")

    named_ignoring = [n for n in chosen if n in named and not served(n)]
    if named_ignoring:
        spec = get_spec(named_ignoring[0])
        raise UsageError(f"{spec.name} comes from its {spec.source} source, which does not use --mirror; "
                         "fetch it without --mirror" + (" (MINARI_REMOTE sets minari's remote)" if spec.source == "minari" else ""))
    left_out = [n for n in chosen if not served(n)]
    if left_out:
        sources = sorted({get_spec(n).source for n in left_out})
        click.echo(f"note: left out {len(left_out)} datasets whose sources ({', '.join(sources)}) do not use --mirror; "
                   "fetch them without it", err=True)
    return [n for n in chosen if served(n)]


def _download_progress() -> Progress:
    """Bars with bytes, speed and time left on a terminal; silent otherwise."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=err_console, disable=not err_console.is_terminal)


@main.command()
@click.argument("name")
@click.option("--from-file", "from_file", type=click.Path(path_type=Path), default=None,
              help="A D4RL-style .hdf5 file or an .npz with the D4RL keys.")
@click.option("--from-dir", "from_dir", type=click.Path(path_type=Path), default=None,
              help="A Minari dataset directory.")
@click.option("--env", "env_id", required=True, help="The gymnasium environment that evaluates policies trained on it.")
@click.option("--ref-min", type=float, default=None, help="The return scored 0 (default: the dataset's worst episode).")
@click.option("--ref-max", type=float, default=None, help="The return scored 100 (default: the dataset's best episode).")
@click.option("--env-kwargs", default=None, metavar="JSON", help="Keyword arguments for gymnasium.make, as JSON.")
@click.option("--force", is_flag=True, help="Replace a dataset registered under NAME on this machine.")
def register(name: str, from_file: Path | None, from_dir: Path | None, env_id: str, ref_min: float | None,
             ref_max: float | None, env_kwargs: str | None, force: bool) -> None:
    """Add your own dataset under NAME: fetch, run, info and report then treat it like a built-in.

    The data are checked against the environment's spaces first; nothing is registered if they
    do not fit. The entry goes to $OFFBENCH_HOME/local-datasets.toml, the data to the cache.

    \b
    Example:
      offbench register my-pendulum --from-file logs/pendulum.npz --env Pendulum-v1
      offbench register my-hopper --from-file hopper_mine.hdf5 --env Hopper-v4 --ref-min -20 --ref-max 3234
      offbench register my-pong --from-dir dqn/Pong/1/replay_logs --env ALE/Pong-v5 --ref-min -20.7 --ref-max 14.6
      offbench run --algo bc,iql --env my-pendulum --seeds 3
    """
    from offbench.data.register import register_dataset

    if (from_file is None) == (from_dir is None):
        raise click.UsageError("give the data with --from-file or --from-dir")
    kwargs = None
    if env_kwargs:
        try:
            kwargs = json.loads(env_kwargs)
        except ValueError as e:
            raise UsageError(f"--env-kwargs {env_kwargs}: not JSON ({e})") from None
        if not isinstance(kwargs, dict):
            raise UsageError(f"--env-kwargs {env_kwargs}: expected a JSON object such as '{{\"g\": 9.8}}'")
    entry = register_dataset(name, from_file or from_dir, env_id, ref_min, ref_max, kwargs, force)
    console.print(f"{name}: registered ({entry['kind']}, evaluated on {env_id}, references {entry['ref_min_return']:g} "
                  f"to {entry['ref_max_return']:g}); 'offbench info {name}' shows it")


@main.command()
@click.argument("env")
@click.option("--preset", type=click.Choice(["tiny", "quick", "d4rl"]), default="quick", show_default=True,
              help="tiny: <= 2 min on a 2-core CPU (tests); quick: <= 30 min; d4rl: D4RL's sizes (GPU recommended).")
@click.option("--levels", default="random,medium,medium-replay,medium-expert,expert", show_default=True,
              help="Comma-separated levels to write.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a preset field (sac_steps, start_steps, checkpoint_every, eval_episodes, transitions, hidden, seed).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Make the datasets again even if they exist.")
@_threads_option
def generate(env: str, preset: str, levels: str, sets: tuple[str, ...], device: str, force: bool,
             threads: int | None) -> None:
    """Make <env>-<level>-local datasets with the D4RL recipe (SAC behaviour policies), offline.

    ENV is hopper, walker2d, halfcheetah, ant, or any gymnasium id with continuous actions.

    \b
    Example:
      offbench generate hopper --preset quick          # <= 30 min on a 2-core CPU
      offbench run --algo iql --env hopper-medium-local --seeds 3 --steps 20000
    """
    from offbench.cores import CoreShare
    from offbench.generate import generate as run_generate
    from offbench.devices import resolve_device

    overrides = dict(_key_value(s) for s in sets)
    with CoreShare(threads):
        names = run_generate(env, preset, _split(levels), overrides, device=str(resolve_device(device)), force=force,
                             log=lambda line: console.print(line))
    console.print(f"registered: {', '.join(names)}")


def _key_value(text: str, option: str = "--set") -> tuple[str, str]:
    if "=" not in text:
        raise click.UsageError(f"{option} expects {'ID=NAME' if option == '--label' else 'KEY=VALUE'}, got '{text}'")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _launcher_options(f: Any) -> Any:
    """The options choosing where runs execute (``--launcher`` and each backend's), shared by
    ``run`` and ``reproduce``."""
    options = [
        click.option("--launcher", type=click.Choice(["local", "ray", "slurm"]), envvar="OFFBENCH_LAUNCHER", default="local",
                  show_default=True, help="Where runs execute: this machine's processes, Ray tasks, or Slurm tasks "
                                          "(through submitit); also OFFBENCH_LAUNCHER."),
        click.option("--ray-address", default=None, help="The Ray cluster to join (HOST:PORT or ray://HOST:PORT; also "
                                                      "RAY_ADDRESS); default: a Ray runtime started for this command."),
        click.option("--ray-cpus-per-job", type=click.IntRange(min=1), default=None,
                  help="CPU cores per Ray task (its torch threads).  [default: 1]"),
        click.option("--ray-gpus-per-job", type=click.FloatRange(min=0), default=None, help="GPUs per Ray task."),
        click.option("--slurm-partition", default=None, help="Slurm partition of each task."),
        click.option("--slurm-gpus-per-job", type=click.IntRange(min=0), default=None, help="GPUs per Slurm task."),
        click.option("--slurm-cpus-per-job", type=click.IntRange(min=1), default=None,
                  help="CPU cores per Slurm task (its torch threads).  [default: 1]"),
        click.option("--slurm-time", default=None, help="Time limit per task: minutes or HH:MM:SS (a task that reaches it "
                                                     "is requeued and resumes).  [default: 60]"),
        click.option("--slurm-mem", default=None, help="Memory per task, as sbatch takes it (e.g. 16G)."),
        click.option("--slurm-opt", "slurm_opts", multiple=True, metavar="KEY=VALUE",
                  help="Any other sbatch option (e.g. account=lab, qos=high, exclude=node3)."),
        click.option("--slurm-cluster", type=click.Choice(["slurm", "local"]), default=None,
                  help="'local': run the Slurm tasks on this machine through submitit's local executor."),
        click.option("--detach", "slurm_detach", is_flag=True, default=None,
                  help="With --launcher slurm: return once the tasks are submitted ('offbench status' watches them)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.option("--algo", "algos", required=True, help="Algorithm names, comma-separated (see 'offbench list algos').")
@click.option("--env", "envs", required=True, help="Dataset names or globs, comma-separated.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds 0..N-1 per combination.")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Gradient steps (default: the algorithm's).")
@click.option("--eval-episodes", type=click.IntRange(min=1), default=None, help="Episodes per evaluation.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config field; 'algo.key=value' for one algorithm.")
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results directory (default ./results).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel runs (default: one per free CPU core).")
@_threads_option
@click.option("--log", "log", default=None, metavar="NAME[,NAME]",
              help="Also stream each run's metrics to tensorboard (<run>/tensorboard) and/or wandb; "
                   "metrics.jsonl stays the record.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="A run another offbench process is running: wait for it to end (--no-wait: fail it at once).")
@_launcher_options
def run(algos: str, envs: str, seeds: int, steps: int | None, eval_episodes: int | None, device: str,
        sets: tuple[str, ...], results: Path | None, workers: int | None, threads: int | None, log: str | None,
        wait: bool, launcher: str, **backend_options: Any) -> None:
    """Train and evaluate every (dataset, algorithm, seed) combination.

    Finished runs are skipped; interrupted ones resume from their last checkpoint.

    \b
    Example:
      offbench run --algo dt,pbc,bc,cql,random --env keytodoor-10k --seeds 3
      offbench run --algo dt --env keytodoor-1k --seeds 2 --steps 500 --set lr=3e-4
    """
    from offbench.launch import plan_runs, run_plans
    from offbench.paths import default_results_root, ensure_writable
    from offbench.devices import resolve_device

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops workers and keeps checkpoints, like Ctrl-C
    dev = resolve_device(device)  # once, before anything runs
    root = results or default_results_root()
    backend = _launcher(launcher, root, workers, threads, backend_options)
    plans = plan_runs(_split(envs), _split(algos), seeds, root, list(sets), steps, eval_episodes,
                      tuple(_split(log)) if log else ())
    plans = [dataclasses.replace(p, wait=wait) for p in plans]
    ensure_writable(root)
    try:
        with _RunDisplay(plans) as display:
            outcome = run_plans(plans, device=dev, report=display.report, check=False, launcher=backend)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: run the same command again to resume unfinished runs") from None
    for s in outcome.skipped:
        console.print(f"skipped (finished): {s['dataset']}/{s['algo']}/seed-{s['seed']} score {s['score_last']:.1f}")
    if outcome.submitted:
        console.print(f"{len(outcome.submitted)} runs submitted, {len(outcome.skipped)} already done; watch them with "
                      f"'offbench status --results {root} --watch 60'")
        return
    console.print(f"{len(outcome.finished)} finished, {len(outcome.skipped)} already done, "
                  f"{len(outcome.failed)} failed; results in {root} ('offbench report --results {root}')")
    if outcome.failed:
        for plan, why in outcome.failed:
            click.echo(f"error: {plan.label}: {why}", err=True)
        sys.exit(1)


def _launcher(name: str, results: Path, workers: int | None, threads: int | None, options: dict[str, Any]) -> Any:
    """The backend ``--launcher`` names, with its options (``--slurm-*`` only with ``slurm``,
    ``--ray-*`` only with ``ray``)."""
    from offbench.launch import LocalLauncher

    for prefix, backend in (("slurm", "Slurm"), ("ray", "Ray")):
        given = ["--detach" if k == "slurm_detach" else f"--{k.replace('_', '-')}"
                 for k, v in options.items() if k.startswith(prefix) and v not in (None, ())]
        if given and name != prefix:
            if given == ["--detach"]:
                raise UsageError("--detach is for --launcher slurm: local processes and Ray tasks end with the "
                                 "command that started them (for Ray: 'ray job submit -- offbench run ...')")
            raise UsageError(f"{', '.join(given)}: {backend} options need --launcher {prefix}")
    if name == "local":
        return LocalLauncher(workers, threads)
    if workers is not None or threads is not None:
        raise UsageError(f"--workers and --threads are for --launcher local; a {name} task's threads are "
                         f"--{name}-cpus-per-job")
    if name == "ray":
        from offbench.launch.ray import RayLauncher, RayOptions

        ray = RayLauncher(RayOptions(options["ray_address"], options["ray_cpus_per_job"] or 1,
                                     options["ray_gpus_per_job"] or 0.0))
        ray.check()
        return ray
    slurm = options
    from offbench.launch.slurm import SlurmLauncher, SlurmOptions, parse_time

    extra = {}
    for item in slurm["slurm_opts"]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--slurm-opt expects KEY=VALUE, got '{item}'")
        extra[key.replace("-", "_")] = value
    options = SlurmOptions(partition=slurm["slurm_partition"], gpus_per_job=slurm["slurm_gpus_per_job"] or 0,
                           cpus_per_job=slurm["slurm_cpus_per_job"] or 1,
                           time_minutes=parse_time(slurm["slurm_time"]) if slurm["slurm_time"] else 60,
                           mem=slurm["slurm_mem"], extra=extra, cluster=slurm["slurm_cluster"] or "slurm",
                           detach=bool(slurm["slurm_detach"]))
    launcher = SlurmLauncher(options, results)
    launcher.executor()  # submitit and sbatch present: fail before anything runs
    return launcher


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


class _RunDisplay:
    """Rich progress bars on a terminal; otherwise one plain line per run when it starts (or
    resumes), at each evaluation, when it ends, and at least every ``OFFBENCH_PROGRESS_SECONDS``
    (default 60) while it trains, so a cluster log is never silent for long."""

    def __init__(self, plans: list[Any]) -> None:
        import time

        from offbench.launch import TimeLeft
        from offbench.launch.events import quiet_seconds

        self.clock = time.monotonic
        self.quiet_limit = quiet_seconds()
        self.last_line: dict[str, float] = {}
        self.live = console.is_terminal
        self.tasks: dict[str, Any] = {}
        self.time_left, self.estimated = TimeLeft(plans), False
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("{task.fields[score]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, disable=not self.live)

    def __enter__(self) -> _RunDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def report(self, event: str, label: str, step: int, total: int, score: float | None) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=max(total, 1), score="")
        task = self.tasks[label]
        shown = "" if score is None else f"score {score:.1f}"
        self.progress.update(task, completed=max(step, 1) if event == "done" else step, score=shown)
        self.time_left.update(event, label, step, total)
        seconds = None if self.estimated else self.time_left.seconds()
        if seconds is not None:
            self.estimated = True
            if seconds > 3600:  # say it early, while stopping costs little ('offbench run' resumes)
                click.echo(f"estimate: about {seconds / 3600:.1f} h left for {len(self.time_left.left)} runs at the speed "
                           "of the first minute; Ctrl-C stops, the same command resumes", err=True)
        if self.live:
            return
        line = {"start": f"start: {label} ({total:,} steps)",
                "resume": f"resume: {label} resuming from step {step:,}/{total:,}",
                "restart": f"restart: {label} from step 0 (it stopped before its first checkpoint)",
                "eval": f"eval: {label} step {step:,}/{total:,} {shown}",
                "done": f"done: {label} {shown}", "failed": f"failed: {label}",
                "submitted": f"submitted: {label} ({total:,} steps)"}.get(event)
        now = self.clock()
        if line is None and event == "progress" and now - self.last_line.get(label, now) >= self.quiet_limit:
            line = f"progress: {label} step {step:,}/{total:,} {shown}"
        if line:
            self.last_line[label] = now
            click.echo(line.rstrip())


@main.command()
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results directory (default ./results).")
@click.option("--watch", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Print the status again every SECONDS until every run is finished or failed.")
@click.option("--json", "as_json", is_flag=True, help="Print per-group counts and every run's state as JSON.")
def status(results: Path | None, watch: float | None, as_json: bool) -> None:
    """Where a sweep stands: per dataset and algorithm, runs finished, running (step, last score),
    failed and waiting, read from the run records (any launcher, any machine that sees them).

    \b
    Example:
      offbench status
      offbench status --results /shared/results --watch 60
    """
    import time

    from offbench.paths import default_results_root
    from offbench.status import STATES, as_json as status_json, summarize, sweep_status

    root = results or default_results_root()
    if not root.is_dir():
        raise UsageError(f"no results directory at {root}; start runs with 'offbench run' or give --results")
    while True:
        states = sweep_status(root)
        if as_json:
            click.echo(json.dumps(status_json(states), indent=1))
        else:
            rows = summarize(states)
            t = Table(title=f"runs under {root}")
            for col in ("dataset", "algo", *STATES, "running now"):
                t.add_column(col)
            for row in rows:
                t.add_row(row["dataset"], row["algo"], *(str(row[k]) for k in STATES), "; ".join(row["running_now"]))
            console.print(t)
            for row in rows:
                for error in row["errors"]:
                    click.echo(f"failed: {row['dataset']}/{row['algo']}: {error}", err=True)
        if watch is None or all(s.state in ("finished", "failed") for s in states):
            return
        time.sleep(watch)


@main.command()
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results directory (default ./results).")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "latex", "csv", "json"]), default="table",
              show_default=True, help="md, latex, csv, json: standard output holds that format only.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--stat", type=click.Choice(["last", "best"]), default="last", show_default=True,
              help="Final evaluation, or each seed's best evaluation.")
@click.option("--ci", is_flag=True, help="Cells: mean ± 95% Student-t interval half-width instead of ± std.")
@click.option("--algo", "algos", default=None, help="Algorithm globs, comma-separated.")
@click.option("--env", "envs", default=None, help="Dataset globs, comma-separated.")
@click.option("--label", "labels", multiple=True, metavar="ID=NAME",
              help="Name a config (by the prefix of its column's id or of its run folder) as a column.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write table.md/.tex/.csv, aggregates.csv (and figures with --plots) to this directory.")
@click.option("--plots", is_flag=True, help="Also draw the figures (PNG and PDF) into --out (default results/report).")
@click.option("--aggregate", is_flag=True, help="Print IQM, mean, median and optimality gap with 95% bootstrap CIs.")
@click.option("--poi", nargs=2, metavar="A B", default=None, help="Probability that algorithm A beats B, with a 95% CI.")
@click.option("--compare", metavar="published|PATH", default=None,
              help="Show published numbers next to the measured ones ('published': the shipped tables).")
def report(results: Path | None, fmt: str, as_json: bool, stat: str, ci: bool, algos: str | None, envs: str | None,
           labels: tuple[str, ...], out: Path | None, plots: bool, aggregate: bool, poi: tuple[str, str] | None,
           compare: str | None) -> None:
    """Tables of results: rows datasets grouped by domain, columns algorithms, mean ± spread over seeds.

    \b
    Example:
      offbench report
      offbench report --format latex --ci --env 'hopper-*' > table.tex
      offbench report --out paper/ --plots --poi dt bc
      offbench report --compare published
    """
    from offbench.paths import default_results_root
    from offbench.report import build, probability_of_improvement
    from offbench.report.published import compare as compare_published, load_published
    from offbench.report.render import Extras, Poi, render

    fmt = "json" if as_json else fmt
    root = results or default_results_root()
    rep = build(root, stat, ci, _split(algos) if algos else None, _split(envs) if envs else None,
                dict(_key_value(x, "--label") for x in labels))
    extras = Extras()  # computed before anything is printed: a bad --poi fails with nothing half-written
    if aggregate:
        extras.aggregates = rep.aggregate_table
    if poi:
        extras.poi = Poi(*poi, *probability_of_improvement(rep, *poi), len(rep.common_datasets()))
    if compare:
        extras.comparison = compare_published(rep.table, load_published(compare))
    machine = fmt != "table"
    if machine:
        stdout, stderr = render(rep, extras, fmt)
        click.echo(stdout, nl=False)
        if stderr:
            click.echo(stderr, nl=False, err=True)
    else:
        _print_report(rep, extras, root)
    if out or plots:
        from offbench.report.outputs import write_plots, write_tables

        target = out or root / "report"
        written = write_tables(rep, target)
        if plots:
            figs, skipped = write_plots(rep, target)
            written += figs
            for s in skipped:
                click.echo(f"note: {s}", err=True)
        (err_console if machine else console).print(f"wrote {len(written)} files to {target}")
    for w in rep.warnings:
        click.echo(f"warning: {w}", err=True)


@main.command()
@click.argument("table", required=False)
@click.option("--list", "show_list", is_flag=True, help="Each table, its source, and how much of its data is cached.")
@click.option("--budget", type=click.Choice(["paper", "quick"]), default="paper", show_default=True,
              help="paper: every algorithm's published budget; quick: a CPU-sized one, labelled as not the paper's.")
@click.option("--dry-run", is_flag=True, help="Print the plan and the compute it needs; run nothing.")
@click.option("--yes", is_flag=True, help="Run the paper budget on a machine without a GPU.")
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results directory (default ./results).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where the table and figures go (default ./reproduce/TABLE).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel runs (default: one per free CPU core).")
@_threads_option
@_launcher_options
def reproduce(table: str | None, show_list: bool, budget: str, dry_run: bool, yes: bool, results: Path | None,
              out: Path | None, device: str, workers: int | None, threads: int | None, launcher: str,
              **backend_options: Any) -> None:
    """Reproduce a published table in one command: fetch its data, train every (dataset,
    algorithm, seed) at its budget, and print the table beside the published numbers.

    Finished runs are reused, so an interrupted reproduction resumes where it stopped.

    \b
    Example:
      offbench reproduce --list
      offbench reproduce dt-table6 --budget quick
      offbench reproduce dt-table2 --dry-run
      offbench reproduce deadly-triad
    """
    from offbench import reproduce as rp
    from offbench.devices import resolve_device
    from offbench.paths import default_results_root, ensure_writable

    if show_list:
        import pandas as pd

        _print_frame(pd.DataFrame(rp.listing()), "tables (offbench reproduce TABLE)")
        return
    if table is None:
        raise click.UsageError("name a table; 'offbench reproduce --list' shows them")
    target = out or Path("reproduce") / table
    if table in rp.LECTURES:
        outcome = rp.run_lecture(table, target)
        for method, q in outcome["linear_max_abs_q"].items():
            console.print(f"linear Q-learning, {method}: largest |Q| {q:.3g} (every true value is 0)")
        for method, err in outcome["tabular_final_error"].items():
            console.print(f"tabular Q-learning, {method}: largest error of the data's entries {err:.3g}")
        console.print(f"wrote {outcome['figure']} and {outcome['json']}")
        return
    t = rp.get_table(table)
    root = results or default_results_root()
    plans = rp.plan(t, budget, root)
    estimate = rp.estimate(plans)
    if dry_run:
        console.print(f"{t.name}: {t.source}; budget {budget}")
        for plan in plans:
            if plan.seed == 0:
                seeds = sum(p.dataset == plan.dataset and p.algo == plan.algo for p in plans)
                console.print(f"  {plan.dataset} / {plan.algo}: {seeds} seeds x {plan.config.steps:,} gradient steps, "
                              f"{plan.config.eval_episodes} evaluation episodes")
        for line in estimate.lines():
            console.print(line)
        return
    dev = resolve_device(device)
    if budget == "paper" and dev.type != "cuda" and not yes:
        raise UsageError(f"{t.name} at the paper's budget on a machine without a GPU: {estimate.lines()[0]}; add --yes "
                         "to run it anyway, or --budget quick")
    backend = _launcher(launcher, root, workers, threads, backend_options)
    ensure_writable(root)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _RunDisplay(plans) as display:
            res = rp.reproduce(t, budget, plans, root, target, backend, dev, report=display.report)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: run the same command again to resume unfinished runs") from None
    _print_report(res["report"], res["extras"], root)
    for s in res["skipped"]:
        click.echo(f"note: {s}", err=True)
    console.print(f"wrote {len(res['written'])} files to {target}")
    failed = res["outcome"].failed
    for plan, why in failed:
        click.echo(f"error: {plan.label}: {why}", err=True)
    if failed:
        sys.exit(1)


def _print_report(rep: Any, extras: Any, root: Path) -> None:
    """The terminal form: the table, then each extra section as a table of its own."""
    from offbench.report.render import COMPARISON_TITLE, aggregate_rows, aggregate_title, comparison_rows

    g = rep.grid
    t = Table(title=f"offbench results ({root})")
    t.add_column("dataset")
    for c in g.columns:
        t.add_column(c, justify="right")
    for r in g.rows:
        best = g.best(r)
        cells = [f"[bold]{g.text(r, c)}[/bold]" if c in best else g.text(r, c) for c in g.columns]
        t.add_row(f"[italic]{r}[/italic]" if r in g.average_rows else r, *cells,
                  end_section=r in g.average_rows)
    console.print(t)
    console.print(rep.note, highlight=False)
    if extras.aggregates is not None:
        _print_frame(aggregate_rows(extras.aggregates), aggregate_title(extras.aggregates))
    if extras.poi is not None:
        console.print(extras.poi.sentence())
    if extras.comparison is not None:
        if len(extras.comparison):
            _print_frame(comparison_rows(extras.comparison), COMPARISON_TITLE)
        else:
            console.print("no measured (dataset, algorithm) pair has a published number")


def _print_frame(df: Any, title: str) -> None:
    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c))
    for row in df.itertuples(index=False):
        t.add_row(*(str(v) for v in row))
    console.print(t)


@main.command()
@click.option("--env", "dataset", required=True, help="The dataset the runs were trained on.")
@click.option("--algo", default="dt", show_default=True, help="A return-conditioned algorithm.")
@click.option("--sweep", is_flag=True, required=True, help="Evaluate at a grid of target returns.")
@click.option("--targets", default=None, help="Comma-separated target returns (default: --points from 0 to 1.5x the dataset's best).")
@click.option("--points", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--episodes", type=click.IntRange(min=1), default=10, show_default=True, help="Episodes per target.")
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results directory (default ./results).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@_threads_option
def evaluate(dataset: str, algo: str, sweep: bool, targets: str | None, points: int, episodes: int,
             results: Path | None, device: str, threads: int | None) -> None:
    """Evaluate trained runs again; --sweep: achieved return at a grid of target returns.

    Writes sweep.jsonl into each run directory; 'offbench report --plots' draws the
    return-conditioning figure (DT paper, Figure 4) from it.

    \b
    Example:
      offbench evaluate --env keytodoor-1k --algo dt --sweep --points 5 --episodes 50
    """
    from offbench.paths import default_results_root
    from offbench.sweep import sweep as run_sweep

    try:
        grid = [float(t) for t in _split(targets)] if targets else None
    except ValueError:
        raise UsageError(f"--targets expects comma-separated numbers, got '{targets}'") from None
    written = run_sweep(results or default_results_root(), dataset, algo, grid, points, episodes, device, threads)
    console.print(f"swept {len(written)} runs: {', '.join(str(p) for p in written)}")


