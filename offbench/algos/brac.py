"""BRAC-v, behaviour-regularized actor-critic with a value penalty (Wu, Tucker & Nachum 2019), as
the authors' code has it (google-research ``behavior_regularized_offline_rl/brac``:
``brac_primal_agent.py``, ``divergences.py``, ``networks.py``; settings of ``run_primal.sh`` and
``run_bc.sh``).

Two recipes (``--set brac.recipe=NAME``): ``d4rl`` (default), the code behind D4RL's BRAC-v scores
(the DT paper's Table 2 quotes them): rail-berkeley/d4rl_evaluations ``brac/scripts/train_brac.py``,
1M behaviour steps, then 1M actor-critic steps with Q lr 1e-3, policy lr 3e-5, alpha 1.0, 20
evaluation episodes (the script's defaults; the per-task alphas D4RL may have searched are not
published with it); ``authors``, the settings of the authors' ``run_bc.sh`` and ``run_primal.sh``
(the class defaults).

Two phases in one run. First ``behavior_steps`` gradient steps fit the behaviour policy b by
maximum likelihood on the data's actions with an entropy bonus (``bc_agent.Agent``, whose
``train_alpha_entropy`` is on by default: loss ``mean(alpha_e * log b(a~b) - log b(a_data))``,
``alpha_e`` from 1.0, non-negative, tuned towards an entropy of ``-action_dim``). Then the actor-critic: with the
divergence D(s) = KL(pi(.|s) || b(.|s)) estimated from ``div_samples`` actions of pi
(``mean_n log pi(a_n|s) - log b(a_n|s)``, actions clipped 1e-3 inside their bounds for b's density),
the critics (an ensemble, the minimum of it) learn
``Q(s, a) <- r + gamma * (1 - done) * (min_k Q'_k(s', a') - alpha * D(s'))``, ``a' ~ pi(s')``: the
*value penalty* that makes BRAC-v; the actor minimizes ``alpha * D(s) - min_k Q_k(s, a)``,
``a ~ pi(s)``, the Q term joining after ``warmup_steps``. Both policies are tanh-Gaussians whose
log-std is squashed into [-5, 0] (``networks.ActorNetwork``); evaluation takes the tanh of the mean.
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
from torch import nn

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.bear import EnsembleQ
from offbench.algos.nets import frozen, mlp, soft_update
from offbench.algos.seeded import adam, per_seed
from offbench.data.info import DataInfo

CLIP_EPS = 1e-3  # divergences.py CLIP_EPS: actions clipped inside their bounds for densities


class _ReluV2(torch.autograd.Function):
    """BRAC's ``utils.relu_v2``: relu, whose gradient still flows where the input is not positive
    if the step would raise it (a negative upstream gradient), so a weight at 0 can recover."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0.0)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return torch.where((dy > 0) & (x <= 0), torch.zeros_like(dy), dy)


def relu_v2(x: torch.Tensor) -> torch.Tensor:
    return _ReluV2.apply(x)


@dataclass
class BRACConfig(AlgoConfig):
    """``run_primal.sh`` (BRAC primal, value penalty, KL) and ``run_bc.sh`` (its behaviour policy)."""

    steps: int = 800_000  # run_bc.sh 300k behaviour steps, then run_primal.sh total_train_steps=500000
    behavior_steps: int = 300_000  # run_bc.sh total_train_steps=300000
    batch_size: int = 256  # run_primal.sh / run_bc.sh train_eval_offline.batch_size=256
    discount: float = 0.99  # agent.Agent discount
    tau: float = 0.005  # agent.Agent update_rate, targets moved every step (update_freq 1)
    alpha: float = 0.1  # run_primal.sh ALPHA=0.1, not trained (train_alpha False)
    value_penalty: bool = True  # run_primal.sh VALUE_PENALTY=True: BRAC-v (False: BRAC-p)
    div_samples: int = 4  # brac_primal_agent n_div_samples=4
    warmup_steps: int = 20_000  # brac_primal_agent warm_start=20000 (counted from the actor-critic's start)
    num_critics: int = 2  # run_primal.sh model_params (..., 2)
    critic_hidden: tuple[int, ...] = (300, 300)  # run_primal.sh model_params ((300, 300), ...)
    actor_hidden: tuple[int, ...] = (200, 200)  # run_primal.sh ((..., (200, 200)); run_bc.sh ((200, 200),)
    critic_lr: float = 1e-3  # run_primal.sh optimizers ('adam', 1e-3) for Q
    actor_lr: float = 3e-4  # run_primal.sh PLR=3e-04
    behavior_lr: float = 5e-4  # run_bc.sh optimizers (('adam', 5e-4),)
    normalize_obs: bool = False  # the authors' code feeds states as they are
    # bc_agent.Agent(train_alpha_entropy=True, alpha_entropy=1.0, target_entropy=-action_dim): the
    # behaviour loss's entropy bonus and its tuned weight (Adam at behavior_lr: one optimizer spec)
    behavior_entropy: bool = True
    recipe: str = "d4rl"  # d4rl | authors (see the module docstring)

    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        # train_brac.py: bc_train_steps 1e6, total_train_steps 1e6, optimizers (('adam', 1e-3), ('adam',
        # 3e-5), ('adam', 1e-5)) for Q, policy and (untrained) alpha, alpha 1.0, n_eval_episodes 20,
        # value_penalty 1 for BRAC-v; train_eval_offline eval_freq 5000; train_bc model (200, 200), 5e-4
        "d4rl": {"*": dict(steps=2_000_000, behavior_steps=1_000_000, critic_lr=1e-3, actor_lr=3e-5, alpha=1.0,
                           value_penalty=True, eval_every=5_000, eval_episodes=20)},
        "authors": {"*": {}},
    }
    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}


class SquashedGaussian(nn.Module):
    """BRAC's ``ActorNetwork``: a tanh-Gaussian with log-std ``-5 + 2.5 * (tanh(h) + 1)`` in [-5, 0]."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 0.0

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * action_dim)

    def params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, h = self.net(obs).chunk(2, dim=-1)
        log_std = self.LOG_STD_MIN + 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN) * (torch.tanh(h) + 1)
        return mean, log_std

    def sample(self, obs: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``tanh(mean + std * eps)`` for standard-normal ``eps`` (S, B, n, d) and their
        log-densities (S, B, n)."""
        mean, log_std = (x.unsqueeze(-2) for x in self.params(obs))
        pre = mean + log_std.exp() * eps
        logp = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return torch.tanh(pre), logp - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-density of (S, B, n, d) ``action`` (clipped ``CLIP_EPS`` inside [-1, 1]) at (S, B, obs)."""
        mean, log_std = (x.unsqueeze(-2) for x in self.params(obs))
        a = action.clamp(-1 + CLIP_EPS, 1 - CLIP_EPS)
        pre = torch.atanh(a)
        logp = (-0.5 * ((pre - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return logp - torch.log1p(-a.pow(2)).sum(-1)


@ALGORITHMS.register("brac")
class BRAC(TransitionAlgorithm):
    """BRAC-v: actor-critic whose targets pay alpha * KL(pi || learned behaviour policy)."""

    Config = BRACConfig
    config: BRACConfig
    continuous_only = True
    STATE = ("behavior", "actor", "critic", "critic_target", "behavior_optim", "actor_optim", "critic_optim",
             "entropy_optim")
    seed_batched = True

    def __init__(self, config: BRACConfig, info: DataInfo, device: torch.device, seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        a, c = self.action_dim, config
        self.behavior = SquashedGaussian(self.obs_dim, a, c.actor_hidden).to(device)
        self.actor = SquashedGaussian(self.obs_dim, a, c.actor_hidden).to(device)
        self.critic = EnsembleQ(self.obs_dim, a, c.critic_hidden, c.num_critics).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.behavior_optim = adam(self.behavior.parameters(), lr=c.behavior_lr)
        self.actor_optim = adam(self.actor.parameters(), lr=c.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=c.critic_lr)
        self.alpha_entropy = nn.Parameter(torch.ones(len(self.seeds), device=device))  # bc_agent tf.Variable(1.0)
        self.entropy_optim = adam([self.alpha_entropy], lr=c.behavior_lr)
        self.target_entropy = -float(a)
        self.steps_done = 0

    def divergence(self, obs: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """KL(pi || b) at (S, B, obs), from pi's actions for the draws ``eps`` (S, B, n, d)
        (``divergences.KL.primal_estimate``); differentiable in pi."""
        actions, logp = self.actor.sample(obs, eps)
        return (logp - self.behavior.log_prob(obs, actions)).mean(-1)

    def td_target(self, b: dict[str, torch.Tensor], next_q: torch.Tensor, next_div: torch.Tensor) -> torch.Tensor:
        """``r + gamma * (1 - done) * (Q'(s', a') - alpha * D(s'))`` (no penalty for BRAC-p)."""
        c = self.config
        v = next_q - c.alpha * next_div if c.value_penalty else next_q
        return b["rewards"] + c.discount * (1 - b["dones"]) * v

    def draws(self, like: torch.Tensor, n: int) -> torch.Tensor:
        return self.noise.normal((*like.shape[1:-1], n, self.action_dim))

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        c, b = self.config, self.tensors(batch)
        self.steps_done += 1
        if self.steps_done <= c.behavior_steps:  # phase 1: the behaviour policy by maximum likelihood
            return self.behavior_update(b)
        with torch.no_grad():
            next_action = self.actor.sample(b["next_obs"], self.draws(b["next_obs"], 1))[0].squeeze(-2)
            next_q = self.critic_target(b["next_obs"], next_action).min(0).values
            next_div = self.divergence(b["next_obs"], self.draws(b["next_obs"], c.div_samples))
            target = self.td_target(b, next_q, next_div)
        critic_loss = sum(per_seed((q - target).pow(2)) for q in self.critic(b["obs"], b["actions"]))
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optim.step()
        action = self.actor.sample(b["obs"], self.draws(b["obs"], 1))[0].squeeze(-2)
        div = self.divergence(b["obs"], self.draws(b["obs"], c.div_samples))
        with frozen(self.critic):
            q = self.critic(b["obs"], action).min(0).values
        q_on = float(self.steps_done - c.behavior_steps > c.warmup_steps)
        actor_loss = per_seed(c.alpha * div - q * q_on)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_optim.step()
        soft_update(self.critic_target, self.critic, c.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "kl": per_seed(div).detach()}

    def behavior_update(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step of ``bc_agent``: the behaviour policy, then (``behavior_entropy``) its entropy
        weight on a fresh sample from the updated policy (``_optimize_p``, then ``_optimize_ae``)."""
        nll = -per_seed(self.behavior.log_prob(b["obs"], b["actions"].unsqueeze(-2)))
        logs = {"behavior_nll": nll.detach()}
        loss = nll
        if self.config.behavior_entropy:
            alpha = relu_v2(self.alpha_entropy)
            logp = self.behavior.sample(b["obs"], self.draws(b["obs"], 1))[1]
            loss = nll + per_seed(alpha.detach().view(-1, 1, 1) * logp)
        self.behavior_optim.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.behavior_optim.step()
        if self.config.behavior_entropy:
            with torch.no_grad():
                logp = self.behavior.sample(b["obs"], self.draws(b["obs"], 1))[1]
            entropy_loss = per_seed(alpha.view(-1, 1, 1) * (-logp - self.target_entropy))
            self.entropy_optim.zero_grad(set_to_none=True)
            entropy_loss.sum().backward()
            self.entropy_optim.step()
            logs["behavior_entropy_alpha"] = relu_v2(self.alpha_entropy).detach()
        return logs

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        """The tanh of the actor's mean (``DeterministicSoftPolicy``)."""
        return torch.tanh(self.actor.params(obs)[0])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "alpha_entropy": self.alpha_entropy.detach().clone(),
                "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.alpha_entropy.copy_(state["alpha_entropy"])
        self.steps_done = int(state["steps_done"])
