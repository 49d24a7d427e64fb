"""Online Soft Actor-Critic and policy rollouts: the behaviour policies of ``offbench generate``.

SAC here is :class:`offbench.algos.cql.CQL` with ``alpha = 0`` (no conservative penalty) and the
entropy term in the Bellman target, trained on its own replay buffer, one gradient step per
environment step after a warm-up of uniform-random actions. Its actor is saved at every
checkpoint together with a deterministic evaluation of its return, so a recipe can pick a
checkpoint by return afterwards (D4RL's "medium": about a third of the expert's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from offbench.algos.cql import CQL, CQLConfig
from offbench.data.dataset import Dataset
from offbench.data.sources.d4rl import episode_starts
from offbench.data.info import DataInfo

Arrays = dict[str, np.ndarray]
ActFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Checkpoint:
    step: int
    eval_return: float
    actor: dict[str, torch.Tensor]


@dataclass
class SACRun:
    """Everything an online run leaves: its replay buffer (in order) and its checkpoints."""

    replay: Arrays
    agent: CQL
    checkpoints: list[Checkpoint] = field(default_factory=list)
    seconds: float = 0.0


def make_sac(env: gym.Env, hidden: tuple[int, ...], device: torch.device, lr: float = 3e-4, seed: int = 0) -> CQL:
    """A SAC agent for ``env``'s spaces (observations unnormalized, actions in [-1, 1])."""
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    cfg = CQLConfig(alpha=0.0, backup_entropy=True, actor_lr=lr, critic_lr=lr, entropy_lr=lr, hidden=hidden, critic_hidden=hidden,
                    normalize_obs=False)
    env_id = env.spec.id if env.spec else "env"
    info = DataInfo(name=f"online {env_id}", domain="online", obs_shape=(obs_dim,), action_dim=act_dim, discrete=False)
    return CQL(cfg, info, device, seeds=(seed,))


def policy_fn(agent: CQL, deterministic: bool, seed: int) -> ActFn:
    """Batched actions of ``agent``'s actor (sampled or its mean), seeded."""
    gen = torch.Generator(device=agent.device).manual_seed(seed)

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(obs, dtype=torch.float32, device=agent.device)[None]  # the agent's one seed
        action = agent.actor(x, deterministic=deterministic,
                             noise=lambda shape: torch.randn((1, *shape), generator=gen, device=agent.device))[0]
        return action[0].cpu().numpy()

    return act


def evaluate_return(make_env: Callable[[], gym.Env], act: ActFn, episodes: int, seed: int) -> float:
    """Mean undiscounted return of ``act`` over ``episodes`` episodes stepped in lock step."""
    data = rollouts(make_env, act, episodes=episodes, seed=seed)
    return float(Dataset.from_arrays(data).episode_returns.mean())


def train_sac(make_env: Callable[[], gym.Env], steps: int, start_steps: int, checkpoint_every: int,
              eval_episodes: int, seed: int, hidden: tuple[int, ...] = (256, 256), batch_size: int = 256,
              device: torch.device | None = None, log: Callable[[str], None] | None = None) -> SACRun:
    """Train SAC online for ``steps`` environment steps; checkpoint and evaluate every ``checkpoint_every``."""
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = make_env()
    agent = make_sac(env, hidden, device, seed=seed)
    obs_dim, act_dim = agent.obs_dim, agent.action_dim
    buf = {"observations": np.zeros((steps, obs_dim), np.float32), "actions": np.zeros((steps, act_dim), np.float32),
           "rewards": np.zeros(steps, np.float32), "next_observations": np.zeros((steps, obs_dim), np.float32),
           "terminals": np.zeros(steps, bool), "timeouts": np.zeros(steps, bool)}
    act = policy_fn(agent, deterministic=False, seed=seed)
    run = SACRun(replay=buf, agent=agent)
    t0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    for t in range(steps):
        if t < start_steps:
            action = rng.uniform(-1.0, 1.0, size=act_dim).astype(np.float32)
        else:
            action = act(obs[None].astype(np.float32))[0]
        nxt, reward, terminated, truncated, _ = env.step(action)
        buf["observations"][t], buf["actions"][t], buf["rewards"][t] = obs, action, reward
        buf["next_observations"][t], buf["terminals"][t], buf["timeouts"][t] = nxt, terminated, truncated
        obs = nxt
        if terminated or truncated:
            obs, _ = env.reset()
        if t >= start_steps:
            idx = rng.integers(0, t + 1, size=batch_size)
            agent.update({"observations": buf["observations"][idx][None], "actions": buf["actions"][idx][None],
                          "rewards": buf["rewards"][idx][None], "next_observations": buf["next_observations"][idx][None],
                          "dones": buf["terminals"][idx][None].astype(np.float32)})
        if (t + 1) % checkpoint_every == 0 or t + 1 == steps:
            ret = evaluate_return(make_env, policy_fn(agent, True, seed), eval_episodes, seed=10_000 + t)
            run.checkpoints.append(Checkpoint(t + 1, ret, {k: v.clone() for k, v in agent.actor.state_dict().items()}))
            if log:
                log(f"SAC step {t + 1}/{steps}: return {ret:.1f} ({time.perf_counter() - t0:.0f} s)")
    buf["timeouts"][-1] |= not buf["terminals"][-1]  # the buffer ends mid-episode: mark it cut
    env.close()
    run.seconds = time.perf_counter() - t0
    return run


def rollouts(make_env: Callable[[], gym.Env], act: ActFn, episodes: int | None = None,
             transitions: int | None = None, seed: int = 0, n_envs: int = 10) -> Arrays:
    """Episodes of ``act`` in D4RL layout (whole episodes, each contiguous, in completion order).

    Stops after ``episodes`` episodes, or once ``transitions`` steps are collected (the last
    episode is then cut to hit the count exactly, as D4RL's files end).
    """
    assert (episodes is None) != (transitions is None)
    n_envs = min(n_envs, episodes) if episodes else n_envs
    envs = [make_env() for _ in range(n_envs)]
    started = n_envs
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    open_eps: list[dict[str, list[Any]]] = [_episode() for _ in envs]
    done_eps: list[dict[str, list[Any]]] = []
    total = 0
    active = np.ones(n_envs, dtype=bool)
    while active.any():
        actions = act(obs)
        for i in np.flatnonzero(active):
            nxt, r, term, trunc, _ = envs[i].step(actions[i])
            ep = open_eps[i]
            for k, v in (("observations", obs[i].copy()), ("actions", actions[i]), ("rewards", r),
                         ("next_observations", nxt), ("terminals", term), ("timeouts", trunc)):
                ep[k].append(v)
            obs[i] = nxt
            if term or trunc:
                done_eps.append(ep)
                total += len(ep["rewards"])
                open_eps[i] = _episode()
                finished = (episodes is not None and started >= episodes) or \
                           (transitions is not None and total >= transitions)
                if finished:
                    active[i] = False
                else:
                    obs[i] = envs[i].reset(seed=seed + started)[0]
                    started += 1
    for e in envs:
        e.close()
    if episodes is not None:
        done_eps = done_eps[:episodes]
    out = {k: np.concatenate([np.asarray(ep[k]) for ep in done_eps]) for k in done_eps[0]}
    if transitions is not None:
        out = {k: v[:transitions] for k, v in out.items()}
    dtypes = {"terminals": bool, "timeouts": bool}
    out = {k: v.astype(dtypes.get(k, np.float32)) for k, v in out.items()}
    out["episode_starts"] = episode_starts(out["terminals"], out["timeouts"])
    return out


def _episode() -> dict[str, list[Any]]:
    return {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}
