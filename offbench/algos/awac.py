"""Advantage-Weighted Actor-Critic (Nair et al. 2020), offline, as CORL runs it.

Critics learn Q^pi by TD with actions from the current policy at s'; the actor maximizes
``exp(A(s, a) / beta) * log pi(a|s)`` over dataset actions, ``A = Q(s, a) - Q(s, a_pi)``,
``a_pi`` one action sampled from the policy (weights capped at ``exp_adv_max``). The policy is a
Gaussian with an unbounded mean and a state-independent std; its samples are clipped to [-1, 1]
for the critics, and it is evaluated at its mean, unclipped (CORL ``Actor.act``: ``policy.mean``;
the simulator clips controls, the control cost sees the mean). Defaults: CORL's
``configs/offline/awac/*_v2.yaml`` and ``algorithms/offline/awac.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.config import D4RL_ADROIT, D4RL_ANTMAZE, each
from offbench.algos.nets import GaussianActor, TwinQ, soft_update
from offbench.algos.seeded import adam, per_seed
from offbench.data.info import DataInfo


@dataclass
class AWACConfig(AlgoConfig):
    """CORL's AWAC (one value on every D4RL locomotion set), evaluated every 1,000 steps on MuJoCo
    as CORL (``eval_frequency: 1000``; the other algorithms' CORL configs evaluate every 5,000)."""

    # CORL awac_lambda 0.3333 (YAML; the dataclass default is 1.0), the AWAC paper's lambda: the
    # actor's weights are exp(advantage / beta), as AWR's (this field was once named awac_lambda)
    beta: float = 0.3333
    exp_adv_max: float = 100.0  # CORL AdvantageWeightedActorCritic(exp_adv_max=100.0), not in the YAMLs
    discount: float = 0.99  # CORL gamma
    tau: float = 0.005  # CORL tau
    actor_lr: float = 3e-4  # CORL learning_rate (one Adam per network)
    critic_lr: float = 3e-4  # CORL learning_rate
    hidden: tuple[int, ...] = (256, 256, 256)  # CORL Actor / Critic: three hidden layers of hidden_dim 256
    log_std_min: float = -20.0  # CORL Actor(min_log_std=-20.0): the clamp of the state-independent log-std
    log_std_max: float = 2.0  # CORL Actor(max_log_std=2.0)
    normalize_obs: bool = True  # CORL awac.py always normalizes states
    obs_std_eps: float = 1e-3  # CORL compute_mean_std(dataset["observations"], eps=1e-3): (s - mean) / (std + 1e-3)
    # training rewards are reward_scale * r + reward_bias: CORL's modify_reward on AntMaze (its
    # normalize_reward there) subtracts 1 (reward_bias -1.0 on antmaze-*, DATASET_DEFAULTS)
    reward_scale: float = 1.0
    reward_bias: float = 0.0

    #: CORL eval_frequency 1000 in every AWAC config (locomotion, AntMaze, Adroit)
    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {"mujoco": {"eval_every": 1_000},
                                                             "robotics": {"eval_every": 1_000}}
    #: CORL configs/offline/awac/{antmaze,pen,door,hammer,relocate}/*.yaml: awac_lambda 0.1; AntMaze
    #: also normalize_reward true (r - 1) and 100 evaluation episodes.
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        **each(D4RL_ANTMAZE, {"beta": 0.1, "reward_bias": -1.0, "eval_episodes": 100}),
        **each(D4RL_ADROIT, {"beta": 0.1}),
    }
    RENAMED: ClassVar[dict[str, tuple[str, ...]]] = {"awac_lambda": ("beta",)}


@ALGORITHMS.register("awac")
class AWAC(TransitionAlgorithm):
    """AWAC: policy improvement by advantage-weighted maximum likelihood (beta, the paper's lambda, 1/3)."""

    Config = AWACConfig
    config: AWACConfig
    continuous_only = True
    STATE = ("actor", "critic", "critic_target", "actor_optim", "critic_optim")
    seed_batched = True

    def __init__(self, config: AWACConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        # CORL Actor: unbounded mean (no tanh), log-std a parameter clamped to [-20, 2]
        self.actor = GaussianActor(self.obs_dim, self.action_dim, config.hidden,
                                   log_std_bounds=(config.log_std_min, config.log_std_max), tanh_mean=False).to(device)
        self.critic = TwinQ(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_optim = adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=config.critic_lr)

    def sample_pi(self, mean: torch.Tensor) -> torch.Tensor:
        """An action drawn around the policy's ``mean`` action, clipped to [-1, 1] (CORL
        ``Actor.forward``: ``policy.rsample()`` then ``clamp_(min_action, max_action)``)."""
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
            weights = torch.exp((both[:, n:] - both[:, :n]) / c.beta).clamp(max=c.exp_adv_max)
        actor_loss = -per_seed(weights * self.actor.log_prob_at(mean, b["actions"]))
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        soft_update(self.critic_target, self.critic, c.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        """The policy's mean, unclipped, as CORL evaluates it."""
        return self.actor(obs)
