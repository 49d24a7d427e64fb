"""The reward-weighted behaviour-cloning family taught with offline RL: RWR and AWR (MARWIL).

- ``rwr`` (reward-weighted regression): behaviour cloning where every step of an episode is
  weighted by ``exp(z / temperature)``, ``z = (R - R_max) / (R_max - R_min)`` in [-1, 0] the
  episode's normalized return. Subtracting the maximum keeps every weight in (0, 1] whatever the
  scale of the returns; temperature -> 0 approaches cloning the best episodes, large values plain BC.
- ``awr`` (advantage-weighted regression / MARWIL): a value function V(s) is fit to discounted
  Monte-Carlo returns-to-go; each step is weighted by ``exp(A / (beta * rms(A)))``, A = G - V(s),
  normalized by a running root-mean-square as in MARWIL, and clipped at ``max_weight`` (20, AWR).

Both reuse BC's network and loss (cross-entropy or MSE on tanh outputs), weighted per sample and
divided by the dataset's mean weight so the learning rate keeps its meaning. They have one recipe,
BC's ``corl`` (the Markov network and Adam): their weights are per transition, which BC's
windowed ``paper`` model does not sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from offbench.algos.base import ALGORITHMS
from offbench.algos.bc import BC, BCConfig
from offbench.algos.nets import state_network
from offbench.algos.seeded import adam, per_seed
from offbench.data.dataset import Dataset, TransitionSampler
from offbench.data.info import DataInfo
from offbench.errors import UsageError


def rwr_weights(data: Dataset, temperature: float) -> np.ndarray:
    """Per-step weights ``exp(z / temperature)`` of each step's episode (finite for any returns)."""
    r = data.episode_returns
    spread = float(r.max() - r.min())
    z = (r - r.max()) / spread if spread > 0 else np.zeros_like(r)
    return np.exp(z / temperature)[data.episode_index].astype(np.float32)


def awr_weights(advantage: torch.Tensor, mean_square: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """``exp(A / (beta * rms))`` clipped at ``max_weight`` (finite for any advantage scale)."""
    scaled = advantage / (beta * mean_square.sqrt().clamp_min(1e-8))
    return torch.exp(scaled.clamp(max=float(np.log(max_weight)))).clamp(max=max_weight)


#: The one recipe of the weighted family (no peer publishes one for these datasets): BC's Markov
#: network with offbench's settings.
MARKOV_ONLY: dict[str, dict[str, dict[str, Any]]] = {"offbench": {"*": {}}}
#: BC's domain defaults for the Markov network (on Key-to-Door, BC's own are the windowed
#: model's): offbench's earlier Key-to-Door settings for BC.
MARKOV_DOMAINS: dict[str, dict[str, Any]] = {
    **BCConfig.DOMAIN_DEFAULTS,
    "keytodoor": dict(steps=2_000, batch_size=128, eval_every=500, eval_episodes=100, lr=1e-3,
                      normalize_obs=False, sample_actions=False, recipe="offbench"),
}


@dataclass
class WeightedBCConfig(BCConfig):
    """What RWR and AWR share: BC's Markov network, with offbench's own settings (one recipe)."""

    recipe: str = "offbench"

    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = MARKOV_ONLY
    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = MARKOV_DOMAINS

    def validate(self) -> None:
        super().validate()
        if self.windowed:
            raise UsageError(f"{type(self).__name__}: context and dropout are for bc's windowed recipe; the "
                             f"weighted family trains the Markov network on single transitions")


@dataclass
class RWRConfig(WeightedBCConfig):
    temperature: float = 0.1


@dataclass
class AWRConfig(WeightedBCConfig):
    beta: float = 1.0
    discount: float = 0.99
    max_weight: float = 20.0
    value_lr: float = 3e-4
    rms_momentum: float = 1e-2  # update rate of the running mean square of advantages


@ALGORITHMS.register("rwr")
class RWR(BC):
    """Reward-weighted regression: BC weighted by exponentiated normalized episode return."""

    Config = RWRConfig
    config: RWRConfig

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> TransitionSampler:
        w = rwr_weights(data, self.config.temperature)
        return TransitionSampler(data, self.config.batch_size, rng, extras={"weights": w / w.mean()})


@ALGORITHMS.register("awr")
class AWR(BC):
    """Advantage-weighted regression (MARWIL): BC weighted by exp(advantage / beta), clipped."""

    Config = AWRConfig
    config: AWRConfig
    STATE = ("actor", "optim", "value", "value_optim")

    def __init__(self, config: AWRConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        self.value = state_network(self.obs_shape, config.hidden, 1).to(device)
        self.value_optim = adam(self.value.parameters(), lr=config.value_lr)
        self.mean_square = torch.ones(len(self.seeds), 1, device=device)

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> TransitionSampler:
        g = data.discounted_returns_to_go(self.config.discount)
        scale = float(g.std()) or 1.0
        return TransitionSampler(data, self.config.batch_size, rng, extras={"returns": (g / scale).astype(np.float32)})

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """A step of the value function on the returns, then a policy step weighted by the
        advantages under the value before its step."""
        b = self.tensors(batch)
        v = self.value(b["obs"]).squeeze(-1)
        value_loss = per_seed((v - b["returns"]).pow(2))
        self.value_optim.zero_grad(set_to_none=True)
        value_loss.sum().backward()
        self.value_optim.step()
        adv = b["returns"] - v.detach()
        with torch.no_grad():
            self.mean_square.lerp_(adv.pow(2).mean(1, keepdim=True), self.config.rms_momentum)
        b["weights"] = awr_weights(adv, self.mean_square, self.config.beta, self.config.max_weight)
        return {**self.policy_step(b), "value_loss": value_loss.detach(), "weight_mean": per_seed(b["weights"])}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "mean_square": self.mean_square.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.mean_square.copy_(state["mean_square"])
