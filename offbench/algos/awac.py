"""Advantage-Weighted Actor-Critic (Nair et al. 2020), offline.

Critics learn Q^pi by TD with actions from the current policy at s'; the actor maximizes
``exp(A(s, a) / lambda) * log pi(a|s)`` over dataset actions, ``A = Q(s, a) - Q(s, pi(s))``
(weights capped at 100). Defaults: lambda 1/3, lr 3e-4, batch 256 (CORL-style locomotion setup).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.nets import GaussianActor, TwinQ, adam, per_seed, soft_update
from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec

EXP_ADV_MAX = 100.0


@dataclass
class AWACConfig(AlgoConfig):
    awac_lambda: float = 1.0 / 3.0
    discount: float = 0.99
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = True


@ALGORITHMS.register("awac")
class AWAC(TransitionAlgorithm):
    """AWAC: policy improvement by advantage-weighted maximum likelihood (lambda 1/3)."""

    Config = AWACConfig
    config: AWACConfig
    continuous_only = True
    STATE = ("actor", "critic", "critic_target", "actor_optim", "critic_optim")
    seed_batched = True

    def __init__(self, config: AWACConfig, data: Dataset, spec: DatasetSpec, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, data, spec, device, seeds)
        self.actor = GaussianActor(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.critic = TwinQ(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_optim = adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=config.critic_lr)

    def sample_pi(self, mean: torch.Tensor) -> torch.Tensor:
        """An action drawn around the policy's ``mean`` action (clipped to [-1, 1])."""
        return (mean + self.actor.std(mean) * self.noise.normal(tuple(mean.shape[1:]))).clamp(-1.0, 1.0)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        c, b = self.config, self.tensors(batch)
        n = b["obs"].shape[1]
        with torch.no_grad():
            next_q = torch.min(*self.critic_target(b["next_obs"], self.sample_pi(self.actor(b["next_obs"]))))
            target = b["rewards"] + c.discount * (1.0 - b["dones"]) * next_q
        q1, q2 = self.critic(b["obs"], b["actions"])
        critic_loss = per_seed((q1 - target).pow(2)) + per_seed((q2 - target).pow(2))
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optim.step()

        # one actor pass on s serves the value baseline's action and the loss (the actor has not
        # changed yet), and one pass of the updated critics scores both actions
        mean = self.actor(b["obs"])
        with torch.no_grad():
            both = torch.min(*self.critic(b["obs"].repeat(1, 2, 1), torch.cat([self.sample_pi(mean), b["actions"]], dim=1)))
            weights = torch.exp((both[:, n:] - both[:, :n]) / c.awac_lambda).clamp(max=EXP_ADV_MAX)
        actor_loss = -per_seed(weights * self.actor.log_prob_at(mean, b["actions"]))
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        soft_update(self.critic_target, self.critic, c.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        return self.actor(obs)
