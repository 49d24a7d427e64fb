"""The networks the algorithms are made of (MLPs, the Nature-DQN encoder, Q-functions, actors, the
observation normalizer) and small training helpers, all built on the seed-batched primitives of
:mod:`offbench.algos.seeded`."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offbench.algos.seeded import Noise, SeedConv2d, SeedLinear, SeedNoise, n_init_seeds, per_seed_features


def mlp(inp: int, hidden: tuple[int, ...] | list[int], out: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A fully connected network ``inp -> hidden... -> out`` per seed, ``activation`` between layers."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [SeedLinear(inp, width), activation()]
        inp = width
    layers.append(SeedLinear(inp, out))
    return nn.Sequential(*layers)


class ObsNormalizer(nn.Module):
    """Flattens observations (any leading axes) and standardizes them with dataset statistics."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, obs_shape: tuple[int, ...] | None = None,
                 enabled: bool = True) -> None:
        super().__init__()
        self.obs_ndim = len(obs_shape) if obs_shape is not None else 1
        dtype = torch.get_default_dtype()
        mean_t = torch.as_tensor(mean, dtype=dtype) if enabled else torch.zeros(len(mean))
        std_t = torch.as_tensor(std, dtype=dtype) if enabled else torch.ones(len(std))
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    @classmethod
    def for_data(cls, info: Any, enabled: bool, eps: float) -> ObsNormalizer:
        """From a dataset's statistics (a :class:`~offbench.data.info.DataInfo`), ``(s - mean) /
        (std + eps)`` when enabled (images are not standardized). The reference codes differ in
        ``eps``: CORL's transition algorithms 1e-3, the Decision Transformer's 1e-6."""
        if enabled:
            if info.obs_mean is None or info.obs_std is None:
                raise ValueError(f"{info.name}: observation statistics were not computed (describe it with obs_stats)")
            return cls(info.obs_mean, info.obs_std + np.float32(eps), info.obs_shape)
        n = int(np.prod(info.obs_shape))
        return cls(np.zeros(n, np.float32), np.ones(n, np.float32), info.obs_shape, enabled=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        flat = obs.reshape(*obs.shape[: obs.ndim - self.obs_ndim], -1).to(self.mean.dtype)
        return (flat - self.mean) / self.std


class NatureCNN(nn.Module):
    """The Nature-DQN state encoder per seed, for (stack, 84, 84) uint8 frames given flattened:
    three convolutions (32 8x8/4, 64 4x4/2, 64 3x3/1), then a linear layer to ``out`` features."""

    def __init__(self, obs_shape: tuple[int, ...], out: int | None, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        c, h, w = obs_shape
        self.convs = nn.ModuleList([SeedConv2d(c, 32, 8, 4), SeedConv2d(32, 64, 4, 2), SeedConv2d(64, 64, 3, 1)])
        for conv in self.convs:
            h, w = (h - conv.weight.shape[-1]) // conv.stride + 1, (w - conv.weight.shape[-1]) // conv.stride + 1
        self.feature_dim = 64 * h * w  # what :meth:`features` gives per state
        # ``out`` None: no linear layer (heads of one's own on :meth:`features`)
        self.head = nn.Sequential(SeedLinear(self.feature_dim, out), activation()) if out is not None else nn.Identity()

    def features(self, flat: torch.Tensor) -> torch.Tensor:
        """The convolutions' output, (S, ..., 64 * h * w), before the linear layer."""
        s, lead = flat.shape[0], flat.shape[1:-1]
        x = flat.reshape(s, -1, *self.obs_shape).to(self.convs[0].weight.dtype) / 255.0  # (S, N, C, H, W)
        n = x.shape[1]
        x = x.transpose(0, 1).reshape(n, s * self.obs_shape[0], *self.obs_shape[1:])
        for conv in self.convs:
            x = F.relu(conv(x))
        return x.reshape(n, s, -1).transpose(0, 1).reshape(s, *lead, -1)  # (S, ..., 64 * h * w)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(flat))


def is_image(obs_shape: tuple[int, ...]) -> bool:
    return len(obs_shape) == 3


def state_network(obs_shape: tuple[int, ...], hidden: tuple[int, ...] | list[int], out: int) -> nn.Module:
    """An MLP on vector observations; the Nature-DQN encoder plus a linear head on frame stacks."""
    if is_image(obs_shape):
        return nn.Sequential(NatureCNN(obs_shape, 512), SeedLinear(512, out))
    return mlp(int(np.prod(obs_shape)), hidden, out)


def push_window(buf: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """An evaluation window (S, N, K, ...) shifted left by one step with ``value`` (S, N, ...) last."""
    return torch.cat([buf[:, :, 1:], value.unsqueeze(2).to(buf.dtype)], dim=2)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Build graphs without gradients for ``module``'s parameters (an actor loss through a critic
    needs gradients for the actions only; skipping the critic's weight gradients saves their cost)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: ``target <- (1 - tau) * target + tau * source``."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


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
    """SAC's policy: a Gaussian with state-dependent std, squashed by tanh into [-1, 1].

    ``log_std_bounds``: the clamp of the log-std (default [-5, 2], rlkit's SAC). ``log_std_affine``
    ``(multiplier, offset)``: the network's log-std head becomes ``m * head + b`` before the clamp,
    ``m`` and ``b`` learned scalars per seed starting at the given values (CORL's CQL
    ``TanhGaussianPolicy``: ``log_std_multiplier`` / ``log_std_offset`` ``Scalar`` parameters);
    ``None`` (default): the head is the log-std."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...],
                 log_std_bounds: tuple[float, float] = (LOG_STD_MIN, LOG_STD_MAX),
                 log_std_affine: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * action_dim)
        self.log_std_min, self.log_std_max = float(log_std_bounds[0]), float(log_std_bounds[1])
        if log_std_affine is not None:
            s = n_init_seeds()
            self.log_std_multiplier = nn.Parameter(torch.full((s, 1), float(log_std_affine[0])))
            self.log_std_offset = nn.Parameter(torch.full((s, 1), float(log_std_affine[1])))
        else:
            self.log_std_multiplier = self.log_std_offset = None

    def mean_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian's mean and clamped log-std (before the tanh) at (S, ..., obs) states."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        if self.log_std_multiplier is not None:
            shape = (-1, *([1] * (log_std.ndim - 1)))
            log_std = self.log_std_multiplier.view(shape) * log_std + self.log_std_offset.view(shape)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def forward(self, obs: torch.Tensor, deterministic: bool = False,
                noise: Noise | None = None, samples: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """An action and its log-probability (with the tanh change of variables); ``noise`` draws
        the standard normal (S, ...) sample (default: torch's global generator). ``samples > 1``
        on (S, B, d) states: ``samples`` actions per state, (S, B * samples, ...) with each state's
        actions consecutive, from one pass of the network per state (as if each row were repeated)."""
        mean, log_std = self.mean_log_std(obs)
        if samples > 1:
            mean, log_std = mean.repeat_interleave(samples, dim=1), log_std.repeat_interleave(samples, dim=1)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[:-1], device=mean.device)
        std = log_std.exp()
        eps = noise(tuple(mean.shape[1:])) if noise is not None else torch.randn_like(mean)
        pre = mean + std * eps
        log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)
        return torch.tanh(pre), log_prob

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-probability of given actions in [-1, 1] (clipped just inside for atanh)."""
        mean, log_std = self.mean_log_std(obs)
        a = action.clamp(-1 + 1e-6, 1 - 1e-6)
        pre = torch.atanh(a)
        lp = torch.distributions.Normal(mean, log_std.exp()).log_prob(pre).sum(-1)
        return lp - torch.log1p(-a.pow(2) + 1e-6).sum(-1)


class GaussianActor(nn.Module):
    """The policy of IQL, AWAC and the weighted-BC family: mean tanh(MLP(s)), a learned
    state-independent std per seed; trained by weighted log-likelihood, evaluated at its mean.

    ``log_std_bounds``: the clamp of the log-std (default [-5, 2], the IQL authors'; CORL's IQL and
    AWAC use [-20, 2]). ``tanh_mean=False``: the mean is MLP(s) itself, unbounded (CORL's AWAC)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...],
                 log_std_bounds: tuple[float, float] = (-5.0, 2.0), tanh_mean: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim)
        self.log_std = nn.Parameter(torch.zeros(n_init_seeds(), action_dim))
        self.log_std_min, self.log_std_max = float(log_std_bounds[0]), float(log_std_bounds[1])
        self.tanh_mean, self.dropout = tanh_mean, dropout

    def forward(self, obs: torch.Tensor, noise: SeedNoise | None = None) -> torch.Tensor:
        """The mean action; with ``noise`` (training), ``dropout`` after every hidden activation,
        each seed's masks from its own generator (CORL's IQL ``MLP(dropout=...)``)."""
        if noise is None or self.dropout <= 0:
            out = self.net(obs)
        else:
            out = obs
            for layer in self.net:
                out = layer(out)
                if not isinstance(layer, SeedLinear):  # an activation
                    out = noise.dropout(out, self.dropout)
        return torch.tanh(out) if self.tanh_mean else out

    def std(self, like: torch.Tensor) -> torch.Tensor:
        """Each seed's std, shaped to broadcast against (S, ..., action_dim) ``like``."""
        return per_seed_features(self.log_std.clamp(self.log_std_min, self.log_std_max).exp(), like)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor, noise: SeedNoise | None = None) -> torch.Tensor:
        return self.log_prob_at(self(obs, noise), action)

    def log_prob_at(self, mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``action`` under the policy whose mean action is ``mean`` (already
        computed): ``torch.distributions.Normal(mean, std).log_prob(action).sum(-1)``, written out."""
        std = self.std(mean)
        return (-((action - mean) ** 2) / (2 * std**2) - std.log() - math.log(math.sqrt(2 * math.pi))).sum(-1)


class DeterministicActor(nn.Module):
    """A deterministic policy tanh(MLP(s)) (CORL's IQL ``DeterministicPolicy``: its MLP with a
    Tanh output, no std parameter), trained by weighted squared error, evaluated as it is."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


def return_range_reward_scale(return_range: tuple[float, float], target: float) -> float:
    """``target / (max return - min return)`` over a dataset's episodes (1 if they are all equal):
    the reward multiplier of CORL's ``modify_reward`` and the IQL authors' ``normalize`` (both with
    a target of 1000)."""
    spread = return_range[1] - return_range[0]
    return target / spread if spread > 0 else 1.0


def warmup_then(step: int, warmup: int, steps: int, schedule: str) -> float:
    """Learning-rate multiplier of update ``step`` (0-based): linear warmup over ``warmup``
    updates (kzl's ``min((step + 1) / warmup, 1)``), then constant, or (``cosine``) a cosine decay
    to 10% at the end of the ``steps`` budget."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0
