"""Implicit Q-Learning (Kostrikov et al. 2021): in-sample value learning, then weighted BC.

V(s) is fit by expectile regression to min target Q(s, a) over dataset actions only (``expectile``
tau > 0.5 approaches the maximum over in-support actions); Q(s, a) regresses on
``r + gamma * V(s')``; the policy maximizes ``exp(beta * (Q - V)) * log pi(a|s)`` (weights capped
at 100), or, with ``deterministic``, minimizes ``exp(beta * (Q - V)) * |pi(s) - a|^2``.

Two recipes (``--set recipe=NAME``) for D4RL locomotion, which differ per dataset:

- ``corl`` (default), CORL's ``configs/offline/iql/*_v2.yaml``: expectile 0.7, beta 3.0,
  Gaussian actor with log-std in [-20, 2], tau 0.005, rewards as they are; hopper-medium and
  hopper-medium-replay: deterministic actor, tau 0.001, rewards normalized; hopper-medium-expert:
  expectile 0.5, beta 6.0.
- ``paper``, the IQL authors' code (ikostrikov/implicit_q_learning, ``configs/mujoco_config.py``,
  ``train_offline.py``): expectile 0.7 and beta (their ``temperature``) 3.0 on every set (hopper-medium-expert
  too), rewards times ``1000 / (max - min episode return)`` on every set, Gaussian actor with
  log-std in [-5, 2], tau 0.005, states not standardized.

Both run CORL's update (V, then Q and its target, then the actor, with the advantage from the V
before its step) and PyTorch's default init; the authors' code updates the actor before Q, with
the new V, and initializes orthogonally.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.config import D4RL_ADROIT, D4RL_ANTMAZE, D4RL_KITCHEN, each
from offbench.algos.nets import DeterministicActor, GaussianActor, TwinQ, mlp, soft_update
from offbench.algos.seeded import adam, per_seed
from offbench.data.info import DataInfo


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared loss ``|tau - 1(diff < 0)| * diff^2`` per element; the minimizer of its
    mean over a constant v for ``diff = x - v`` is the tau-expectile of x."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff.pow(2)


@dataclass
class IQLConfig(AlgoConfig):
    """Class defaults: CORL's values on most D4RL sets; the per-dataset ones are in ``RECIPES``."""

    recipe: str = "corl"  # corl (CORL's YAMLs) or paper (the IQL authors' code); see the module docstring
    expectile: float = 0.7  # CORL iql_tau; IQL authors' expectile
    # CORL beta; the IQL authors' temperature: the actor's weights are exp(beta * advantage) (an
    # inverse temperature; this field was once named `temperature`)
    beta: float = 3.0
    discount: float = 0.99  # CORL discount
    tau: float = 0.005  # CORL tau (target Q's Polyak rate)
    actor_lr: float = 3e-4  # CORL actor_lr; IQL authors' actor_lr
    critic_lr: float = 3e-4  # CORL qf_lr; IQL authors' critic_lr
    value_lr: float = 3e-4  # CORL vf_lr; IQL authors' value_lr
    # CORL iql.py: CosineAnnealingLR(actor_optimizer, max_steps); IQL authors' opt_decay_schedule
    # "cosine" (optax.cosine_decay_schedule over max_steps): the actor's rate falls to 0 over `steps`
    actor_lr_schedule: Literal["cosine", "constant"] = "cosine"
    hidden: tuple[int, ...] = (256, 256)  # CORL hidden_dim 256, n_hidden 2 (actor, Q and V)
    normalize_obs: bool = True  # CORL normalize
    obs_std_eps: float = 1e-3  # CORL compute_mean_std(dataset["observations"], eps=1e-3): (s - mean) / (std + 1e-3)
    # CORL normalize_reward: rewards times 1000 / (max - min episode return) (iql.py modify_reward)
    normalize_reward: bool = False
    # the return span of the normalized rewards: CORL iql.py modify_reward (rewards * max_episode_steps
    # 1000 / return range), the IQL authors' train_offline.py normalize (rewards * 1000.0 / range)
    reward_range: float = 1000.0
    # CORL iql_deterministic: DeterministicPolicy (tanh MLP, loss sum over action dims of the squared
    # error, weighted by exp_adv); else GaussianPolicy (tanh mean, state-independent log-std)
    deterministic: bool = False
    log_std_min: float = -20.0  # CORL LOG_STD_MIN (iql.py l.26); the IQL authors' log_std_min -5.0
    log_std_max: float = 2.0  # CORL LOG_STD_MAX; IQL authors' LOG_STD_MAX
    exp_adv_max: float = 100.0  # CORL EXP_ADV_MAX; IQL authors' actor.py jnp.minimum(exp_a, 100.0)
    # dropout after each hidden activation of the actor, in training only: CORL actor_dropout (Adroit
    # 0.1), the IQL authors' dropout_rate (kitchen_config.py 0.1, used for Kitchen and Adroit)
    actor_dropout: float = 0.0
    # training rewards are reward_scale * r + reward_bias: on AntMaze CORL's modify_reward and the
    # IQL authors' train_offline.py subtract 1 (reward_bias -1.0 on antmaze-*)
    reward_scale: float = 1.0
    reward_bias: float = 0.0

    #: Per-dataset values of each recipe (over the class defaults). On locomotion CORL's YAMLs differ
    #: from the values above only on three hopper sets; the IQL authors' mujoco_config has one setting
    #: for all. AntMaze: CORL's antmaze/*.yaml and the authors' antmaze_config.py (expectile 0.9,
    #: beta 10, rewards r - 1, 100 evaluation episodes: their README's --eval_episodes=100). Adroit:
    #: CORL's {pen,door,hammer,relocate}/*.yaml (expectile 0.8, actor dropout 0.1, rewards as they
    #: are); the authors run Adroit and Kitchen with kitchen_config.py (expectile 0.7, beta 0.5,
    #: dropout 0.1). CORL has no Kitchen configs: the class defaults there.
    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "corl": {
            "hopper-medium": {"normalize_reward": True, "deterministic": True, "tau": 0.001},
            "hopper-medium-replay": {"normalize_reward": True, "deterministic": True, "tau": 0.001},
            "hopper-medium-expert": {"expectile": 0.5, "beta": 6.0},
            **each(D4RL_ANTMAZE, {"expectile": 0.9, "beta": 10.0, "tau": 0.005, "deterministic": False,
                                  "reward_bias": -1.0, "eval_episodes": 100}),
            **each(D4RL_ADROIT, {"expectile": 0.8, "actor_dropout": 0.1, "tau": 0.005, "deterministic": False,
                                 "normalize_reward": False}),
        },
        "paper": {
            "*": {"expectile": 0.7, "beta": 3.0, "tau": 0.005, "normalize_reward": True,
                  "deterministic": False, "log_std_min": -5.0, "log_std_max": 2.0, "normalize_obs": False},
            **each(D4RL_ANTMAZE, {"expectile": 0.9, "beta": 10.0, "normalize_reward": False, "reward_bias": -1.0,
                                  "eval_episodes": 100}),
            **each(D4RL_ADROIT + D4RL_KITCHEN, {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1,
                                                "normalize_reward": False}),
        },
    }
    RENAMED: ClassVar[dict[str, tuple[str, ...]]] = {"temperature": ("beta",),
                                                      "lr": ("actor_lr", "critic_lr", "value_lr")}


@ALGORITHMS.register("iql")
class IQL(TransitionAlgorithm):
    """Implicit Q-Learning: expectile value regression, advantage-weighted policy extraction."""

    Config = IQLConfig
    config: IQLConfig
    continuous_only = True
    STATE = ("actor", "critic", "critic_target", "value", "actor_optim", "critic_optim", "value_optim", "actor_sched")
    seed_batched = True

    def __init__(self, config: IQLConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        if config.deterministic:
            self.actor: torch.nn.Module = DeterministicActor(self.obs_dim, self.action_dim, config.hidden).to(device)
        else:
            self.actor = GaussianActor(self.obs_dim, self.action_dim, config.hidden,
                                       log_std_bounds=(config.log_std_min, config.log_std_max),
                                       dropout=config.actor_dropout).to(device)
        self.critic = TwinQ(self.obs_dim, self.action_dim, config.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.value = mlp(self.obs_dim, config.hidden, 1).to(device)
        self.actor_optim = adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=config.critic_lr)
        self.value_optim = adam(self.value.parameters(), lr=config.value_lr)
        self.actor_sched: torch.optim.lr_scheduler.LRScheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_optim, max(1, config.steps))
            if config.actor_lr_schedule == "cosine" else torch.optim.lr_scheduler.ConstantLR(self.actor_optim, 1.0, 0))


    def actor_loss(self, b: dict[str, torch.Tensor], adv: torch.Tensor) -> torch.Tensor:
        """Per seed: mean of ``min(exp(beta * adv), exp_adv_max)`` times the BC loss, the squared
        error summed over action dimensions (deterministic) or the negative log-likelihood."""
        c = self.config
        weights = torch.exp(c.beta * adv.detach()).clamp(max=c.exp_adv_max)
        if c.deterministic:
            bc = (self.actor(b["obs"]) - b["actions"]).pow(2).sum(-1)
        else:  # the actor in training mode: dropout (actor_dropout) with each seed's own masks
            bc = -self.actor.log_prob(b["obs"], b["actions"], noise=self.noise)
        return per_seed(weights * bc)

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

        actor_loss = self.actor_loss(b, adv)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        self.actor_sched.step()
        return {"value_loss": value_loss.detach(), "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        """The deterministic actor's action, or the Gaussian's mean (both tanh, inside [-1, 1])."""
        return self.actor(obs)
