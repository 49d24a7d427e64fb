"""Small building blocks shared by the algorithms."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mlp(inp: int, hidden: tuple[int, ...] | list[int], out: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A fully connected network ``inp -> hidden... -> out`` with ``activation`` between layers."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inp, width), activation()]
        inp = width
    layers.append(nn.Linear(inp, out))
    return nn.Sequential(*layers)


class ObsNormalizer(nn.Module):
    """Flattens observations and standardizes them with dataset statistics (identity if off)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, enabled: bool = True) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32) if enabled else torch.zeros(len(mean))
        std_t = torch.as_tensor(std, dtype=torch.float32) if enabled else torch.ones(len(std))
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    @classmethod
    def for_data(cls, data: Any, enabled: bool) -> ObsNormalizer:
        """From a dataset's statistics (computed only when enabled: images are not standardized)."""
        if enabled:
            return cls(data.obs_mean, data.obs_std)
        n = int(np.prod(data.obs_shape))
        return cls(np.zeros(n, np.float32), np.ones(n, np.float32), enabled=False)

    def forward(self, obs: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
        flat = obs.reshape(*obs.shape[:batch_dims], -1).float()
        return (flat - self.mean) / self.std


class NatureCNN(nn.Module):
    """The Nature-DQN state encoder for (stack, 84, 84) uint8 frames given flattened: three
    convolutions (32 8x8/4, 64 4x4/2, 64 3x3/1), then a linear layer to ``out`` features."""

    def __init__(self, obs_shape: tuple[int, ...], out: int, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        c = obs_shape[0]
        self.net = nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n = self.net(torch.zeros(1, *obs_shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(n, out), activation())

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        lead = flat.shape[:-1]
        x = flat.reshape(-1, *self.obs_shape) / 255.0
        return self.head(self.net(x)).reshape(*lead, -1)


def is_image(obs_shape: tuple[int, ...]) -> bool:
    return len(obs_shape) == 3


def state_network(obs_shape: tuple[int, ...], hidden: tuple[int, ...] | list[int], out: int) -> nn.Module:
    """An MLP on vector observations; the Nature-DQN encoder plus a linear head on frame stacks."""
    if is_image(obs_shape):
        return nn.Sequential(NatureCNN(obs_shape, 512), nn.Linear(512, out))
    return mlp(int(np.prod(obs_shape)), hidden, out)


def sample_or_argmax(logits: torch.Tensor, sample: bool, generator: torch.Generator) -> torch.Tensor:
    """Discrete actions from logits: sampled from the softmax, or the most likely one."""
    if not sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: ``target <- (1 - tau) * target + tau * source``."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)


class TwinQ(nn.Module):
    """Two independent Q(s, a) networks (clipped double Q-learning)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + action_dim, hidden, 1)
        self.q2 = mlp(obs_dim + action_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class TanhGaussianActor(nn.Module):
    """SAC's policy: a Gaussian with state-dependent std, squashed by tanh into [-1, 1]."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * action_dim)

    def forward(self, obs: torch.Tensor, deterministic: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """An action and its log-probability (with the tanh change of variables)."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[:-1], device=mean.device)
        std = log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device) if generator is not None \
            else torch.randn_like(mean)
        pre = mean + std * noise
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)
        return torch.tanh(pre), log_prob

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-probability of given actions in [-1, 1] (clipped just inside for atanh)."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
        a = action.clamp(-1 + 1e-6, 1 - 1e-6)
        pre = torch.atanh(a)
        lp = torch.distributions.Normal(mean, log_std.exp()).log_prob(pre).sum(-1)
        return lp - torch.log1p(-a.pow(2) + 1e-6).sum(-1)


class GaussianActor(nn.Module):
    """The policy of IQL, AWAC and the weighted-BC family: mean tanh(MLP(s)), a learned
    state-independent std; trained by weighted log-likelihood, evaluated at its mean."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim)
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action."""
        return torch.tanh(self.net(obs))

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        std = self.log_std.clamp(-5.0, 2.0).exp()
        return torch.distributions.Normal(self(obs), std).log_prob(action).sum(-1)
