"""Behaviour cloning (``bc``) and filtered behaviour cloning (``pbc``, "%BC").

BC fits a policy to all dataset actions: cross-entropy for discrete actions, mean squared error
on a tanh output for continuous ones. %BC does the same on a filtered dataset: the top X% of
timesteps by episode return (Decision Transformer paper), the top X% of trajectories (CORL's
"10% BC"), or only the successful episodes (the paper's choice on Key-to-Door).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from offbench.algos.base import ALGORITHMS, AlgoConfig, TransitionAlgorithm
from offbench.algos.nets import adam, per_seed, sample_or_argmax, state_network
from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec
from offbench.data.variants import successful, top_fraction
from offbench.errors import UsageError


@dataclass
class BCConfig(AlgoConfig):
    """CORL's BC defaults for D4RL locomotion; Key-to-Door: a short budget and greedy actions."""

    steps: int = 1_000_000
    batch_size: int = 256
    eval_every: int = 5_000
    eval_episodes: int = 10
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    normalize_obs: bool = True
    sample_actions: bool = True  # discrete actions: sample from the softmax (else argmax)

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "keytodoor": dict(steps=2_000, batch_size=128, eval_every=500, eval_episodes=100, lr=1e-3,
                          normalize_obs=False, sample_actions=False),
        # Atari: Nature-DQN encoder, the DT paper's optimizer scale and about as many samples as DT's 5 epochs
        "atari": dict(steps=20_000, batch_size=128, eval_every=5_000, eval_episodes=10, lr=6e-4, normalize_obs=False),
    }


@dataclass
class PBCConfig(BCConfig):
    fraction: float = 0.1
    by: str = "timesteps"  # timesteps (DT paper) | trajectories (CORL) | success

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "keytodoor": {**BCConfig.DOMAIN_DEFAULTS["keytodoor"], "by": "success"},
        "atari": BCConfig.DOMAIN_DEFAULTS["atari"],
    }

    def validate(self) -> None:
        super().validate()
        if self.by not in ("timesteps", "trajectories", "success"):
            raise UsageError(f"by must be timesteps, trajectories or success, got '{self.by}'")
        if not 0 < self.fraction <= 1:
            raise UsageError(f"fraction must be in (0, 1], got {self.fraction}")


@ALGORITHMS.register("bc")
class BC(TransitionAlgorithm):
    """Behaviour cloning: an MLP policy (Nature-DQN encoder on Atari frames)."""

    Config = BCConfig
    config: BCConfig
    STATE = ("actor", "optim")
    seed_batched = True

    def __init__(self, config: BCConfig, data: Dataset, spec: DatasetSpec, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, data, spec, device, seeds)
        self.actor = state_network(self.obs_shape, config.hidden, self.action_dim).to(device)
        self.optim = adam(self.actor.parameters(), lr=config.lr)

    def bc_losses(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per sample (S, B): cross-entropy (discrete) or mean squared error of tanh outputs (continuous)."""
        out = self.actor(b["obs"])
        if self.discrete:
            return F.cross_entropy(out.flatten(0, 1), b["actions"].flatten(), reduction="none").view(out.shape[:2])
        return (torch.tanh(out) - b["actions"]).pow(2).mean(-1)

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each seed's training loss (S,) and any extra metrics (plain BC: the mean imitation loss)."""
        return per_seed(self.bc_losses(b)), {}

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        loss, extra = self.loss(self.tensors(batch))
        self.optim.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.optim.step()
        return {"loss": loss.detach(), **extra}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        out = self.actor(obs)
        if self.discrete:
            return sample_or_argmax(out, self.config.sample_actions, generator)
        return torch.tanh(out)


@ALGORITHMS.register("pbc")
class PercentBC(BC):
    """%BC: behaviour cloning on the best part of the dataset."""

    Config = PBCConfig
    config: PBCConfig

    def train_data(self, data: Dataset) -> Dataset:
        if self.config.by == "success":
            return successful(data)
        return top_fraction(data, self.config.fraction, by=self.config.by)
