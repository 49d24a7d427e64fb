"""Behaviour cloning (``bc``) and filtered behaviour cloning (``pbc``, "%BC").

BC fits a policy to all dataset actions: cross-entropy for discrete actions, mean squared error
on a tanh output for continuous ones. %BC does the same on a filtered dataset: the top X% of
timesteps by episode return (Decision Transformer paper), the top X% of trajectories (CORL's
"10% BC"), or only the successful episodes (the paper's choice on Key-to-Door).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from offbench.algos.base import ALGORITHMS, AlgoConfig, Algorithm
from offbench.algos.nets import ObsNormalizer, mlp, sample_or_argmax
from offbench.data.dataset import Dataset, TransitionSampler
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
    }


@dataclass
class PBCConfig(BCConfig):
    fraction: float = 0.1
    by: str = "timesteps"  # timesteps (DT paper) | trajectories (CORL) | success

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "keytodoor": {**BCConfig.DOMAIN_DEFAULTS["keytodoor"], "by": "success"},
    }

    def validate(self) -> None:
        super().validate()
        if self.by not in ("timesteps", "trajectories", "success"):
            raise UsageError(f"by must be timesteps, trajectories or success, got '{self.by}'")
        if not 0 < self.fraction <= 1:
            raise UsageError(f"fraction must be in (0, 1], got {self.fraction}")


class MarkovPolicy:
    """A policy that looks only at the current observation."""

    def __init__(self, algo: BC, generator: torch.Generator) -> None:
        self.algo, self.generator = algo, generator

    def reset(self, n: int) -> None:
        pass

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        out = self.algo.actor(self.algo.norm(self.algo.to_tensor(observations)))
        if self.algo.discrete:
            return sample_or_argmax(out, self.algo.config.sample_actions, self.generator).cpu().numpy()
        return torch.tanh(out).cpu().numpy()

    def observe(self, rewards: np.ndarray) -> None:
        pass


@ALGORITHMS.register("bc")
class BC(Algorithm):
    """Behaviour cloning with an MLP policy."""

    Config = BCConfig
    config: BCConfig

    def __init__(self, config: BCConfig, data: Dataset, spec: DatasetSpec, device: torch.device) -> None:
        super().__init__(config, data, spec, device)
        self.train_data = self.select(data)
        self.norm = ObsNormalizer(data.obs_mean, data.obs_std, config.normalize_obs).to(device)
        inp = int(np.prod(self.obs_shape))
        self.actor = mlp(inp, config.hidden, self.action_dim).to(device)
        self.optim = torch.optim.Adam(self.actor.parameters(), lr=config.lr)

    def select(self, data: Dataset) -> Dataset:
        """The episodes to imitate: all of them for plain BC."""
        return data

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> TransitionSampler:
        return TransitionSampler(self.train_data, self.config.batch_size, rng)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = self.actor(self.norm(self.to_tensor(batch["observations"])))
        if self.discrete:
            loss = F.cross_entropy(out, self.to_tensor(batch["actions"], torch.long))
        else:
            loss = F.mse_loss(torch.tanh(out), self.to_tensor(batch["actions"]))
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return {"loss": loss.detach()}

    def policy(self, target_return: float | None, generator: torch.Generator) -> MarkovPolicy:
        return MarkovPolicy(self, generator)

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "optim": self.optim.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.optim.load_state_dict(state["optim"])


@ALGORITHMS.register("pbc")
class PercentBC(BC):
    """%BC: behaviour cloning on the best part of the dataset."""

    Config = PBCConfig
    config: PBCConfig

    def select(self, data: Dataset) -> Dataset:
        if self.config.by == "success":
            return successful(data)
        return top_fraction(data, self.config.fraction, by=self.config.by)
