"""REM, Random Ensemble Mixture (Agarwal et al. 2020, "An Optimistic Perspective on Offline
Reinforcement Learning"; the DT paper's Table 1 column): a Q-network with ``num_heads`` heads on
one torso, trained on a random convex combination of its heads.

Each minibatch draws ``alpha_k ~ U(0, 1)``, normalized to sum to 1 (batch_rl's ``STOCHASTIC``
transform, one combination per minibatch); the mixture ``Q_alpha = sum_k alpha_k Q_k`` is trained
with the Huber TD error to ``r + gamma * (1 - done) * max_a' sum_k alpha_k Q_target_k(s', a')``.
Acting: argmax of the heads' mean, epsilon-greedy with ``epsilon_eval``. With one head REM is DQN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from offbench.algos.base import ALGORITHMS
from offbench.algos.discrete import BatchRLConfig, DiscreteQLearner, huber, q_network
from offbench.algos.seeded import per_seed
from offbench.data.info import DataInfo


@dataclass
class REMConfig(BatchRLConfig):
    """google-research/batch_rl ``fixed_replay/configs/rem.gin`` (``FixedReplayMultiHeadDQNAgent``)."""

    num_heads: int = 200  # rem.gin num_heads (transform_strategy STOCHASTIC)


@ALGORITHMS.register("rem")
class REM(DiscreteQLearner):
    """Random Ensemble Mixture: a multi-head DQN trained on random convex combinations of its heads."""

    Config = REMConfig
    config: REMConfig

    def __init__(self, config: REMConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds, q_network(info, config.hidden, info.action_dim * config.num_heads),
                         lr=config.lr, adam_eps=config.adam_eps)

    def heads(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """(S, N, heads, actions) Q-values of every head."""
        out = (self.q_target if target else self.q)(obs)
        return out.reshape(*out.shape[:-1], self.config.num_heads, self.action_dim)

    def action_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.heads(obs).mean(-2)

    def mixture(self) -> torch.Tensor:
        """(S, heads) weights of this minibatch's random convex combination, one per seed."""
        alpha = self.noise.uniform((self.config.num_heads,))
        return alpha / alpha.sum(-1, keepdim=True)

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c, alpha = self.config, self.mixture()[:, None, :, None]  # (S, 1, heads, 1)
        with torch.no_grad():
            next_q = (self.heads(b["next_obs"], target=True) * alpha).sum(-2).max(-1).values
            target = b["rewards"] + c.discount * (1 - b["dones"]) * next_q
        q = (self.heads(b["obs"]) * alpha).sum(-2)
        q_data = q.gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)
        return per_seed(huber(q_data - target)), {"mean_q": per_seed(q_data).detach()}
