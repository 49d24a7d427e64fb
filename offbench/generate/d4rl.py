"""Local datasets made with the D4RL recipe: ``offbench generate ENV``.

For any gymnasium continuous-control environment: train SAC online (checkpoints with their
evaluated returns), take "expert" = the best checkpoint and "medium" = the checkpoint that lies
about a third of the way from the random policy's return to the expert's (D4RL's "a third of
the expert's performance", in normalized terms, which also holds for negative returns), then
write, as D4RL did:

- ``random``: rollouts of uniform-random actions;
- ``medium`` / ``expert``: rollouts of the (stochastic) medium / expert policy;
- ``medium-replay``: SAC's replay buffer up to the medium checkpoint;
- ``medium-expert``: the medium rollouts followed by the expert ones.

Each level becomes ``<env>-<level>-local`` in the user's local registry
(``$OFFBENCH_HOME/local-datasets.toml``) with its reference returns (random policy and expert
policy) and full provenance, never mixed up with D4RL's names.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from offbench.data import cache
from offbench.data.dataset import Dataset
from offbench.data.sources import Arrays
from offbench.data.sources.d4rl import episode_starts
from offbench.data.spec import all_specs, register_local
from offbench.envs.factory import env_domain, make_gym_env
from offbench.errors import OffbenchError, UsageError
from offbench.generate.sac import policy_fn, rollouts, train_sac

LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")
#: Short names for the D4RL locomotion environments (evaluated on gymnasium v4, as D4RL's data).
ALIASES = {"hopper": "Hopper-v4", "walker2d": "Walker2d-v4", "halfcheetah": "HalfCheetah-v4", "ant": "Ant-v4"}


@dataclass
class Preset:
    """Sizes of one generation run."""

    sac_steps: int
    start_steps: int
    checkpoint_every: int
    eval_episodes: int
    transitions: int  # per rolled-out level (random, medium, expert)
    hidden: tuple[int, ...] = (256, 256)
    seed: int = 0
    #: "medium" must lie within this many normalized points of 100/3 (random 0, expert 100);
    #: with no checkpoint there, generation stops with an error instead of misnaming a level.
    medium_window: float = 20.0


PRESETS = {
    # tiny: the whole pipeline in <= 2 minutes on a 2-core CPU (tests); the policies barely learn
    "tiny": Preset(sac_steps=3_000, start_steps=1_000, checkpoint_every=500, eval_episodes=2, transitions=5_000),
    # quick: <= 30 minutes on a 2-core CPU; hopper's SAC reaches roughly 1000-3000
    "quick": Preset(sac_steps=60_000, start_steps=5_000, checkpoint_every=5_000, eval_episodes=5, transitions=100_000),
    # d4rl: D4RL's sizes (1M SAC steps, 1M transitions per level); a GPU helps
    "d4rl": Preset(sac_steps=1_000_000, start_steps=10_000, checkpoint_every=20_000, eval_episodes=10,
                   transitions=1_000_000),
}


def env_id_and_name(env: str) -> tuple[str, str]:
    """The gymnasium id for ``env`` (an alias like ``hopper`` or an id) and its short dataset name."""
    env_id = ALIASES.get(env.lower(), env)
    short = env.lower() if env.lower() in ALIASES else re.sub(r"-v\d+$", "", env_id.split("/")[-1]).lower()
    return env_id, re.sub(r"[^a-z0-9]+", "", short)


def resolve_preset(name: str, overrides: dict[str, str]) -> Preset:
    if name not in PRESETS:
        raise UsageError(f"unknown preset '{name}'; presets: {', '.join(PRESETS)}")
    p = PRESETS[name]
    valid = {f.name: f for f in dataclasses.fields(Preset)}
    changes: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in valid:
            raise UsageError(f"unknown --set key '{key}' for generate; valid keys: {', '.join(valid)}")
        if key == "hidden":
            changes[key] = tuple(json.loads(text))
        else:
            changes[key] = float(text) if key == "medium_window" else int(float(text))
    return dataclasses.replace(p, **changes)


MEDIUM_FRACTION = 1 / 3  # D4RL: the medium policy performs about a third as well as the expert


def pick_medium(checkpoints: list[Any], random_return: float, window: float) -> tuple[Any, Any]:
    """(expert, medium): the best checkpoint, and the one at or before it whose normalized score
    ``100 * (R - random) / (expert - random)`` is closest to 100/3. Raises a one-line error when
    the expert does not beat the random policy or no checkpoint lies within ``window`` points."""
    expert = max(checkpoints, key=lambda c: c.eval_return)
    spread = expert.eval_return - random_return
    if spread <= 0:
        raise OffbenchError(f"SAC's best checkpoint (return {expert.eval_return:.1f}) does not beat the random policy "
                            f"({random_return:.1f}): no expert or medium level; train longer (--set sac_steps=N)")
    target = 100 * MEDIUM_FRACTION

    def score(c: Any) -> float:
        return 100 * (c.eval_return - random_return) / spread

    medium = min((c for c in checkpoints if c.step <= expert.step), key=lambda c: abs(score(c) - target))
    if abs(score(medium) - target) > window:
        raise OffbenchError(f"no SAC checkpoint lies near a third of the way from random ({random_return:.1f}) to "
                            f"expert ({expert.eval_return:.1f}): the closest, step {medium.step}, scores "
                            f"{score(medium):.0f} of 100; checkpoint more often (--set checkpoint_every=N) or widen "
                            f"--set medium_window={window:g}")
    return expert, medium


def _cut(arrays: Arrays, n: int) -> Arrays:
    """The first ``n`` steps, with episode starts recomputed (D4RL layout + starts)."""
    out = {k: v[:n] for k, v in arrays.items() if k != "episode_starts"}
    out["episode_starts"] = episode_starts(out["terminals"], out["timeouts"])
    return out


def generate_d4rl(env: str, preset: str = "quick", levels: list[str] | None = None,
                  overrides: dict[str, str] | None = None, device: str = "cpu", force: bool = False,
                  log: Callable[[str], None] = print) -> list[str]:
    """Run the D4RL recipe for ``env``; return the registered dataset names."""
    levels = list(levels or LEVELS)
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown:
        raise UsageError(f"unknown level '{unknown[0]}'; levels: {', '.join(LEVELS)}")
    env_id, short = env_id_and_name(env)
    p = resolve_preset(preset, overrides or {})
    make = lambda: make_gym_env(env_id)  # noqa: E731
    probe = make()
    if not isinstance(probe.action_space, gym.spaces.Box):
        raise UsageError(f"{env_id}: generate needs continuous (Box) actions, it has {probe.action_space}")
    max_steps = int(probe.spec.max_episode_steps or 1000) if probe.spec else 1000
    probe.close()
    names = {lv: f"{short}-{lv}-local" for lv in levels}
    existing = all_specs()
    for name in names.values():
        if name in existing and existing[name].source != "generated":
            raise UsageError(f"{name} is already a registered dataset; it cannot be replaced by a local one")
    if not force:
        have = [n for n in names.values() if cache.file_for(n).exists()]
        if len(have) == len(names):
            log(f"already generated: {', '.join(have)} (use --force to make them again)")
            return list(names.values())

    log(f"{env_id}: SAC for {p.sac_steps:,} steps ({preset} preset)")
    run = train_sac(make, p.sac_steps, p.start_steps, p.checkpoint_every, p.eval_episodes, p.seed, p.hidden,
                    device=torch.device(device), log=log)
    rng = np.random.default_rng(p.seed + 1)
    act_dim = run.agent.action_dim
    random_data = rollouts(make, lambda o: rng.uniform(-1, 1, (len(o), act_dim)).astype(np.float32),
                           transitions=p.transitions, seed=p.seed + 100)
    ref_min = float(Dataset.from_arrays(_whole(random_data)).episode_returns.mean())
    expert, medium = pick_medium(run.checkpoints, ref_min, p.medium_window)
    log(f"expert: step {expert.step} (return {expert.eval_return:.1f}); medium: step {medium.step} "
        f"(return {medium.eval_return:.1f}; random {ref_min:.1f})")

    def policy(ckpt: Any, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        run.agent.actor.load_state_dict(ckpt.actor)
        return policy_fn(run.agent, deterministic=False, seed=seed)

    data: dict[str, Arrays] = {  # random and expert are always rolled out: they give the references
        "random": random_data,
        "expert": rollouts(make, policy(expert, p.seed + 300), transitions=p.transitions, seed=p.seed + 300),
    }
    if {"medium", "medium-expert"} & set(levels):
        data["medium"] = rollouts(make, policy(medium, p.seed + 200), transitions=p.transitions, seed=p.seed + 200)
    if "medium-replay" in levels:
        data["medium-replay"] = _cut(run.replay, medium.step)
    if "medium-expert" in levels:  # medium up to its last whole episode, then expert (as D4RL)
        med = _whole(data["medium"])
        joined = {k: np.concatenate([med[k], data["expert"][k]]) for k in med if k != "episode_starts"}
        data["medium-expert"] = _cut(joined, len(joined["rewards"]))
    ref_max = float(Dataset.from_arrays(_whole(data["expert"])).episode_returns.mean())
    made = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    entries = {}
    for lv in levels:
        name = names[lv]
        arrays = data[lv]
        attrs = {"origin": f"offbench generate {env} --preset {preset}",
                 "recipe": f"D4RL recipe: SAC {p.sac_steps} steps; expert = best checkpoint (step {expert.step}, "
                           f"return {expert.eval_return:.1f}); medium = step {medium.step} (return {medium.eval_return:.1f})",
                 "preset": json.dumps(dataclasses.asdict(p)), "env": env_id,
                 "ref_min_return": ref_min, "ref_max_return": ref_max}
        digest = cache.save(name, "generated", arrays, attrs)
        entries[name] = {"description": f"{env_id} {lv}, made locally with the D4RL recipe ({preset} preset)",
                         "domain": env_domain(env_id), "source": "generated", "env": env_id, "max_episode_steps": max_steps,
                         "ref_min_return": ref_min, "ref_max_return": ref_max, "score": "normalized score (local references)",
                         "target_returns": [round(ref_max * 1.1, 1), round(ref_max * 0.55, 1)],
                         "content_sha256": digest, "generated": made,
                         "command": f"offbench generate {env} --preset {preset}"}
        log(f"{name}: {len(arrays['rewards']):,} transitions, {len(arrays['episode_starts'])} episodes")
    register_local(entries)
    log(f"references: random {ref_min:.1f}, expert {ref_max:.1f}")
    return list(names.values())


def _whole(arrays: Arrays) -> Arrays:
    """Only the episodes that ended (a cut last episode would bias the mean return)."""
    ends = np.flatnonzero(arrays["terminals"] | arrays["timeouts"])
    n = int(ends[-1]) + 1 if len(ends) else len(arrays["rewards"])
    return _cut(arrays, n)
