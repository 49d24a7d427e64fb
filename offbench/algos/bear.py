"""BEAR, Bootstrapping Error Accumulation Reduction (Kumar, Fu, Tucker & Levine 2019).

Two recipes (``--set bear.recipe=NAME``):

- ``d4rl`` (default), the code behind D4RL's BEAR scores (the ones the DT paper's Table 2 quotes):
  rail-berkeley/d4rl_evaluations ``bear/examples/bear_hdf5_d4rl.py`` and its rlkit trainer
  ``rlkit/torch/sac/bear.py``: 256-256 networks, a Gaussian kernel of bandwidth 50 over 4 samples,
  policy lr 1e-4, Q and VAE lr 3e-4, batch 256, log alpha from 0, 40,000 steps of MMD alone, the
  actor's Q term from its first sample only, the critics' targets from the current policy (no
  target actor), the actor's log-std clamped to [-5, 2], its noise not clamped, 100 sampled
  actions at evaluation; 3,000 epochs of 1,000 steps, evaluated after each (5,000 steps: 5
  episodes).
- ``authors``: the BEAR authors' own code (aviralkumar2907/BEAR, ``algos.py``) with the settings
  of its README (the class defaults below).

A conditional VAE models the data's actions (as BCQ's). The actor, a tanh-Gaussian, maximizes the
minimum of an ensemble of critics subject to a sampled MMD between its actions and the VAE's
being at most ``epsilon``: the Lagrangian ``-min_k Q_k(s, pi(s)) + alpha * MMD`` with ``log
alpha`` trained by dual ascent on ``alpha * (MMD - epsilon)`` and clamped to
[-5, ``log_alpha_max``]. The MMD compares ``mmd_samples`` actions of each per state, before the
tanh (the actor's drawn with its noise clamped to [-0.5, 0.5]), with a Laplacian (default) or
Gaussian kernel of bandwidth ``mmd_sigma``; the actor's Q term is the ensemble minimum of Q
averaged over those samples. For the first
``warmup_steps`` the actor minimizes ``alpha * MMD`` alone. Critics: soft clipped double-Q over
``target_samples`` actor actions at s' (``0.75 * min + 0.25 * max`` of the ensemble, max over the
samples). Evaluation: ``eval_samples`` actor actions per state, the one the first critic values most.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.bcq import VAE, fit_vae, soft_clipped_target
from offbench.algos.nets import TanhGaussianActor, frozen, mlp, soft_update
from offbench.algos.seeded import adam, init_generators, per_seed
from offbench.data.info import DataInfo


@dataclass
class BEARConfig(AlgoConfig):
    """Class defaults (``recipe=authors``): aviralkumar2907/BEAR @ f123499 ``algos.py`` (class ``BEAR``) and its README's settings "that
    generally work well": ``--mmd_sigma=10.0 --kernel_type=laplacian --num_samples_match=5
    --version=0 --lagrange_thresh=10.0 --mode=auto --lamda=0.0 --use_ensemble_variance=False
    --eval_freq=1000`` (its Walker2d command: gaussian kernel, sigma 20)."""

    batch_size: int = 100  # algos.py train(batch_size=100)
    discount: float = 0.99  # train(discount=0.99)
    tau: float = 0.005  # train(tau=0.005)
    actor_lr: float = 1e-3  # Adam(actor) at torch's default lr
    critic_lr: float = 1e-3  # Adam(critic) at torch's default lr
    vae_lr: float = 1e-3  # Adam(vae) at torch's default lr
    alpha_lr: float = 1e-3  # Adam([log_lagrange2], lr=1e-3)
    num_critics: int = 2  # EnsembleCritic(num_qs=2)
    hidden: tuple[int, ...] = (400, 300)  # RegularActor / EnsembleCritic layers (the actor's log-std unclamped)
    vae_hidden: tuple[int, ...] = (750, 750)  # VAE
    kernel: Literal["laplacian", "gaussian"] = "laplacian"  # README --kernel_type=laplacian
    mmd_sigma: float = 10.0  # README --mmd_sigma=10.0 (20.0 with the gaussian kernel)
    mmd_samples: int = 5  # README --num_samples_match=5
    mode: Literal["auto", "manual"] = "auto"  # README --mode=auto: alpha by dual ascent; manual: fixed
    manual_alpha: float = 100.0  # mode manual: algos.py's fixed 100.0 * mmd_loss
    epsilon: float = 0.05  # BEAR(threshold=0.05): the MMD bound of the dual ascent
    log_alpha_max: float = 10.0  # README --lagrange_thresh=10.0: log_lagrange2 clamped to [-5, 10]
    warmup_steps: int = 20_000  # epoch >= 20 before Q enters the actor loss; an epoch is --eval_freq=1000 steps
    lmbda: float = 0.75  # target: 0.75 * min + 0.25 * max of the ensemble
    target_samples: int = 10  # next_state repeated 10 times
    eval_samples: int = 10  # select_action: state repeated 10 times
    normalize_obs: bool = False  # the authors' code feeds states as they are
    # the critics' targets use the target actor (algos.py actor_target); False: the current policy (rlkit)
    target_actor: bool = True
    # the actor's Q term: the ensemble minimum of Q averaged over its mmd_samples actions (algos.py
    # critic_qs over actor_actions) | of its first action only (rlkit q_val1(obs, actor_samples[:, 0]))
    actor_q: Literal["mean", "first"] = "mean"
    clip_actor_noise: bool = True  # algos.py sample_multiple: noise clamped to [-0.5, 0.5]; rlkit: not
    log_std_min: float = -math.inf  # algos.py RegularActor: log-std unclamped; rlkit LOG_SIG_MIN -5
    log_std_max: float = math.inf  # rlkit LOG_SIG_MAX 2
    # log alpha's start: algos.py log_lagrange2 = torch.randn(()) | rlkit ptu.zeros(1)
    log_alpha_init: Literal["normal", "zero"] = "normal"
    recipe: str = "d4rl"  # d4rl | authors (see the module docstring)

    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "d4rl": {"*": dict(
            steps=3_000_000, eval_every=1_000, eval_episodes=5,  # num_epochs 3000 x 1000; 5000 eval steps
            batch_size=256, actor_lr=1e-4, critic_lr=3e-4, vae_lr=3e-4, alpha_lr=1e-3,  # argparse, trainer
            hidden=(256, 256), vae_hidden=(750, 750),  # layer_size 256; VAEPolicy hidden_sizes [750, 750]
            kernel="gaussian", mmd_sigma=50.0, mmd_samples=4,  # argparse defaults; num_samples_mmd_match=4
            epsilon=0.05, log_alpha_max=10.0, warmup_steps=40_000,  # target_mmd_thresh; clamp_(-5, 10); 40000
            eval_samples=100, target_samples=10, lmbda=0.75, tau=5e-3, discount=0.99,  # num_samples 100
            target_actor=False, actor_q="first", clip_actor_noise=False, log_std_min=-5.0, log_std_max=2.0,
            log_alpha_init="zero")},
        "authors": {"*": {}},
    }
    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}


class EnsembleQ(nn.Module):
    """``n`` independent Q(s, a) networks; output (n, S, ...)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], n: int) -> None:
        super().__init__()
        self.qs = nn.ModuleList([mlp(obs_dim + action_dim, hidden, 1) for _ in range(n)])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.qs])


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: str, sigma: float) -> torch.Tensor:
    """BEAR's sampled MMD between (..., N, d) samples ``x`` and ``y`` per leading index:
    ``sqrt(E k(x, x') + E k(y, y') - 2 E k(x, y) + 1e-6)``, ``k(a, b) = exp(-sum |a - b| / 2 sigma)``
    (Laplacian) or ``exp(-sum (a - b)^2 / 2 sigma)`` (Gaussian), as ``mmd_loss_*`` computes it."""
    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        diff = a.unsqueeze(-2) - b.unsqueeze(-3)
        dist = diff.abs().sum(-1) if kernel == "laplacian" else diff.pow(2).sum(-1)
        return torch.exp(-dist / (2.0 * sigma)).mean((-2, -1))

    return (k(x, x) + k(y, y) - 2.0 * k(x, y) + 1e-6).sqrt()


@ALGORITHMS.register("bear")
class BEAR(TransitionAlgorithm):
    """BEAR: an actor kept within an MMD ball of the data's actions, ensemble critics."""

    Config = BEARConfig
    config: BEARConfig
    continuous_only = True
    STATE = ("vae", "actor", "actor_target", "critic", "critic_target", "vae_optim", "actor_optim", "critic_optim",
             "alpha_optim")
    seed_batched = True

    def __init__(self, config: BEARConfig, info: DataInfo, device: torch.device, seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        a, c = self.action_dim, config
        self.latent = 2 * a
        self.vae = VAE(self.obs_dim, a, self.latent, c.vae_hidden).to(device)
        self.actor = TanhGaussianActor(self.obs_dim, a, c.hidden, log_std_bounds=(c.log_std_min, c.log_std_max)).to(device)
        self.critic = EnsembleQ(self.obs_dim, a, c.hidden, c.num_critics).to(device)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        # log_lagrange2 = torch.randn(()): one draw per seed from its init generator; rlkit: zero
        starts = [torch.randn((), generator=g) if c.log_alpha_init == "normal" else torch.zeros(())
                  for g in init_generators()]
        self.log_alpha = nn.Parameter(torch.stack(starts).to(device))
        self.vae_optim = adam(self.vae.parameters(), lr=c.vae_lr)
        self.actor_optim = adam(self.actor.parameters(), lr=c.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=c.critic_lr)
        self.alpha_optim = adam([self.log_alpha], lr=c.alpha_lr)
        self.steps_done = 0

    def sample_actions(self, obs: torch.Tensor, n: int, target: bool = False,
                       clip_noise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` actor actions per state, (S, B, n, d), and their values before the tanh;
        ``clip_noise``: the standard-normal draws clamped to [-0.5, 0.5] (``sample_multiple``,
        the actor's samples for the MMD and Q; ``forward``, for the targets, does not clamp)."""
        actor = self.actor_target if target else self.actor
        mean, log_std = actor.mean_log_std(obs)
        eps = self.noise.normal((*mean.shape[1:-1], n, mean.shape[-1]))
        eps = eps.clamp(-0.5, 0.5) if clip_noise else eps
        raw = mean.unsqueeze(-2) + log_std.exp().unsqueeze(-2) * eps
        return torch.tanh(raw), raw

    def decode_actions(self, obs: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` VAE actions per state before the tanh, (S, B, n, d) (BEAR's ``decode_multiple``)."""
        many = obs.unsqueeze(-2).expand(*obs.shape[:-1], n, obs.shape[-1])
        z = self.noise.normal((*many.shape[1:-1], self.latent)).clamp(-0.5, 0.5)
        return self.vae.decoder(torch.cat([many, z], -1))

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        c, b = self.config, self.tensors(batch)
        vae_loss = fit_vae(self.vae, self.vae_optim, b, self.noise, self.latent, 0.5)
        with torch.no_grad():
            nxt = b["next_obs"].repeat_interleave(c.target_samples, dim=1)
            next_action = self.sample_actions(nxt, 1, target=c.target_actor)[0].squeeze(-2)
            qs = self.critic_target(nxt, next_action)  # (K, S, B * samples)
            target = soft_clipped_target(b, qs.min(0).values, qs.max(0).values, c)
        current = self.critic(b["obs"], b["actions"])
        critic_loss = sum(per_seed((q - target).pow(2)) for q in current)
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optim.step()
        # the actor: the Lagrangian of max min_k Q subject to MMD <= epsilon
        with torch.no_grad():
            data_raw = self.decode_actions(b["obs"], c.mmd_samples)
        actions, raw = self.sample_actions(b["obs"], c.mmd_samples, clip_noise=c.clip_actor_noise)
        distance = mmd(raw, data_raw, c.kernel, c.mmd_sigma)  # (S, B)
        alpha = self.log_alpha.exp().detach().view(-1, *([1] * (distance.ndim - 1))) if c.mode == "auto" \
            else torch.full_like(distance, c.manual_alpha)
        with frozen(self.critic):  # Q of every sampled action averaged over them (or the first's), the ensemble's min
            if c.actor_q == "first":
                q_min = self.critic(b["obs"], actions[..., 0, :]).min(0).values
            else:
                many = b["obs"].unsqueeze(-2).expand(*b["obs"].shape[:-1], c.mmd_samples, b["obs"].shape[-1])
                q_min = self.critic(many, actions).mean(-1).min(0).values
        warm = self.steps_done < c.warmup_steps
        actor_loss = per_seed(alpha * distance) if warm else per_seed(-q_min + alpha * distance)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        if c.mode == "auto":  # dual ascent on log alpha: alpha grows while the MMD exceeds epsilon
            alpha_loss = -per_seed(self.log_alpha.exp().view(-1, 1) * (distance.detach() - c.epsilon))
            self.alpha_optim.zero_grad(set_to_none=True)
            alpha_loss.sum().backward()
            self.alpha_optim.step()
            with torch.no_grad():
                self.log_alpha.clamp_(-5.0, c.log_alpha_max)
        soft_update(self.critic_target, self.critic, c.tau)
        soft_update(self.actor_target, self.actor, c.tau)
        self.steps_done += 1
        return {"vae_loss": vae_loss, "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "mmd": per_seed(distance).detach(), "alpha": self.log_alpha.detach().exp()}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        """Per state: ``eval_samples`` actor actions; the one the first critic values most."""
        k, s, n = self.config.eval_samples, obs.shape[0], obs.shape[1]
        mean, log_std = self.actor.mean_log_std(obs)
        eps = torch.stack([torch.randn((n, k, mean.shape[-1]), generator=g) for g in generator]).to(obs.device)
        actions = torch.tanh(mean.unsqueeze(-2) + log_std.exp().unsqueeze(-2) * eps.to(mean.dtype))  # (S, N, k, d)
        q = self.critic.qs[0](torch.cat([obs.unsqueeze(-2).expand(s, n, k, obs.shape[-1]), actions], -1)).squeeze(-1)
        best = q.argmax(-1)
        return actions.gather(2, best[..., None, None].expand(s, n, 1, actions.shape[-1])).squeeze(2)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "log_alpha": self.log_alpha.detach().clone(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.steps_done = int(state["steps_done"])

