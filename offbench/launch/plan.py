"""Planning: every (dataset, algorithm, seed) combination with its resolved config, and the
groups of seeds that train as one model."""

from __future__ import annotations

from pathlib import Path

from offbench.algos import get_algorithm
from offbench.checkpoints import checkpoint_step, shared_step
from offbench.data.spec import get_spec, resolve_names
from offbench.errors import UsageError
from offbench.loggers import check_loggers
from offbench.train import RunPlan


def split_overrides(sets: list[str], algos: list[str]) -> dict[str, dict[str, str]]:
    """``key=value`` applies to every algorithm, ``algo.key=value`` to one."""
    per_algo: dict[str, dict[str, str]] = {a: {} for a in algos}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got '{item}'")
        target, dot, name = key.partition(".")
        if dot and target in per_algo:
            per_algo[target][name] = value
        elif dot:
            raise UsageError(f"--set {item}: '{target}' is not one of the selected algorithms ({', '.join(algos)})")
        else:
            for a in algos:
                per_algo[a][key] = value
    return per_algo


def plan_runs(datasets: list[str], algos: list[str], seeds: int, results: Path, sets: list[str] | None = None,
              steps: int | None = None, eval_episodes: int | None = None,
              loggers: tuple[str, ...] = ()) -> list[RunPlan]:
    """Every (dataset, algorithm, seed) combination with its resolved config. Validates all names
    and ``--set`` keys (and that the ``loggers`` are installed) before anything runs."""
    check_loggers(loggers)
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    if steps is not None and steps < 0:
        raise UsageError(f"--steps must be >= 0, got {steps}")
    names = resolve_names(datasets)
    classes = {a: get_algorithm(a) for a in algos}
    overrides = split_overrides(sets or [], algos)
    plans = []
    for name in names:
        spec = get_spec(name)
        for algo, cls in classes.items():
            budget = {k: str(v) for k, v in (("steps", steps), ("eval_episodes", eval_episodes)) if v is not None}
            for key in set(budget) & set(overrides[algo]):
                raise UsageError(f"--{key.replace('_', '-')} {budget[key]} and --set {key}={overrides[algo][key]} both "
                                 f"set {key}; give one")
            cfg = cls.Config.resolve(spec, {**budget, **overrides[algo]})
            plans.extend(RunPlan(name, algo, cfg, seed, results, spec, loggers) for seed in range(seeds))
    return plans


def group_seeds(plans: list[RunPlan], parts: int = 1, most: int | None = None, cpu: bool = False) -> list[list[RunPlan]]:
    """Seeds that train as one model: runs of one (dataset, algorithm, config) that can resume
    from one step (all of them if they share one, :func:`~offbench.checkpoints.shared_step`; else
    those whose latest checkpoints are at the same step), at most ``most`` per group (default: as
    many as the algorithm trains together, :meth:`~offbench.algos.base.Algorithm.most_seeds`).
    The largest groups are then halved until there are ``parts`` groups (to keep ``parts`` CPU
    workers busy) or none can be split."""
    by_config: dict[tuple, list[RunPlan]] = {}
    for plan in plans:
        by_config.setdefault((plan.dataset, plan.algo, plan.config_hash), []).append(plan)
    groups: dict[tuple, list[RunPlan]] = {}
    for key, same in by_config.items():
        if shared_step([p.dir.checkpoint for p in same]) is not None:
            groups[key] = same
            continue
        for plan in same:
            groups.setdefault((*key, checkpoint_step(plan.dir.checkpoint)), []).append(plan)
    out = []
    for g in groups.values():
        size = most or get_algorithm(g[0].algo).most_seeds(cpu) or len(g)
        out += [g[i : i + size] for i in range(0, len(g), size)]
    while len(out) < parts and max(len(g) for g in out) > 1:
        big = max(out, key=len)
        out.remove(big)
        out += [big[: len(big) // 2], big[len(big) // 2 :]]
    return out
