"""``run_plans``: skip finished runs, fetch each dataset once, group seeds, hand the groups to a
launcher, and say what happened."""

from __future__ import annotations

import torch

from offbench.data import cache
from offbench.devices import resolve_device
from offbench.launch.base import Launcher, Sink
from offbench.launch.events import Reporter, RunOutcome, RunsFailed
from offbench.launch.local import LocalLauncher
from offbench.launch.plan import group_seeds
from offbench.paths import ensure_writable
from offbench.results import read_json
from offbench.train import RunPlan, record_config, tidy_finished


def run_plans(plans: list[RunPlan], device: torch.device | str = "auto", workers: int | None = None,
              report: Reporter | None = None, seeds_together: int | None = None,
              threads: int | None = None, check: bool = True, launcher: Launcher | None = None) -> RunOutcome:
    """Run all plans, skipping finished ones. The seeds of one (dataset, algorithm, config) train
    together as one model (at most ``seeds_together`` at once; default: all on CUDA; on a CPU,
    split so that every worker has work, and apart for algorithms that gain nothing there). The
    ``launcher`` runs the groups (default: :class:`LocalLauncher` with ``workers`` processes of
    ``threads`` torch threads; by default one per free core, each with its share of the free
    cores). When runs fail, :class:`RunsFailed` is raised after the others have finished
    (``check=False``: returned in ``outcome.failed`` instead). ``device``: a ``torch.device`` or a
    name (``auto``, ``cpu``, ``cuda``), resolved here once."""
    outcome = RunOutcome()
    todo = []
    for plan in plans:
        if plan.dir.finished():
            tidy_finished(plan)
            outcome.skipped.append(read_json(plan.dir.summary))
        else:
            todo.append(plan)
    if todo:
        ensure_writable(plans[0].results)
        for name in dict.fromkeys(p.dataset for p in todo):
            cache.fetch(name)  # once, here, not in every worker
        todo = [plan.with_run_spec() for plan in todo]  # reference returns read once, here
        for plan in todo:
            record_config(plan)  # waiting runs are visible in the records (`offbench status`)
        dev = resolve_device(device)
        launcher = launcher or LocalLauncher(workers, threads)
        groups = group_seeds(todo, parts=launcher.parts(len(todo), dev), most=seeds_together, cpu=dev.type == "cpu")
        launcher.run(groups, dev, Sink(outcome, report or (lambda *a: None)))
    if check and outcome.failed:
        raise RunsFailed(outcome)
    return outcome
