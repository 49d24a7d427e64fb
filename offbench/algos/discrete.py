"""What the discrete-action Q-learners share (discrete CQL, QR-DQN, REM, discrete BCQ): a network
on the Nature-DQN encoder (frame stacks) or an MLP (vectors), a target copy of it replaced every
``target_update_every`` gradient steps (or moved by ``tau`` each step when that is 0), Adam, and
greedy (``epsilon_eval`` > 0: epsilon-greedy) evaluation.

dopamine counts its schedules in agent steps with one gradient step per ``update_period = 4``:
its ``target_update_period = 8000`` is a copy every 2,000 gradient steps here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from offbench.algos.base import TransitionAlgorithm
from offbench.algos.config import AlgoConfig
from offbench.algos.nets import soft_update, state_network
from offbench.algos.seeded import adam
from offbench.data.info import DataInfo
from offbench.errors import UsageError

#: dopamine's Adam epsilon for its Atari agents (``AdamOptimizer.epsilon = 0.0003125``, 0.01 / 32).
DOPAMINE_ADAM_EPS = 0.01 / 32
#: Atari (DQN-replay, frame stacks): pixels are not standardized; offbench's budget, as discrete CQL's.
ATARI_BUDGET: dict[str, Any] = dict(steps=20_000, eval_every=5_000, eval_episodes=10, normalize_obs=False)


@dataclass
class BatchRLConfig(AlgoConfig):
    """What google-research/batch_rl's ``fixed_replay/configs/quantile.gin`` and ``rem.gin`` (the
    offline agents of Agarwal et al. 2020) set alike; QR-DQN and REM add their own fields."""

    discount: float = 0.99  # gamma (update_horizon 1)
    lr: float = 5e-5  # AdamOptimizer.learning_rate
    adam_eps: float = DOPAMINE_ADAM_EPS  # AdamOptimizer.epsilon 0.0003125
    batch_size: int = 32  # WrappedFixedReplayBuffer.batch_size
    target_update_every: int = 2_000  # target_update_period 8000 agent steps / update_period 4
    tau: float = 0.0  # soft target updates instead, when target_update_every is 0
    epsilon_eval: float = 0.001  # epsilon_eval
    hidden: tuple[int, ...] = (256, 256)  # vector observations only (frame stacks: the Nature-DQN encoder)
    normalize_obs: bool = True

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {"atari": ATARI_BUDGET}


class DiscreteQLearner(TransitionAlgorithm):
    """A Q-network (``network``; :func:`q_network` makes the usual one) and its target copy;
    subclasses give the loss (:meth:`loss`) and the action values used to act (:meth:`action_values`)."""

    STATE = ("q", "q_target", "optim")
    seed_batched = True

    def __init__(self, config: AlgoConfig, info: DataInfo, device: torch.device, seeds: Sequence[int],
                 network: Callable[[], nn.Module], lr: float, adam_eps: float) -> None:
        super().__init__(config, info, device, seeds)
        if not self.discrete:
            raise UsageError(f"{type(self).__name__} needs discrete actions; {info.name} has continuous ones")
        self.q = network().to(device)
        self.q_target = copy.deepcopy(self.q)
        self.optim = adam(self.q.parameters(), lr=lr, eps=adam_eps)
        self.steps_done = 0

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each seed's loss (S,) and metrics to log."""
        raise NotImplementedError

    def action_values(self, obs: torch.Tensor) -> torch.Tensor:
        """(S, N, actions) values whose argmax is the greedy action."""
        raise NotImplementedError

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        loss, metrics = self.loss(self.tensors(batch))
        self.optim.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.optim.step()
        self.steps_done += 1
        c: Any = self.config
        if c.target_update_every:
            if self.steps_done % c.target_update_every == 0:
                self.q_target.load_state_dict(self.q.state_dict())
        else:
            soft_update(self.q_target, self.q, c.tau)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        greedy = self.action_values(obs).argmax(-1)
        eps = float(getattr(self.config, "epsilon_eval", 0.0))
        if eps <= 0:
            return greedy
        shape = tuple(greedy.shape[1:])
        explore = torch.stack([torch.rand(shape, generator=g) < eps for g in generator]).to(greedy.device)
        uniform = torch.stack([torch.randint(self.action_dim, shape, generator=g) for g in generator]).to(greedy.device)
        return torch.where(explore, uniform, greedy)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps_done = int(state["steps_done"])


def q_network(info: DataInfo, hidden: tuple[int, ...], outputs: int) -> Callable[[], nn.Module]:
    """The usual Q-network: ``outputs`` values per state from an MLP (vectors) or the Nature-DQN
    encoder and a linear layer (frame stacks); made when called (inside the seeds' init)."""
    return lambda: state_network(info.obs_shape, hidden, outputs)


def huber(x: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """The Huber loss of ``x`` elementwise: ``x^2 / 2`` within ``kappa``, linear beyond."""
    a = x.abs()
    return torch.where(a <= kappa, 0.5 * x.pow(2), kappa * (a - 0.5 * kappa))
