"""BCQ, Batch-Constrained deep Q-learning (Fujimoto, Meger & Precup 2019; discrete: Fujimoto,
Conti, Ghavamzadeh & Pineau 2019), as the authors' code has it (sfujim/BCQ).

Continuous actions: a conditional VAE models the data's actions; a perturbation model moves a
decoded action by at most ``phi`` (in [-1, 1] units); twin critics are trained to a soft clipped
double-Q target, ``lmbda * min + (1 - lmbda) * max`` of the two target critics, maximized over
``target_samples`` decoded and perturbed next actions. The policy decodes ``eval_samples`` actions
per state, perturbs them and takes the one the first critic values most: every action it takes is
near one the VAE would generate, i.e. near the data's support.

Discrete actions (Atari, Key-to-Door, any ``Discrete`` space): a Q-network with a behaviour-cloning
head (Atari: sharing the Nature-DQN convolutions); the next action maximizes Q only over actions
whose behaviour probability is at least ``threshold`` times the likeliest one's (0.3); loss:
Huber TD error + the cloning head's negative log-likelihood + ``0.01 * mean logit^2``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offbench.algos.base import ALGORITHMS, AlgoConfig, Algorithm, TransitionAlgorithm
from offbench.algos.discrete import DiscreteQLearner
from offbench.algos.nets import NatureCNN, TwinQ, frozen, is_image, mlp, soft_update
from offbench.algos.seeded import SeedLinear, SeedNoise, adam, per_seed
from offbench.data.info import DataInfo


@dataclass
class BCQConfig(AlgoConfig):
    """sfujim/BCQ: ``continuous_BCQ/main.py`` and ``BCQ.py`` (continuous);
    ``discrete_BCQ/main.py`` ``regular_parameters``/``atari_parameters`` (discrete)."""

    batch_size: int = 100  # continuous main.py batch_size (discrete, regular: 64; Atari: 32)
    discount: float = 0.99  # main.py discount
    tau: float = 0.005  # continuous main.py tau; discrete regular polyak tau
    # -- continuous
    lmbda: float = 0.75  # main.py lmbda: weight of the min of the twin target critics
    phi: float = 0.05  # main.py phi: the perturbation's bound, in units of max_action (1)
    actor_lr: float = 1e-3  # BCQ.py Adam(actor, lr=1e-3)
    critic_lr: float = 1e-3  # BCQ.py Adam(critic, lr=1e-3)
    vae_lr: float = 1e-3  # BCQ.py Adam(vae) at torch's default lr
    actor_hidden: tuple[int, ...] = (400, 300)  # BCQ.py Actor l1-l3
    critic_hidden: tuple[int, ...] = (400, 300)  # BCQ.py Critic l1-l3 (and l4-l6)
    vae_hidden: tuple[int, ...] = (750, 750)  # BCQ.py VAE e1-e2 and d1-d2
    kl_weight: float = 0.5  # BCQ.py vae_loss = recon_loss + 0.5 * KL_loss
    latent_clip: float = 0.5  # BCQ.py decode: z ~ N(0, 1) clamped to [-0.5, 0.5]
    target_samples: int = 10  # BCQ.py train: next_state repeated 10 times
    eval_samples: int = 100  # BCQ.py select_action: state repeated 100 times
    # -- discrete
    threshold: float = 0.3  # discrete main.py BCQ_threshold
    lr: float = 3e-4  # discrete regular_parameters Adam lr
    adam_eps: float = 1e-8  # regular: Adam's default; Atari 0.00015
    target_update_every: int = 0  # regular: polyak (tau) every step; Atari: a copy every 8,000 steps
    epsilon_eval: float = 0.0  # regular eval_eps 0; Atari 0.001
    hidden: tuple[int, ...] = (256, 256)  # discrete FC_Q: q1-q3 and i1-i3, each 256, 256
    logit_penalty: float = 1e-2  # discrete_BCQ.py: Q_loss = q_loss + i_loss + 1e-2 * i.pow(2).mean()
    normalize_obs: bool = False  # the authors' code feeds states as they are

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        # discrete main.py atari_parameters; the budget is offbench's, as discrete CQL's
        "atari": dict(batch_size=32, lr=6.25e-5, adam_eps=1.5e-4, target_update_every=8_000, epsilon_eval=0.001,
                      steps=20_000, eval_every=5_000, eval_episodes=10),
    }


@ALGORITHMS.register("bcq")
class BCQ(TransitionAlgorithm):
    """Continuous BCQ: a generative model of the data's actions, a bounded perturbation, twin critics."""

    Config = BCQConfig
    config: BCQConfig
    STATE = ("vae", "actor", "actor_target", "critic", "critic_target", "vae_optim", "actor_optim", "critic_optim")
    seed_batched = True

    @classmethod
    def create(cls, config: AlgoConfig, info: DataInfo, device: torch.device, seeds: Sequence[int]) -> Algorithm:
        """One name for both action kinds, as the papers use it: discrete actions train :class:`DiscreteBCQ`."""
        if info.discrete:
            return DiscreteBCQ.create(config, info, device, seeds)
        return super().create(config, info, device, seeds)

    def __init__(self, config: BCQConfig, info: DataInfo, device: torch.device, seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        a, c = self.action_dim, config
        self.latent = 2 * a  # BCQ.py latent_dim = action_dim * 2
        self.vae = VAE(self.obs_dim, a, self.latent, c.vae_hidden).to(device)
        self.actor = mlp(self.obs_dim + a, c.actor_hidden, a).to(device)
        self.critic = TwinQ(self.obs_dim, a, c.critic_hidden).to(device)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.vae_optim = adam(self.vae.parameters(), lr=c.vae_lr)
        self.actor_optim = adam(self.actor.parameters(), lr=c.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=c.critic_lr)

    def perturb(self, obs: torch.Tensor, action: torch.Tensor, target: bool = False) -> torch.Tensor:
        """``action`` moved by at most ``phi``, kept in [-1, 1] (BCQ.py ``Actor.forward``)."""
        shift = self.config.phi * torch.tanh((self.actor_target if target else self.actor)(torch.cat([obs, action], -1)))
        return (action + shift).clamp(-1.0, 1.0)

    def decode(self, obs: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Actions the VAE generates at ``obs``; ``z`` from the clipped prior (training noise) if not given."""
        if z is None:
            z = self.noise.normal((*obs.shape[1:-1], self.latent)).clamp(-self.config.latent_clip, self.config.latent_clip)
        return self.vae.decode(obs, z)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        c, b = self.config, self.tensors(batch)
        vae_loss = fit_vae(self.vae, self.vae_optim, b, self.noise, self.latent, c.kl_weight)
        # the critics: soft clipped double Q, max over decoded and perturbed next actions
        with torch.no_grad():
            nxt = b["next_obs"].repeat_interleave(c.target_samples, dim=1)
            q1, q2 = self.critic_target(nxt, self.perturb(nxt, self.decode(nxt), target=True))
            target = soft_clipped_target(b, torch.min(q1, q2), torch.max(q1, q2), c)
        q1, q2 = self.critic(b["obs"], b["actions"])
        critic_loss = per_seed((q1 - target).pow(2)) + per_seed((q2 - target).pow(2))
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optim.step()
        # the perturbation model: maximize Q1 of perturbed decoded actions
        with torch.no_grad():
            sampled = self.decode(b["obs"])
        with frozen(self.critic):
            actor_loss = -per_seed(self.critic.q1(torch.cat([b["obs"], self.perturb(b["obs"], sampled)], -1)))
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        soft_update(self.critic_target, self.critic, c.tau)
        soft_update(self.actor_target, self.actor, c.tau)
        return {"vae_loss": vae_loss, "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        """Per state: ``eval_samples`` decoded, perturbed actions; the one Q1 values most."""
        c, k = self.config, self.config.eval_samples
        s, n = obs.shape[0], obs.shape[1]
        many = obs.repeat_interleave(k, dim=1)
        z = torch.stack([torch.randn((n * k, self.latent), generator=g) for g in generator]).to(obs.device)
        actions = self.perturb(many, self.decode(many, z.clamp(-c.latent_clip, c.latent_clip).to(obs.dtype)))
        q = self.critic.q1(torch.cat([many, actions], -1)).reshape(s, n, k)
        best = q.argmax(-1)
        return actions.reshape(s, n, k, -1).gather(2, best[..., None, None].expand(s, n, 1, actions.shape[-1])).squeeze(2)


def fit_vae(vae: VAE, optim: torch.optim.Optimizer, b: dict[str, torch.Tensor], noise: SeedNoise, latent: int,
            kl_weight: float) -> torch.Tensor:
    """One step of the VAE of the data's actions (BCQ's and BEAR's); each seed's loss."""
    loss = vae.loss(b["obs"], b["actions"], noise.normal((*b["obs"].shape[1:-1], latent)), kl_weight)
    optim.zero_grad(set_to_none=True)
    loss.sum().backward()
    optim.step()
    return loss.detach()


def soft_clipped_target(b: dict[str, torch.Tensor], q_min: torch.Tensor, q_max: torch.Tensor, c: Any) -> torch.Tensor:
    """``r + gamma (1 - done) max_samples (lmbda min + (1 - lmbda) max)`` over the critics' values of
    ``c.target_samples`` next actions per transition (BCQ's and BEAR's target)."""
    s, n = b["rewards"].shape
    soft = c.lmbda * q_min + (1 - c.lmbda) * q_max
    return b["rewards"] + (1 - b["dones"]) * c.discount * soft.reshape(s, n, c.target_samples).max(-1).values


class VAE(nn.Module):
    """BCQ's conditional VAE of actions given states: encoder (s, a) -> mean and log-std (clamped
    to [-4, 15]), decoder (s, z) -> tanh action."""

    def __init__(self, obs_dim: int, action_dim: int, latent: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.encoder = nn.Sequential(mlp(obs_dim + action_dim, hidden[:-1], hidden[-1]), nn.ReLU())
        self.mean = SeedLinear(hidden[-1], latent)
        self.log_std = SeedLinear(hidden[-1], latent)
        self.decoder = mlp(obs_dim + latent, hidden, action_dim)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.encoder(torch.cat([obs, action], -1))
        mean, std = self.mean(h), self.log_std(h).clamp(-4, 15).exp()
        return self.decode(obs, mean + std * eps), mean, std

    def decode(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(torch.cat([obs, z], -1)))

    def loss(self, obs: torch.Tensor, action: torch.Tensor, eps: torch.Tensor, kl_weight: float) -> torch.Tensor:
        """Each seed's reconstruction error plus ``kl_weight`` times the KL to N(0, 1) (BCQ.py's
        ``vae_loss = recon_loss + 0.5 * KL_loss``), the latent drawn with ``eps``."""
        recon, mean, std = self(obs, action, eps)
        kl = -0.5 * per_seed(1 + torch.log(std.pow(2)) - mean.pow(2) - std.pow(2))
        return per_seed((recon - action).pow(2)) + kl_weight * kl


class BCQNetwork(nn.Module):
    """Discrete BCQ's two heads, Q-values and behaviour logits: on frame stacks one Nature-DQN
    convolution stack feeding two 512-unit heads (``Conv_Q``); on vectors two separate MLPs (``FC_Q``)."""

    def __init__(self, obs_shape: tuple[int, ...], hidden: tuple[int, ...], actions: int) -> None:
        super().__init__()
        if is_image(obs_shape):
            self.torso: NatureCNN | None = NatureCNN(obs_shape, None)  # the convolutions, shared
            self.q_head = mlp(self.torso.feature_dim, (512,), actions)
            self.i_head = mlp(self.torso.feature_dim, (512,), actions)
        else:
            self.torso = None
            self.q_head = mlp(int(np.prod(obs_shape)), hidden, actions)
            self.i_head = mlp(int(np.prod(obs_shape)), hidden, actions)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.torso.features(obs) if self.torso is not None else obs
        return self.q_head(x), self.i_head(x)


class DiscreteBCQ(DiscreteQLearner):
    """Discrete BCQ: Q-learning whose next action is restricted to ones the behaviour model finds likely."""

    Config = BCQConfig
    config: BCQConfig

    def __init__(self, config: BCQConfig, info: DataInfo, device: torch.device, seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds, lambda: BCQNetwork(info.obs_shape, config.hidden, info.action_dim),
                         lr=config.lr, adam_eps=config.adam_eps)

    def allowed(self, logits: torch.Tensor) -> torch.Tensor:
        """Actions whose behaviour probability is at least ``threshold`` times the likeliest one's."""
        probs = logits.softmax(-1)
        return probs / probs.max(-1, keepdim=True).values > self.config.threshold

    def action_values(self, obs: torch.Tensor) -> torch.Tensor:
        q, logits = self.q(obs)
        return torch.where(self.allowed(logits), q, torch.full_like(q, -1e8))

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        with torch.no_grad():
            next_action = self.action_values(b["next_obs"]).argmax(-1, keepdim=True)
            q_next = self.q_target(b["next_obs"])[0].gather(-1, next_action).squeeze(-1)
            target = b["rewards"] + (1 - b["dones"]) * c.discount * q_next
        q, logits = self.q(b["obs"])
        q_data = q.gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)
        td = per_seed(F.smooth_l1_loss(q_data, target, reduction="none"))
        nll = per_seed(-F.log_softmax(logits, -1).gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1))
        return td + nll + c.logit_penalty * per_seed(logits.pow(2)), {"td": td.detach(), "nll": nll.detach()}
