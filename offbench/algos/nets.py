"""Small building blocks shared by the algorithms, batched over seeds.

Every network holds one independent copy of its parameters per training seed, stacked on a
leading seed axis: a layer's input is ``(S, ..., features)``, seed ``i``'s slice only ever meets
seed ``i``'s parameters, so S seeds train as one model with one kernel per layer instead of S.
Losses are summed over seeds (each seed's own mean), so every seed gets exactly the gradient it
would get alone, and Adam, being elementwise, takes exactly the step it would take alone.

Parameters are initialized inside :func:`seeded_init`: seed ``i``'s slice of every layer is drawn,
in construction order, from a generator seeded with ``seeds[i]``, so seed 3 of a five-seed model
starts from the same weights as seed 3 trained alone. Outside it a network has one seed and draws
from torch's global generator, like ``torch.nn``.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_INIT: contextvars.ContextVar[list[torch.Generator] | None] = contextvars.ContextVar("offbench_init", default=None)


@contextlib.contextmanager
def seeded_init(seeds: Sequence[int]) -> Iterator[None]:
    """Build networks with one parameter slice per seed, each drawn from its own seeded generator."""
    token = _INIT.set([torch.Generator().manual_seed(int(s)) for s in seeds])
    try:
        yield
    finally:
        _INIT.reset(token)


def init_generators() -> list[torch.Generator]:
    """The per-seed generators of the enclosing :func:`seeded_init` (else one: torch's global one)."""
    gens = _INIT.get()
    return gens if gens is not None else [torch.default_generator]


def n_init_seeds() -> int:
    return len(init_generators())


def _uniform(shape: tuple[int, ...], bound: float) -> torch.Tensor:
    """One slice per seed, each uniform in [-bound, bound] from that seed's generator."""
    return torch.stack([torch.empty(shape).uniform_(-bound, bound, generator=g) for g in init_generators()])


def reinit_(param: torch.Tensor, init: Callable[..., Any], transpose: bool = False) -> None:
    """Re-draw each seed's slice of ``param`` (seed axis first) in place with a ``torch.nn.init``
    function (``init(tensor, generator=g)``; bind its other arguments with a lambda), each from that
    seed's generator of the enclosing :func:`seeded_init`. ``transpose``: the slices are stored
    transposed from torch's layout (a :class:`SeedLinear` weight is (in, out), ``nn.Linear``'s
    (out, in)), so fan-in/fan-out and orthogonality follow ``nn.Linear``. Call it while building
    the network (inside :func:`seeded_init`), so that a seed starts from the same weights alone or
    in a group."""
    gens = init_generators()
    if len(gens) != param.shape[0]:
        raise ValueError(f"{param.shape[0]} seed slices but {len(gens)} init generators: call reinit_ while building")
    with torch.no_grad():
        for piece, g in zip(param, gens):
            t = torch.empty_like(piece.T if transpose else piece)
            init(t, generator=g)
            piece.copy_(t.T if transpose else t)


def init_linear_(layer: SeedLinear, init: Callable[..., Any], bias: float = 0.0) -> SeedLinear:
    """Re-initialize a :class:`SeedLinear` as ``init(nn.Linear.weight)`` with a constant bias, per
    seed (e.g. ``lambda w, generator: nn.init.orthogonal_(w, gain=2**0.5, generator=generator)``)."""
    reinit_(layer.weight, init, transpose=True)
    with torch.no_grad():
        layer.bias.fill_(bias)
    return layer


class SeedLinear(nn.Module):
    """``nn.Linear`` with one weight per seed: (S, ..., in) -> (S, ..., out) in one batched matmul.
    Initialized as ``nn.Linear`` (uniform in +-1/sqrt(in))."""

    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(inp)
        self.weight = nn.Parameter(_uniform((inp, out), bound))
        self.bias = nn.Parameter(_uniform((1, out), bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = torch.baddbmm(self.bias, x.reshape(lead[0], -1, x.shape[-1]), self.weight)
        return y.reshape(*lead, -1)


def per_seed_features(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(S, D) per-seed feature values shaped to broadcast against (S, ..., D) ``like``."""
    return values.view(like.shape[0], *([1] * (like.ndim - 2)), like.shape[-1])


class SeedLayerNorm(nn.Module):
    """``nn.LayerNorm`` over the last axis with a per-seed scale and shift."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        s = n_init_seeds()
        self.weight, self.bias = nn.Parameter(torch.ones(s, dim)), nn.Parameter(torch.zeros(s, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) * per_seed_features(self.weight, x) + per_seed_features(self.bias, x)


def seed_rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Per-seed row lookup: table (S, N, D), integer idx (S, ...) -> (S, ..., D), seed i's indices
    into seed i's rows, as one embedding lookup."""
    s, n = table.shape[:2]
    offset = torch.arange(s, device=idx.device).view(s, *([1] * (idx.ndim - 1))) * n
    return F.embedding(idx + offset, table.reshape(s * n, -1))


class SeedEmbedding(nn.Module):
    """``nn.Embedding`` per seed (standard normal init): integer indices (S, ...) -> (S, ..., dim)."""

    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([torch.randn(num, dim, generator=g) for g in init_generators()]))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return seed_rows(self.weight, idx)


class SeedConv2d(nn.Module):
    """``nn.Conv2d`` per seed as one grouped convolution over (N, S * channels, H, W) inputs."""

    def __init__(self, inp: int, out: int, kernel: int, stride: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(inp * kernel * kernel)
        self.stride = stride
        self.weight = nn.Parameter(_uniform((out, inp, kernel, kernel), bound))
        self.bias = nn.Parameter(_uniform((out,), bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.weight.shape[0]
        return F.conv2d(x, self.weight.flatten(0, 1), self.bias.flatten(), self.stride, groups=s)


def mlp(inp: int, hidden: tuple[int, ...] | list[int], out: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A fully connected network ``inp -> hidden... -> out`` per seed, ``activation`` between layers."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [SeedLinear(inp, width), activation()]
        inp = width
    layers.append(SeedLinear(inp, out))
    return nn.Sequential(*layers)


def per_seed(x: torch.Tensor) -> torch.Tensor:
    """The mean of each seed's slice: (S, ...) -> (S,)."""
    return x.reshape(x.shape[0], -1).mean(1)


def clip_grad_norm_per_seed(params: Any, max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` for each seed on its own: seed i's gradients are scaled by
    ``min(1, max_norm / (||g_i|| + 1e-6))``, ``||g_i||`` the norm over all its parameters."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.ndim - 1))))
    return norms


def adam(params: Any, lr: float, **kwargs: Any) -> torch.optim.Adam:
    """Adam with the fused kernel (CPU and CUDA): the same update, one kernel for all parameters."""
    return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)


def adamw(params: Any, lr: float, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW with the fused kernel."""
    return torch.optim.AdamW(params, lr=lr, fused=True, **kwargs)


class SeedNoise:
    """Random draws for training, one generator per seed: seed ``i``'s slice of every draw is the
    same whether it trains alone or with others."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        self.device = device
        self.generators = [torch.Generator(device=device).manual_seed(int(s) + 0x5EED) for s in seeds]

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """(S, *shape) standard normal."""
        return torch.stack([torch.randn(shape, generator=g, device=self.device) for g in self.generators])

    def uniform(self, shape: tuple[int, ...]) -> torch.Tensor:
        """(S, *shape) uniform in [0, 1)."""
        return torch.stack([torch.rand(shape, generator=g, device=self.device) for g in self.generators])

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Inverted dropout of (S, ...) activations with per-seed masks."""
        if p <= 0:
            return x
        return x * (self.uniform(tuple(x.shape[1:])) >= p) / (1.0 - p)

    def get_state(self, i: int) -> torch.Tensor:
        return self.generators[i].get_state()

    def set_state(self, i: int, state: torch.Tensor) -> None:
        self.generators[i].set_state(state)


Noise = Callable[[tuple[int, ...]], torch.Tensor]  # shape (S, ...) -> standard normal draws


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
    def for_data(cls, data: Any, enabled: bool, eps: float) -> ObsNormalizer:
        """From a dataset's statistics, ``(s - mean) / (std + eps)`` (computed only when enabled:
        images are not standardized). The reference codes differ in ``eps``: CORL's transition
        algorithms 1e-3, the Decision Transformer's 1e-6."""
        if enabled:
            return cls(data.obs_mean, data.obs_std + np.float32(eps), data.obs_shape)
        n = int(np.prod(data.obs_shape))
        return cls(np.zeros(n, np.float32), np.ones(n, np.float32), data.obs_shape, enabled=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        flat = obs.reshape(*obs.shape[: obs.ndim - self.obs_ndim], -1).to(self.mean.dtype)
        return (flat - self.mean) / self.std


class NatureCNN(nn.Module):
    """The Nature-DQN state encoder per seed, for (stack, 84, 84) uint8 frames given flattened:
    three convolutions (32 8x8/4, 64 4x4/2, 64 3x3/1), then a linear layer to ``out`` features."""

    def __init__(self, obs_shape: tuple[int, ...], out: int, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        c, h, w = obs_shape
        self.convs = nn.ModuleList([SeedConv2d(c, 32, 8, 4), SeedConv2d(32, 64, 4, 2), SeedConv2d(64, 64, 3, 1)])
        for conv in self.convs:
            h, w = (h - conv.weight.shape[-1]) // conv.stride + 1, (w - conv.weight.shape[-1]) // conv.stride + 1
        self.head = nn.Sequential(SeedLinear(64 * h * w, out), activation())

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        s, lead = flat.shape[0], flat.shape[1:-1]
        x = flat.reshape(s, -1, *self.obs_shape).to(self.head[0].weight.dtype) / 255.0  # (S, N, C, H, W)
        n = x.shape[1]
        x = x.transpose(0, 1).reshape(n, s * self.obs_shape[0], *self.obs_shape[1:])
        for conv in self.convs:
            x = F.relu(conv(x))
        x = x.reshape(n, s, -1).transpose(0, 1)  # (S, N, 64 * h * w)
        return self.head(x).reshape(s, *lead, -1)


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


def sample_or_argmax(logits: torch.Tensor, sample: bool, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Discrete actions from (S, N, A) logits: sampled from each seed's softmax with its own
    generator, or the most likely one."""
    if not sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float(), dim=-1).cpu()
    return torch.stack([torch.multinomial(p, 1, generator=g).squeeze(-1)
                        for p, g in zip(probs, generators)]).to(logits.device)


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
                 log_std_bounds: tuple[float, float] = (-5.0, 2.0), tanh_mean: bool = True) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim)
        self.log_std = nn.Parameter(torch.zeros(n_init_seeds(), action_dim))
        self.log_std_min, self.log_std_max = float(log_std_bounds[0]), float(log_std_bounds[1])
        self.tanh_mean = tanh_mean

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action."""
        out = self.net(obs)
        return torch.tanh(out) if self.tanh_mean else out

    def std(self, like: torch.Tensor) -> torch.Tensor:
        """Each seed's std, shaped to broadcast against (S, ..., action_dim) ``like``."""
        return per_seed_features(self.log_std.clamp(self.log_std_min, self.log_std_max).exp(), like)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.log_prob_at(self(obs), action)

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


def seed_linears(net: nn.Module) -> list[SeedLinear]:
    """The :class:`SeedLinear` layers of ``net`` in order."""
    return [m for m in net.modules() if isinstance(m, SeedLinear)]


def orthogonal_init_(net: nn.Module, hidden_gain: float = math.sqrt(2.0), last_gain: float = 1e-2) -> None:
    """CORL's ``init_module_weights(net, orthogonal_init=True)`` (``algorithms/offline/cql.py``):
    every linear layer's weight orthogonal with gain ``hidden_gain``, the last one's with
    ``last_gain``, all biases zero; per seed (call it while building, inside :func:`seeded_init`)."""
    layers = seed_linears(net)
    for layer, gain in zip(layers, [hidden_gain] * (len(layers) - 1) + [last_gain]):
        init_linear_(layer, lambda w, generator, gain=gain: nn.init.orthogonal_(w, gain=gain, generator=generator))


def xavier_last_layer_(net: nn.Module, gain: float = 1e-2) -> None:
    """CORL's ``init_module_weights(net)`` without orthogonal init: only the last linear layer is
    re-drawn, ``xavier_uniform_(gain)`` with a zero bias; the others keep ``nn.Linear``'s init."""
    init_linear_(seed_linears(net)[-1], lambda w, generator: nn.init.xavier_uniform_(w, gain=gain, generator=generator))


#: CORL's and the IQL authors' reward normalization maps the spread of episode returns to 1000
#: (CORL ``modify_reward``: ``max_episode_steps=1000``; IQL ``train_offline.py``: ``*= 1000.0``).
RETURN_RANGE_TARGET = 1000.0


def return_range_reward_scale(episode_returns: np.ndarray) -> float:
    """``1000 / (max return - min return)`` over a dataset's episodes (1 if they are all equal):
    the reward multiplier of CORL's ``modify_reward`` and the IQL authors' ``normalize``."""
    spread = float(np.max(episode_returns) - np.min(episode_returns)) if len(episode_returns) else 0.0
    return RETURN_RANGE_TARGET / spread if spread > 0 else 1.0


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
