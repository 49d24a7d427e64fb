"""Plan every (dataset, algorithm, seed) combination and run them: planning (:mod:`.plan`), the
launcher seam (:mod:`.base`), the local backend (:mod:`.local`) and what callers hear back
(:mod:`.events`)."""

from offbench.launch.base import Launcher, Sink
from offbench.launch.events import Reporter, RunOutcome, RunsFailed, TimeLeft
from offbench.launch.local import LocalLauncher
from offbench.launch.plan import group_seeds, plan_runs, split_overrides
from offbench.launch.run import run_plans

__all__ = ["Launcher", "LocalLauncher", "Reporter", "RunOutcome", "RunsFailed", "Sink", "TimeLeft", "group_seeds",
           "plan_runs", "run_plans", "split_overrides"]
