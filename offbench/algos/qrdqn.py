"""QR-DQN (Dabney et al. 2018) offline, as Agarwal et al. 2020 ran it on DQN-replay (the DT
paper's Table 1 column): a distributional Q-network giving ``num_quantiles`` quantiles of the
return per action, trained with the quantile Huber loss to the target network's quantiles at the
greedy next action.

For quantile midpoints ``tau_i = (2i + 1) / 2N`` and the TD errors ``u_ij = T_j - Z_i`` (``T``:
``r + gamma * (1 - done) * Z_target(s', argmax_a mean_j Z_target(s', a)_j)``), the loss is
``sum_i mean_j |tau_i - 1{u_ij < 0}| * huber_kappa(u_ij) / kappa`` (dopamine's ``QuantileAgent``).
Acting: argmax of the quantiles' mean, epsilon-greedy with ``epsilon_eval`` as dopamine evaluates.
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
class QRDQNConfig(BatchRLConfig):
    """google-research/batch_rl ``fixed_replay/configs/quantile.gin`` (dopamine's quantile agent)."""

    num_quantiles: int = 200  # quantile.gin num_atoms
    kappa: float = 1.0  # dopamine QuantileAgent kappa


@ALGORITHMS.register("qrdqn")
class QRDQN(DiscreteQLearner):
    """Quantile-regression DQN: 200 return quantiles per action, quantile Huber loss."""

    Config = QRDQNConfig
    config: QRDQNConfig

    def __init__(self, config: QRDQNConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds, q_network(info, config.hidden, info.action_dim * config.num_quantiles),
                         lr=config.lr, adam_eps=config.adam_eps)
        n = config.num_quantiles
        self.tau_hat = (2 * torch.arange(n, dtype=torch.get_default_dtype(), device=device) + 1) / (2 * n)

    def quantiles(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """(S, N, actions, quantiles) return quantiles."""
        out = (self.q_target if target else self.q)(obs)
        return out.reshape(*out.shape[:-1], self.action_dim, self.config.num_quantiles)

    def action_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.quantiles(obs).mean(-1)

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        with torch.no_grad():
            nxt = self.quantiles(b["next_obs"], target=True)  # (S, B, A, N)
            best = nxt.mean(-1).argmax(-1)
            z_next = nxt.gather(-2, best[..., None, None].expand(*best.shape, 1, c.num_quantiles)).squeeze(-2)
            target = b["rewards"][..., None] + c.discount * (1 - b["dones"][..., None]) * z_next  # (S, B, N)
        z = self.quantiles(b["obs"])
        z = z.gather(-2, b["actions"][..., None, None].expand(*b["actions"].shape, 1, c.num_quantiles)).squeeze(-2)
        loss = quantile_huber_loss(z, target, self.tau_hat, c.kappa)
        return loss, {"mean_q": per_seed(z.mean(-1)).detach()}


def quantile_huber_loss(z: torch.Tensor, target: torch.Tensor, tau_hat: torch.Tensor, kappa: float) -> torch.Tensor:
    """Each seed's quantile Huber loss (S,): ``z`` (S, B, N) quantiles at ``tau_hat``, ``target``
    (S, B, N') samples of the target distribution; summed over the N quantiles, averaged over the
    N' targets and the batch. ``kappa`` 0: the plain quantile (pinball) loss."""
    u = target[..., None, :] - z[..., :, None]  # (S, B, N, N')
    weight = (tau_hat[:, None] - (u.detach() < 0).to(u.dtype)).abs()
    elementwise = weight * (huber(u, kappa) / kappa if kappa > 0 else u.abs())
    return per_seed(elementwise.mean(-1).sum(-1))
