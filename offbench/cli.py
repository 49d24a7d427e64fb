"""The ``offbench`` command line: each command parses options and calls one library function."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from offbench import __version__
from offbench.errors import Interrupted, OffbenchError

console = Console()
err_console = Console(stderr=True)


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class OffbenchGroup(click.Group):
    """Prints every error as one line (``--debug`` for a traceback) with the right exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        debug = "--debug" in sys.argv[1:]
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
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


@click.group(cls=OffbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="offbench")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def main(debug: bool) -> None:
    """Offline RL benchmarking: fetch datasets, train algorithms over many seeds, report tables.

    \b
    Example (Key-to-Door, no network needed):
      offbench fetch keytodoor-10k
      offbench run --algo dt,pbc,bc,random --env keytodoor-10k --seeds 3
      offbench report
    """


@main.command("list")
@click.argument("what", type=click.Choice(["datasets", "algos", "all"]), default="all")
def list_cmd(what: str) -> None:
    """List registered datasets (source, cached, size on disk) and algorithms.

    \b
    Example:
      offbench list datasets
    """
    from offbench.algos import algorithm_names
    from offbench.data.cache import list_datasets

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
@click.option("--mirror", metavar="BASE", envvar="OFFBENCH_MIRROR", default=None,
              help="Download from a mirror holding the upstream files under the same relative paths ($OFFBENCH_MIRROR).")
@click.option("--from-file", "from_file", type=click.Path(path_type=Path), default=None,
              help="Import a D4RL HDF5 file copied from elsewhere (one dataset).")
@click.option("--from-dir", "from_dir", type=click.Path(path_type=Path), default=None,
              help="Import a Minari dataset directory or a DQN-replay directory (one dataset).")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Parallel downloads.")
def fetch(names: tuple[str, ...], fetch_all: bool, force: bool, mirror: str | None, from_file: Path | None,
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
    try:
        with _download_progress() as progress:
            outcome = fetch_many(chosen, force=force, mirror=mirror, local=from_file or from_dir,
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


def _download_progress() -> Progress:
    """Bars with bytes, speed and time left on a terminal; silent otherwise."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=err_console, disable=not err_console.is_terminal)


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
def generate(env: str, preset: str, levels: str, sets: tuple[str, ...], device: str, force: bool) -> None:
    """Make <env>-<level>-local datasets with the D4RL recipe (SAC behaviour policies), offline.

    ENV is hopper, walker2d, halfcheetah, ant, or any gymnasium id with continuous actions.

    \b
    Example:
      offbench generate hopper --preset quick
      offbench run --algo iql,bc --env 'hopper-*-local' --seeds 3
    """
    from offbench.data.sources.generate import generate as run_generate
    from offbench.train import resolve_device

    overrides = dict(_key_value(s) for s in sets)
    names = run_generate(env, preset, _split(levels), overrides, device=str(resolve_device(device)), force=force,
                         log=lambda line: console.print(line))
    console.print(f"registered: {', '.join(names)}")


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise click.UsageError(f"--set expects KEY=VALUE, got '{text}'")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


@main.command()
@click.option("--algo", "algos", required=True, help="Algorithm names, comma-separated (see 'offbench list algos').")
@click.option("--env", "envs", required=True, help="Dataset names or globs, comma-separated.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds 0..N-1 per combination.")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Gradient steps (default: the algorithm's).")
@click.option("--eval-episodes", type=click.IntRange(min=1), default=None, help="Episodes per evaluation.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config field; 'algo.key=value' for one algorithm.")
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results directory (default ./results).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel runs (default: one per CPU core).")
def run(algos: str, envs: str, seeds: int, steps: int | None, eval_episodes: int | None, device: str,
        sets: tuple[str, ...], results: Path | None, workers: int | None) -> None:
    """Train and evaluate every (dataset, algorithm, seed) combination.

    Finished runs are skipped; interrupted ones resume from their last checkpoint.

    \b
    Example:
      offbench run --algo dt,pbc,bc,random --env keytodoor-10k --seeds 3
      offbench run --algo dt --env keytodoor-1k --seeds 2 --steps 500 --set lr=3e-4
    """
    from offbench.launch import plan_runs, run_plans
    from offbench.paths import default_results_root, ensure_writable
    from offbench.train import resolve_device

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops workers and keeps checkpoints, like Ctrl-C
    resolve_device(device)  # fail before anything runs
    root = results or default_results_root()
    plans = plan_runs(_split(envs), _split(algos), seeds, root, list(sets), steps, eval_episodes)
    ensure_writable(root)
    try:
        with _RunDisplay() as display:
            outcome = run_plans(plans, device=device, workers=workers, report=display.report)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: run the same command again to resume unfinished runs") from None
    for s in outcome.skipped:
        console.print(f"skipped (finished): {s['dataset']}/{s['algo']}/seed-{s['seed']} score {s['score_last']:.1f}")
    console.print(f"{len(outcome.finished)} finished, {len(outcome.skipped)} already done, "
                  f"{len(outcome.failed)} failed; results in {root} ('offbench report --results {root}')")
    if outcome.failed:
        for plan, why in outcome.failed:
            click.echo(f"error: {plan.label}: {why}", err=True)
        sys.exit(1)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


class _RunDisplay:
    """Rich progress bars on a terminal; one plain line per finished run otherwise."""

    def __init__(self) -> None:
        self.live = console.is_terminal
        self.tasks: dict[str, Any] = {}
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
        if not self.live and event in ("done", "failed"):
            click.echo(f"{event}: {label} {shown}")


@main.command()
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results directory (default ./results).")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "csv"]), default="table", show_default=True)
@click.option("--stat", type=click.Choice(["last", "best"]), default="last", show_default=True,
              help="Final evaluation, or each seed's best evaluation.")
def report(results: Path | None, fmt: str, stat: str) -> None:
    """Tabulate results: rows datasets, columns algorithms, mean ± std over seeds.

    \b
    Example:
      offbench report
      offbench report --format md > table.md
    """
    from offbench.paths import default_results_root
    from offbench.report import build, to_csv, to_markdown

    root = results or default_results_root()
    rep = build(root, stat)
    for w in rep.warnings:
        click.echo(f"warning: {w}", err=True)
    if rep.empty:
        raise OffbenchError(f"no finished runs under {root}; start some with 'offbench run'")
    if fmt == "md":
        click.echo(to_markdown(rep.wide, rep.note), nl=False)
    elif fmt == "csv":
        click.echo(to_csv(rep.long), nl=False)
    else:
        t = Table(title=f"offbench results ({root})", caption=rep.note)
        t.add_column("dataset")
        for c in rep.wide.columns:
            t.add_column(c, justify="right")
        for d in rep.wide.index:
            t.add_row(d, *rep.wide.loc[d])
        console.print(t)
