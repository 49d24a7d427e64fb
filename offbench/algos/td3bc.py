"""TD3+BC (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term in the actor loss.

Actor loss: ``-lambda * Q1(s, pi(s)) + (pi(s) - a)^2`` with ``lambda = alpha / mean|Q1(s, pi(s))|``,
so ``alpha`` trades off RL against imitation (alpha -> 0 is behaviour cloning). Critics: clipped
double Q-learning with target policy smoothing; the actor and targets update every
``policy_freq`` steps. Defaults: CORL's D4RL locomotion config.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.config import D4RL_ANTMAZE, each
from offbench.algos.nets import TwinQ, frozen, mlp, soft_update
from offbench.algos.seeded import adam, per_seed
from offbench.data.info import DataInfo


@dataclass
class TD3BCConfig(AlgoConfig):
    """CORL's ``configs/offline/td3_bc/*_v2.yaml`` (one value on every D4RL locomotion set) and
    ``algorithms/offline/td3_bc.py``."""

    alpha: float = 2.5  # CORL alpha
    discount: float = 0.99  # CORL discount
    tau: float = 0.005  # CORL tau (targets move on actor-update steps only, td3_bc.py l.376-378)
    policy_noise: float = 0.2  # CORL policy_noise (times max_action 1)
    noise_clip: float = 0.5  # CORL noise_clip
    policy_freq: int = 2  # CORL policy_freq
    actor_lr: float = 3e-4  # CORL td3_bc.py l.454: Adam(lr=3e-4), hard-coded
    critic_lr: float = 3e-4  # CORL td3_bc.py l.457, l.459
    hidden: tuple[int, ...] = (256, 256)  # CORL Actor / Critic: two hidden layers of 256
    normalize_obs: bool = True  # CORL normalize
    obs_std_eps: float = 1e-3  # CORL compute_mean_std(dataset["observations"], eps=1e-3): (s - mean) / (std + 1e-3)
    # training rewards are reward_scale * r + reward_bias: CORL's modify_reward on AntMaze (its
    # normalize_reward there) subtracts 1 (reward_bias -1.0 on antmaze-*, DATASET_DEFAULTS)
    reward_scale: float = 1.0
    reward_bias: float = 0.0

    #: CORL configs/offline/td3_bc/antmaze/*.yaml: normalize_reward true (r - 1), 100 evaluation
    #: episodes; its Adroit configs are its hopper-medium values (the class defaults).
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = each(D4RL_ANTMAZE, {"reward_bias": -1.0, "eval_episodes": 100})


@ALGORITHMS.register("td3bc")
class TD3BC(TransitionAlgorithm):
    """TD3+BC: TD3 regularized towards the dataset's actions (alpha 2.5)."""

    Config = TD3BCConfig
    config: TD3BCConfig
    continuous_only = True
    STATE = ("actor", "actor_target", "critic", "critic_target", "actor_optim", "critic_optim")
    seed_batched = True

    def __init__(self, config: TD3BCConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        self.actor = mlp(self.obs_dim, config.hidden, self.action_dim).to(device)
        self.critic = TwinQ(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_optim = adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=config.critic_lr)
        self.steps_done = 0

    def pi(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        return torch.tanh((self.actor_target if target else self.actor)(obs))

    def critic_loss(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config
        with torch.no_grad():
            noise = (self.noise.normal(tuple(b["actions"].shape[1:])) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_action = (self.pi(b["next_obs"], target=True) + noise).clamp(-1.0, 1.0)
            q1_t, q2_t = self.critic_target(b["next_obs"], next_action)
            target = b["rewards"] + c.discount * (1.0 - b["dones"]) * torch.min(q1_t, q2_t)
        q1, q2 = self.critic(b["obs"], b["actions"])
        return per_seed((q1 - target).pow(2)) + per_seed((q2 - target).pow(2))

    def actor_loss(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per seed: ``-lambda * mean Q1(s, pi(s)) + mean (pi(s) - a)^2``, lambda from that seed's Q."""
        action = self.pi(b["obs"])
        with frozen(self.critic):
            q = self.critic.q1(torch.cat([b["obs"], action], dim=-1)).squeeze(-1)
        # CORL: lmbda = alpha / q.abs().mean().detach() (td3_bc.py l.366); the floor only keeps a
        # Q that is exactly 0 everywhere from dividing by zero
        lam = self.config.alpha / per_seed(q.abs()).detach().clamp_min(1e-6)
        return -lam * per_seed(q) + per_seed((action - b["actions"]).pow(2))

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        b = self.tensors(batch)
        self.steps_done += 1
        critic_loss = self.critic_loss(b)
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optim.step()
        metrics = {"critic_loss": critic_loss.detach()}
        if self.steps_done % self.config.policy_freq == 0:
            actor_loss = self.actor_loss(b)
            self.actor_optim.zero_grad(set_to_none=True)
            actor_loss.sum().backward()
            self.actor_optim.step()
            soft_update(self.actor_target, self.actor, self.config.tau)
            soft_update(self.critic_target, self.critic, self.config.tau)
            metrics["actor_loss"] = actor_loss.detach()
        return metrics

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        return self.pi(obs)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps_done = int(state["steps_done"])
