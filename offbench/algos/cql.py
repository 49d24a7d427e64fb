"""Conservative Q-Learning (Kumar et al. 2020), CQL(H) with SAC, continuous actions.

With ``alpha = 0`` and ``backup_entropy`` this is Soft Actor-Critic; ``offbench generate`` trains
its online behaviour policies with exactly that (from the class defaults: rlkit-style SAC with
PyTorch's default init and a log-std clamped to [-5, 2]).

The critic loss adds ``alpha * (logsumexp_a Q(s, a) - Q(s, a_data))``: the log-sum-exp over
actions is estimated by importance sampling from ``n_actions`` uniform actions and ``n_actions``
policy actions at s and at s' (all evaluated at s). It pushes Q down on actions the data do not
support and up on the dataset's actions. The actor is SAC's tanh-Gaussian with automatic entropy
tuning; the Bellman target uses the minimum of two target critics, without an entropy bonus.

On D4RL locomotion (the ``mujoco`` domain) the defaults are CORL's (``configs/offline/cql/*_v2.yaml``,
``algorithms/offline/cql.py``): alpha 10, 10 sampled actions, policy lr 3e-5 (also the entropy
temperature's), Q lr 3e-4, three hidden layers of 256, orthogonal critics, the actor's learned
log-std multiplier and offset, log-std in [-20, 2], rewards normalized on hopper-medium only. As
in CORL's ``ContinuousCQL.train``, every loss of a step is built from the networks as they are at
its start (temperature, actor and critic are then stepped in that order).
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

from offbench.algos.base import ALGORITHMS, AlgoConfig, Algorithm, TransitionAlgorithm
from offbench.algos.config import D4RL_ADROIT, D4RL_ANTMAZE, each
from offbench.algos.discrete import DOPAMINE_ADAM_EPS, DiscreteQLearner, q_network
from offbench.algos.nets import TanhGaussianActor, TwinQ, frozen, soft_update
from offbench.algos.seeded import adam, orthogonal_init_, per_seed, xavier_last_layer_
from offbench.data.info import DataInfo


#: CORL's CQL model on D4RL (not SAC's, which ``offbench generate`` builds from the class defaults).
CORL_MODEL: dict[str, Any] = dict(corl_init=True, learn_log_std_scale=True, log_std_min=-20.0)


@dataclass
class CQLConfig(AlgoConfig):
    """Class defaults: CORL's values where SAC shares them; what only CORL's CQL does (its init,
    its log-std) is switched on for the ``mujoco`` domain, so that ``offbench generate``'s SAC
    (built from the class defaults) keeps its own."""

    alpha: float = 10.0  # CORL cql_alpha 10.0 (cql_lagrange false: a fixed weight of the conservative penalty)
    n_actions: int = 10  # CORL cql_n_actions (cql_importance_sample true)
    temperature: float = 1.0  # CORL cql_temp, of the log-sum-exp
    discount: float = 0.99  # CORL discount
    tau: float = 0.005  # CORL soft_target_update_rate, every step (target_update_period 1)
    actor_lr: float = 3e-5  # CORL policy_lr (this field was once named policy_lr)
    critic_lr: float = 3e-4  # CORL qf_lr (this field was once named q_lr)
    # the entropy temperature's Adam lr; 0: the actor's lr, as in CORL (cql.py l.497-499:
    # Adam(log_alpha, lr=policy_lr)) and the CQL authors' code (rlkit cql.py: lr=policy_lr)
    entropy_lr: float = 0.0
    hidden: tuple[int, ...] = (256, 256, 256)  # the actor's layers: CORL's actor 3 x 256 (hard-coded)
    # the critics' layers (the Q network's, discrete): CORL q_n_hidden_layers 3 x 256 (AntMaze 5 x 256)
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    normalize_obs: bool = True  # CORL normalize
    obs_std_eps: float = 1e-3  # CORL compute_mean_std(dataset["observations"], eps=1e-3): (s - mean) / (std + 1e-3)
    # CORL normalize_reward (true only for hopper-medium, DATASET_DEFAULTS): rewards times
    # 1000 / (max - min episode return) (modify_reward with reward_scale 1.0, reward_bias 0.0)
    normalize_reward: bool = False
    # the return span of the normalized rewards: CORL cql.py modify_reward, max_episode_steps 1000
    reward_range: float = 1000.0
    # training rewards are reward_scale * r + reward_bias (CORL reward_scale, reward_bias; AntMaze
    # 10 r - 5), after the locomotion normalization above
    reward_scale: float = 1.0
    reward_bias: float = 0.0
    # CORL cql_lagrange: the penalty's weight is alpha * alpha', alpha' = exp(log alpha') (from 1.0,
    # clamped to [0, 1e6], Adam at critic_lr) tuned so the penalty approaches target_action_gap
    lagrange: bool = False
    target_action_gap: float = -1.0  # CORL cql_target_action_gap (AntMaze 0.8)
    # CORL cql_max_target_backup: the Bellman target's next action is the best of n_actions sampled ones
    max_target_backup: bool = False
    # CORL cql_clip_diff_min / cql_clip_diff_max: each state's logsumexp Q - Q(s, a_data) clamped to
    # [min, max] before its mean (AntMaze min -200)
    clip_diff_min: float = -math.inf
    clip_diff_max: float = math.inf
    backup_entropy: bool = False  # CORL backup_entropy: subtract the entropy term in the Bellman target (SAC does)
    # CORL init_module_weights: critics orthogonal_init (gain sqrt(2) hidden, 1e-2 last layer, zero
    # biases); actor hidden layers nn.Linear's default, last layer xavier_uniform gain 1e-2, zero bias
    corl_init: bool = False
    log_std_min: float = -5.0  # the clamp of the actor's log-std; CORL ReparameterizedTanhGaussian: -20.0
    log_std_max: float = 2.0  # CORL ReparameterizedTanhGaussian log_std_max 2.0
    # CORL TanhGaussianPolicy: log_std = multiplier * head + offset, both learned (Scalar, actor Adam)
    learn_log_std_scale: bool = False
    log_std_multiplier: float = 1.0  # its initial multiplier: CORL policy_log_std_multiplier 1.0
    log_std_offset: float = -1.0  # its initial offset: CORL TanhGaussianPolicy(log_std_offset=-1.0)
    target_update_every: int = 0  # discrete actions (DQN backbone): hard target copies every N steps; 0: soft (tau)
    # corl: CORL's continuous CQL | offbench: the discrete variant (Key-to-Door, Atari), offbench's own
    recipe: str = "corl"

    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {"corl": {"*": {}}, "offbench": {"*": {}}}

    #: mujoco: CORL's CQL (its init and log-std); Atari (CQL paper, DQN-replay 1%): DQN backbone
    #: with the Nature-DQN encoder, alpha 4, Adam lr 5e-5, batch 32, Huber TD loss, target network
    #: copied every 2000 steps.
    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "mujoco": CORL_MODEL,
        "robotics": CORL_MODEL,  # D4RL AntMaze, Adroit and Kitchen (CORL has no Kitchen config)
        "atari": dict(steps=20_000, batch_size=32, eval_every=5_000, eval_episodes=10, alpha=4.0, critic_lr=5e-5,
                      target_update_every=2_000, normalize_obs=False, recipe="offbench"),
        "keytodoor": dict(steps=2_000, batch_size=128, eval_every=500, eval_episodes=100, alpha=1.0, critic_lr=1e-3,
                          critic_hidden=(256, 256), normalize_obs=False, recipe="offbench"),
    }
    #: CORL configs/offline/cql/hopper/medium_v2.yaml: normalize_reward true (false on the other 17
    #: locomotion sets); antmaze/*.yaml and {pen,door,hammer,relocate}/*.yaml as below.
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "hopper-medium": {"normalize_reward": True},
        **each(D4RL_ANTMAZE, dict(alpha=5.0, lagrange=True, target_action_gap=0.8, max_target_backup=True,
                                  clip_diff_min=-200.0, critic_hidden=(256,) * 5, reward_scale=10.0, reward_bias=-5.0,
                                  actor_lr=1e-4, normalize_obs=False, eval_every=50_000, eval_episodes=100)),
        **each(D4RL_ADROIT, dict(alpha=1.0, actor_lr=1e-4)),
    }
    RENAMED: ClassVar[dict[str, tuple[str, ...]]] = {"policy_lr": ("actor_lr",), "q_lr": ("critic_lr",)}


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

    @classmethod
    def create(cls, config: AlgoConfig, info: DataInfo, device: torch.device, seeds: Sequence[int]) -> Algorithm:
        """One name for both action kinds, as the papers use it: discrete actions train :class:`DiscreteCQL`."""
        if info.discrete:
            return DiscreteCQL.create(config, info, device, seeds)
        return super().create(config, info, device, seeds)

    def __init__(self, config: CQLConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        c = config
        affine = (c.log_std_multiplier, c.log_std_offset) if c.learn_log_std_scale else None
        actor = TanhGaussianActor(self.obs_dim, self.action_dim, c.hidden, (c.log_std_min, c.log_std_max), affine)
        critic = TwinQ(self.obs_dim, self.action_dim, c.critic_hidden)
        if c.corl_init:  # per seed, from its init generator, before the target copy
            xavier_last_layer_(actor.net, gain=1e-2)
            orthogonal_init_(critic.q1, hidden_gain=math.sqrt(2.0), last_gain=1e-2)
            orthogonal_init_(critic.q2, hidden_gain=math.sqrt(2.0), last_gain=1e-2)
        self.actor, self.critic = actor.to(device), critic.to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.log_alpha = torch.zeros(len(self.seeds), 1, device=device, requires_grad=True)  # CORL Scalar(0.0)
        self.target_entropy = -float(self.action_dim)  # CORL -prod(action_space.shape)
        self.actor_optim = adam(self.actor.parameters(), lr=c.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=c.critic_lr)
        self.entropy_optim = adam([self.log_alpha], lr=c.entropy_lr or c.actor_lr)
        if c.lagrange:  # CORL Scalar(1.0), Adam(lr=qf_lr)
            self.log_alpha_prime = torch.ones(len(self.seeds), 1, device=device, requires_grad=True)
            self.alpha_prime_optim = adam([self.log_alpha_prime], lr=c.critic_lr)


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
            penalties.append(per_seed((lse - data_q[q_index]).clamp(c.clip_diff_min, c.clip_diff_max)))
        return penalties[0], penalties[1]

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        c, b = self.config, self.tensors(batch)
        # CORL ContinuousCQL.train: every loss from the networks as they are now, then the steps
        actions, logp = self.actor(b["obs"], noise=self.noise.normal)
        ent = self.log_alpha.exp().detach()  # (S, 1): the temperature before its step
        alpha_loss = -per_seed(self.log_alpha * (logp.detach() + self.target_entropy))
        with frozen(self.critic):
            actor_loss = per_seed(ent * logp - torch.min(*self.critic(b["obs"], actions)))
        # critics: Bellman error + conservative penalty, with actions of the actor before its step
        with torch.no_grad():
            next_q, next_logp = self.next_value(b["next_obs"])
            if c.backup_entropy:
                next_q = next_q - ent * next_logp
            target = b["rewards"] + c.discount * (1 - b["dones"]) * next_q
        q1, q2 = self.critic(b["obs"], b["actions"])
        bellman = per_seed((q1 - target).pow(2)) + per_seed((q2 - target).pow(2))
        p1, p2 = self.conservative_penalty(b) if c.alpha > 0 else (torch.zeros_like(bellman),) * 2
        logs: dict[str, torch.Tensor] = {}
        if c.lagrange:  # CORL: alpha' before its step weighs the critics' penalty; then alpha' steps
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6).squeeze(-1)
            gaps = (p1 - c.target_action_gap) + (p2 - c.target_action_gap)
            critic_loss = bellman + alpha_prime.detach() * c.alpha * gaps
            alpha_prime_loss = -(alpha_prime * c.alpha * gaps.detach()) * 0.5
            self.alpha_prime_optim.zero_grad(set_to_none=True)
            alpha_prime_loss.sum().backward()
            self.alpha_prime_optim.step()
            logs["alpha_prime"] = alpha_prime.detach()
        else:
            critic_loss = bellman + c.alpha * (p1 + p2)

        self.entropy_optim.zero_grad(set_to_none=True)
        alpha_loss.sum().backward()
        self.entropy_optim.step()
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optim.step()
        soft_update(self.critic_target, self.critic, c.tau)
        return {"critic_loss": critic_loss.detach(), "bellman": bellman.detach(), "penalty": (p1 + p2).detach() / 2,
                "actor_loss": actor_loss.detach(), "entropy_alpha": ent.squeeze(-1), **logs}

    def next_value(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The target critics' min Q at s' and the log-probability of its action: one action from
        the actor, or with ``max_target_backup`` the best of ``n_actions`` (CORL)."""
        if not self.config.max_target_backup:
            actions, logp = self.actor(next_obs, noise=self.noise.normal)
            return torch.min(*self.critic_target(next_obs, actions)), logp
        s, bsz, n = *next_obs.shape[:2], self.config.n_actions
        actions, logp = self.actor(next_obs, noise=self.noise.normal, samples=n)
        q = torch.min(*self.critic_target(self.repeat(next_obs), actions)).view(s, bsz, n)
        best, index = q.max(-1)
        return best, logp.view(s, bsz, n).gather(-1, index.unsqueeze(-1)).squeeze(-1)

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        return self.actor(obs, deterministic=True)[0]

    def state_dict(self) -> dict:
        state = {**super().state_dict(), "log_alpha": self.log_alpha.detach().clone()}
        if self.config.lagrange:
            state.update(log_alpha_prime=self.log_alpha_prime.detach().clone(),
                         alpha_prime_optim=self.alpha_prime_optim.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
            if self.config.lagrange:
                self.log_alpha_prime.copy_(state["log_alpha_prime"])
        if self.config.lagrange:
            self.alpha_prime_optim.load_state_dict(state["alpha_prime_optim"])


class DiscreteCQL(DiscreteQLearner):
    """Discrete-action CQL, offbench's own variant: CQL(H) on a DQN backbone, not the CQL authors'
    QR-DQN with 200 atoms and ~12.5M updates. Huber TD error to a target network plus
    ``alpha * (logsumexp_a Q(s, a) - Q(s, a_data))`` (the penalty of Kumar et al. 2020's Atari
    experiments, on Q-values that are not quantile means)."""

    Config = CQLConfig
    config: CQLConfig

    def __init__(self, config: CQLConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds, q_network(info, config.critic_hidden, info.action_dim), lr=config.critic_lr,
                         adam_eps=DOPAMINE_ADAM_EPS)

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        with torch.no_grad():
            next_q = self.q_target(b["next_obs"]).max(-1).values
            target = b["rewards"] + c.discount * (1 - b["dones"]) * next_q
        q_all = self.q(b["obs"])
        q_data = q_all.gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)
        td = per_seed(F.smooth_l1_loss(q_data, target, reduction="none"))
        penalty = per_seed(torch.logsumexp(q_all, dim=-1) - q_data)
        return td + c.alpha * penalty, {"td": td, "penalty": penalty}

    def action_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q(obs)
