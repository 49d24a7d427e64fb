"""The seed-batched primitives: layers, initialization, optimizers and noise with a leading seed
axis, from which every built-in network is made (the networks themselves are in
:mod:`offbench.algos.nets`).

Every network holds one independent copy of its parameters per training seed, stacked on a
leading seed axis: a layer's input is ``(S, ..., features)``, seed ``i``'s slice only ever meets
seed ``i``'s parameters, so S seeds train as one model with one kernel per layer instead of S.
Losses are summed over seeds (each seed's own mean), so every seed gets exactly the gradient it
would get alone, and Adam, being elementwise, takes exactly the step it would take alone.

Parameters are initialized inside :func:`seeded_init`: seed ``i``'s slice of every layer is drawn,
in construction order, from a generator seeded with ``seeds[i]``, so seed 3 of a five-seed model
starts from the same weights as seed 3 trained alone. Outside it a network has one seed and draws
from torch's global generator, like ``torch.nn``. Any initializer can be applied per seed with
:func:`reinit_` (the init hook: CORL's orthogonal and xavier schemes use it).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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


def sample_or_argmax(logits: torch.Tensor, sample: bool, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Discrete actions from (S, N, A) logits: sampled from each seed's softmax with its own
    generator, or the most likely one."""
    if not sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float(), dim=-1).cpu()
    return torch.stack([torch.multinomial(p, 1, generator=g).squeeze(-1)
                        for p, g in zip(probs, generators)]).to(logits.device)


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
