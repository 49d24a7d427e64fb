"""Conservative Q-Learning (Kumar et al. 2020), CQL(H) with SAC, continuous actions.

With ``alpha = 0`` and ``backup_entropy`` this is Soft Actor-Critic; ``offbench generate`` trains
its online behaviour policies with exactly that.

The critic loss adds ``alpha * (logsumexp_a Q(s, a) - Q(s, a_data))``: the log-sum-exp over
actions is estimated by importance sampling from ``n_actions`` uniform actions and ``n_actions``
policy actions at s and at s'. It pushes Q down on actions the data do not support and up on
the dataset's actions. The actor is SAC's tanh-Gaussian with automatic entropy tuning; the
Bellman target uses the minimum of two target critics, without an entropy bonus.
Defaults: CORL's D4RL locomotion config (alpha 10, 10 sampled actions, policy lr 3e-5, Q lr 3e-4).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.nets import (
    TanhGaussianActor,
    TwinQ,
    adam,
    frozen,
    per_seed,
    soft_update,
    state_network,
)
from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec


@dataclass
class CQLConfig(AlgoConfig):
    alpha: float = 10.0  # weight of the conservative penalty
    n_actions: int = 10
    temperature: float = 1.0  # of the log-sum-exp
    discount: float = 0.99
    tau: float = 0.005
    policy_lr: float = 3e-5
    q_lr: float = 3e-4
    entropy_lr: float = 3e-4
    hidden: tuple[int, ...] = (256, 256, 256)
    normalize_obs: bool = True
    backup_entropy: bool = False  # subtract the entropy term in the Bellman target (SAC does; CQL does not)
    target_update_every: int = 0  # discrete actions (DQN backbone): hard target copies every N steps; 0: soft (tau)

    #: Atari (CQL paper, DQN-replay 1%): DQN backbone with the Nature-DQN encoder, alpha 4, Adam lr 5e-5,
    #: batch 32, Huber TD loss, target network copied every 2000 steps.
    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "atari": dict(steps=20_000, batch_size=32, eval_every=5_000, eval_episodes=10, alpha=4.0, q_lr=5e-5,
                      target_update_every=2_000, normalize_obs=False),
        "keytodoor": dict(steps=2_000, batch_size=128, eval_every=500, eval_episodes=100, alpha=1.0, q_lr=1e-3,
                          hidden=(256, 256), normalize_obs=False),
    }


@ALGORITHMS.register("cql")
class CQL(TransitionAlgorithm):
    """Conservative Q-Learning: SAC (continuous) or DQN (discrete) with the CQL(H) penalty.

    The critic is pushed down on actions the data do not support and up on the dataset's."""

    Config = CQLConfig
    config: CQLConfig
    continuous_only = True
    STATE = ("actor", "critic", "critic_target", "actor_optim", "critic_optim", "entropy_optim")
    seed_batched = True
    # 3 x 10 sampled actions per state: (S, 7680, 256) activations; 5 seeds together measured 0.72x on CPU
    cpu_seeds_together = 1

    def __new__(cls, config: CQLConfig, data: Dataset, spec: DatasetSpec, device: torch.device,
                seeds: Sequence[int] = (0,)) -> Any:
        if data.discrete_actions:  # one name for both action kinds, as the papers use it
            return DiscreteCQL(config, data, spec, device, seeds)
        return super().__new__(cls)

    def __init__(self, config: CQLConfig, data: Dataset, spec: DatasetSpec, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, data, spec, device, seeds)
        self.actor = TanhGaussianActor(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.critic = TwinQ(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.log_alpha = torch.zeros(len(self.seeds), 1, device=device, requires_grad=True)
        self.target_entropy = -float(self.action_dim)
        self.actor_optim = adam(self.actor.parameters(), lr=config.policy_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=config.q_lr)
        self.entropy_optim = adam([self.log_alpha], lr=config.entropy_lr)

    def repeat(self, x: torch.Tensor) -> torch.Tensor:
        """(S, B, d) -> (S, B * n, d): each row repeated n times (for sampled actions)."""
        return x.repeat_interleave(self.config.n_actions, dim=1)

    def conservative_penalty(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per critic and seed (S,): mean over the batch of logsumexp_a Q(s, a) - Q(s, a_data)."""
        c, n = self.config, self.config.n_actions
        s, bsz = b["obs"].shape[:2]
        obs_rep = self.repeat(b["obs"])
        with torch.no_grad():
            random_actions = self.noise.uniform((bsz * n, self.action_dim)) * 2 - 1
            pi_actions, pi_logp = self.actor(b["obs"], noise=self.noise.normal, samples=n)
            next_actions, next_logp = self.actor(b["next_obs"], noise=self.noise.normal, samples=n)
        random_logp = -self.action_dim * math.log(2.0)  # uniform density on [-1, 1]^d
        data_q = self.critic(b["obs"], b["actions"])
        # the three action sets through the critics at once: (S, 3 * B * n)
        q_all = self.critic(obs_rep.repeat(1, 3, 1), torch.cat([random_actions, pi_actions, next_actions], dim=1))
        log_density = torch.cat([torch.full_like(pi_logp, random_logp), pi_logp, next_logp], dim=1)
        penalties = []
        for q_index in range(2):
            cat = (q_all[q_index] - log_density).view(s, 3, bsz, n).transpose(1, 2).reshape(s, bsz, 3 * n)
            lse = torch.logsumexp(cat / c.temperature, dim=2) * c.temperature
            penalties.append(per_seed(lse - data_q[q_index]))
        return penalties[0], penalties[1]

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        c, b = self.config, self.tensors(batch)
        # actor and entropy temperature (SAC)
        actions, logp = self.actor(b["obs"], noise=self.noise.normal)
        alpha_loss = -per_seed(self.log_alpha * (logp.detach() + self.target_entropy))
        self.entropy_optim.zero_grad(set_to_none=True)
        alpha_loss.sum().backward()
        self.entropy_optim.step()
        ent = self.log_alpha.exp().detach()  # (S, 1)
        with frozen(self.critic):
            actor_loss = per_seed(ent * logp - torch.min(*self.critic(b["obs"], actions)))
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        # critics: Bellman error + conservative penalty
        with torch.no_grad():
            next_actions, next_logp = self.actor(b["next_obs"], noise=self.noise.normal)
            next_q = torch.min(*self.critic_target(b["next_obs"], next_actions))
            if c.backup_entropy:
                next_q = next_q - ent * next_logp
            target = b["rewards"] + c.discount * (1 - b["dones"]) * next_q
        q1, q2 = self.critic(b["obs"], b["actions"])
        bellman = per_seed((q1 - target).pow(2)) + per_seed((q2 - target).pow(2))
        p1, p2 = self.conservative_penalty(b) if c.alpha > 0 else (torch.zeros_like(bellman),) * 2
        critic_loss = bellman + c.alpha * (p1 + p2)
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optim.step()
        soft_update(self.critic_target, self.critic, c.tau)
        return {"critic_loss": critic_loss.detach(), "bellman": bellman.detach(), "penalty": (p1 + p2).detach() / 2,
                "actor_loss": actor_loss.detach(), "entropy_alpha": ent.squeeze(-1)}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        return self.actor(obs, deterministic=True)[0]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "log_alpha": self.log_alpha.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])


class DiscreteCQL(TransitionAlgorithm):
    """CQL(H) for discrete actions on a DQN backbone: Huber TD error to a target network plus
    ``alpha * (logsumexp_a Q(s, a) - Q(s, a_data))`` (Kumar et al. 2020, Atari experiments)."""

    Config = CQLConfig
    config: CQLConfig
    STATE = ("q", "q_target", "optim")
    seed_batched = True

    def __init__(self, config: CQLConfig, data: Dataset, spec: DatasetSpec, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, data, spec, device, seeds)
        self.q = state_network(self.obs_shape, config.hidden, self.action_dim).to(device)
        self.q_target = copy.deepcopy(self.q)
        self.optim = adam(self.q.parameters(), lr=config.q_lr, eps=0.01 / 32)
        self.steps_done = 0

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        c, b = self.config, self.tensors(batch)
        with torch.no_grad():
            next_q = self.q_target(b["next_obs"]).max(-1).values
            target = b["rewards"] + c.discount * (1 - b["dones"]) * next_q
        q_all = self.q(b["obs"])
        q_data = q_all.gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)
        td = per_seed(F.smooth_l1_loss(q_data, target, reduction="none"))
        penalty = per_seed(torch.logsumexp(q_all, dim=-1) - q_data)
        loss = td + c.alpha * penalty
        self.optim.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.optim.step()
        self.steps_done += 1
        if c.target_update_every:
            if self.steps_done % c.target_update_every == 0:
                self.q_target.load_state_dict(self.q.state_dict())
        else:
            soft_update(self.q_target, self.q, c.tau)
        return {"loss": loss.detach(), "td": td.detach(), "penalty": penalty.detach()}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        return self.q(obs).argmax(-1)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps_done = int(state["steps_done"])
