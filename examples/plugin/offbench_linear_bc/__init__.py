"""A third-party offbench algorithm: behaviour cloning with a linear policy.

offbench finds it through the ``offbench.algorithms`` entry point declared in pyproject.toml;
``offbench list algos`` lists it and ``offbench run --algo linear-bc`` trains it on the shared
loop, samplers and evaluation, with run records, resuming and reports like any built-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from offbench.algos.base import AlgoConfig, TransitionAlgorithm


@dataclass
class LinearBCConfig(AlgoConfig):
    """Fields are `--set`-able (`--set linear-bc.lr=0.01`); budgets come from AlgoConfig."""

    lr: float = 1e-3
    normalize_obs: bool = True


class LinearBC(TransitionAlgorithm):
    """Behaviour cloning with a linear policy (argmax for discrete actions, tanh for continuous)."""

    Config = LinearBCConfig
    STATE = ("net", "optim")  # what a checkpoint saves, so interrupted runs resume exactly

    def __init__(self, config, info, device) -> None:
        super().__init__(config, info, device)  # normalizer, obs_dim, action_dim, device
        self.net = torch.nn.Linear(self.obs_dim, self.action_dim).to(device)
        self.optim = torch.optim.Adam(self.net.parameters(), lr=config.lr)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One gradient step on a batch from the shared transition sampler."""
        b = self.tensors(batch)
        out = self.net(b["obs"])
        loss = F.cross_entropy(out, b["actions"]) if self.discrete else F.mse_loss(torch.tanh(out), b["actions"])
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return {"loss": loss.detach()}

    def act(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Actions for a batch of normalized observations (evaluation)."""
        out = self.net(obs)
        return out.argmax(-1) if self.discrete else torch.tanh(out)
