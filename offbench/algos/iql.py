"""Implicit Q-Learning (Kostrikov et al. 2021): in-sample value learning, then weighted BC.

V(s) is fit by expectile regression to min target Q(s, a) over dataset actions only (``expectile``
tau > 0.5 approaches the maximum over in-support actions); Q(s, a) regresses on
``r + gamma * V(s')``; the policy maximizes ``exp(beta * (Q - V)) * log pi(a|s)`` (weights capped
at 100). Locomotion rewards are scaled by ``1000 / (max return - min return)`` as in CORL.
Defaults: CORL's D4RL config (expectile 0.7, temperature 3.0; hopper-medium-expert 0.5 / 6.0).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.nets import GaussianActor, TwinQ, adam, mlp, per_seed, soft_update
from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec

EXP_ADV_MAX = 100.0


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared loss ``|tau - 1(diff < 0)| * diff^2`` per element; the minimizer of its
    mean over a constant v for ``diff = x - v`` is the tau-expectile of x."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff.pow(2)


@dataclass
class IQLConfig(AlgoConfig):
    expectile: float = 0.7
    temperature: float = 3.0  # beta
    discount: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = True
    normalize_reward: bool = True
    deterministic: bool = False  # evaluate the policy's mean either way; False: Gaussian log-likelihood

    #: hopper-medium-expert uses expectile 0.5, temperature 6.0 (CORL / the IQL paper).
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "hopper-medium-expert": {"expectile": 0.5, "temperature": 6.0}}


@ALGORITHMS.register("iql")
class IQL(TransitionAlgorithm):
    """Implicit Q-Learning: expectile value regression, advantage-weighted policy extraction."""

    Config = IQLConfig
    config: IQLConfig
    continuous_only = True
    STATE = ("actor", "critic", "critic_target", "value", "actor_optim", "critic_optim", "value_optim", "actor_sched")
    seed_batched = True

    def __init__(self, config: IQLConfig, data: Dataset, spec: DatasetSpec, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, data, spec, device, seeds)
        self.actor = GaussianActor(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.critic = TwinQ(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.value = mlp(self.obs_dim, config.hidden, 1).to(device)
        self.actor_optim = adam(self.actor.parameters(), lr=config.lr)
        self.critic_optim = adam(self.critic.parameters(), lr=config.lr)
        self.value_optim = adam(self.value.parameters(), lr=config.lr)
        self.actor_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_optim, max(1, config.steps))

    def reward_scale_for(self, data: Dataset) -> float:
        if not self.config.normalize_reward or self.spec.domain != "mujoco":
            return 1.0
        spread = float(data.episode_returns.max() - data.episode_returns.min())
        return 1000.0 / spread if spread > 0 else 1.0

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        c, b = self.config, self.tensors(batch)
        with torch.no_grad():
            q_target = torch.min(*self.critic_target(b["obs"], b["actions"]))
            next_v = self.value(b["next_obs"]).squeeze(-1)
        v = self.value(b["obs"]).squeeze(-1)
        adv = q_target - v
        value_loss = per_seed(expectile_loss(adv, c.expectile))
        self.value_optim.zero_grad(set_to_none=True)
        value_loss.sum().backward()
        self.value_optim.step()

        target = b["rewards"] + c.discount * (1.0 - b["dones"]) * next_v
        q1, q2 = self.critic(b["obs"], b["actions"])
        critic_loss = (per_seed((q1 - target).pow(2)) + per_seed((q2 - target).pow(2))) / 2
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optim.step()
        soft_update(self.critic_target, self.critic, c.tau)

        weights = torch.exp(c.temperature * adv.detach()).clamp(max=EXP_ADV_MAX)
        if c.deterministic:
            bc = (self.actor(b["obs"]) - b["actions"]).pow(2).sum(-1)
        else:
            bc = -self.actor.log_prob(b["obs"], b["actions"])
        actor_loss = per_seed(weights * bc)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        self.actor_sched.step()
        return {"value_loss": value_loss.detach(), "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        return self.actor(obs)
