"""Decision Transformer (Chen et al. 2021): a causal GPT over (return-to-go, state, action) tokens.

Each timestep contributes three tokens, embedded separately and summed with one learned
embedding of the timestep; the token sequence is layer-normalized and passed through causal
self-attention blocks. The action at step t is predicted from the hidden state of the state
token s_t, which sees R_1, s_1, a_1, ..., R_t, s_t but not a_t. Discrete actions are trained with
cross-entropy, continuous ones with mean squared error on a tanh head. At evaluation the policy
is conditioned on a target return and subtracts the observed rewards from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offbench.algos.base import ALGORITHMS, AlgoConfig, Algorithm
from offbench.algos.nets import (
    NatureCNN,
    ObsNormalizer,
    SeedEmbedding,
    SeedLayerNorm,
    SeedLinear,
    SeedNoise,
    adamw,
    clip_grad_norm_per_seed,
    is_image,
    sample_or_argmax,
)
from offbench.data.dataset import Dataset, WindowSampler
from offbench.data.spec import DatasetSpec
from offbench.errors import UsageError


@dataclass
class DTConfig(AlgoConfig):
    """The paper's gym recipe by default.

    Key-to-Door (the paper publishes no hyperparameters for it): the whole episode (24 steps) is
    the context; a small model (embed 32, 2 layers, no dropout), lr 1e-2 decayed by a cosine to
    1e-3 over 10k steps, chosen by measurement so that three seeds train in minutes on a 2-core
    CPU; greedy actions, as the paper's BC scoring below the random policy implies deterministic
    evaluation.
    """

    steps: int = 100_000
    batch_size: int = 64
    eval_every: int = 10_000
    eval_episodes: int = 100
    context: int = 20
    embed_dim: int = 128
    n_layers: int = 3
    n_heads: int = 1
    dropout: float = 0.1
    activation: str = "relu"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10_000
    lr_schedule: str = "constant"  # after warmup: constant (gym recipe) | cosine (decay to 10%, Atari recipe)
    grad_clip: float = 0.25
    rtg_scale: float = 1000.0
    normalize_obs: bool = True
    sample_actions: bool = True  # discrete actions: sample from the softmax (else argmax)
    betas: tuple[float, float] = (0.9, 0.999)
    preset: str = "paper"  # paper | large-batch (CORL's: batch 4096, lr 8e-4); `--set dt.preset=large-batch`

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "large-batch": {"batch_size": 4096, "lr": 8e-4},
    }

    def validate(self) -> None:
        super().validate()
        if self.lr_schedule not in ("constant", "cosine"):
            raise UsageError(f"lr_schedule must be constant or cosine, got '{self.lr_schedule}'")
        if self.embed_dim % self.n_heads:
            raise UsageError(f"embed_dim ({self.embed_dim}) must be divisible by n_heads ({self.n_heads})")

    #: Pong: context 50 and batch 512 (DT paper).
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {"pong-1pct": {"context": 50, "batch_size": 512}}

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        # Atari (DT paper): K 30, 6 layers, 8 heads, embed 128, GELU, AdamW lr 6e-4 betas (0.9, 0.95) wd 0.1,
        # warmup then cosine decay, batch 128, 5 epochs over 500k transitions (~20k steps), sampled actions
        "atari": dict(steps=20_000, batch_size=128, eval_every=5_000, eval_episodes=10, context=30, embed_dim=128,
                      n_layers=6, n_heads=8, dropout=0.1, activation="gelu", lr=6e-4, weight_decay=0.1,
                      betas=(0.9, 0.95), warmup_steps=500, lr_schedule="cosine", rtg_scale=1.0, normalize_obs=False),
        "keytodoor": dict(steps=10_000, batch_size=64, eval_every=2_000, eval_episodes=100, context=24,
                          embed_dim=32, n_layers=2, dropout=0.0, lr=1e-2, warmup_steps=100,
                          lr_schedule="cosine", rtg_scale=1.0, normalize_obs=False, sample_actions=False),
    }


class Block(nn.Module):
    """Pre-norm transformer block: masked self-attention and an MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = SeedLayerNorm(dim), SeedLayerNorm(dim)
        self.qkv, self.proj = SeedLinear(dim, 3 * dim), SeedLinear(dim, dim)
        self.fc, self.out = SeedLinear(dim, 4 * dim), SeedLinear(4 * dim, dim)
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, noise: SeedNoise | None,
                rows: slice | None = None) -> torch.Tensor:
        """x (S, B, N, D); attn_mask (S * B, 1, N, N), True where attending is allowed. ``noise``:
        dropout with per-seed masks (training). ``rows``: the outputs at these token positions
        only, (S, B, M, D): keys and values come from every token, the query, projection and MLP
        from those rows alone (the last block computes only the tokens the model predicts from)."""
        s, b, n, d = x.shape
        hd = d // self.heads
        h = self.ln1(x)
        if rows is None:
            q, k, v = self.qkv(h).view(s * b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        else:  # the qkv weight's first D columns make the query, the rest the key and value
            w, bias = self.qkv.weight, self.qkv.bias  # (S, D, 3D), (S, 1, 3D)
            hq = h[:, :, rows]
            m = hq.shape[2]
            q = torch.baddbmm(bias[..., :d], hq.reshape(s, b * m, d), w[..., :d]).view(s * b, m, self.heads, hd)
            q = q.transpose(1, 2)
            k, v = torch.baddbmm(bias[..., d:], h.reshape(s, b * n, d), w[..., d:]) \
                .view(s * b, n, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
            x, attn_mask, n = x[:, :, rows], attn_mask[:, :, rows], m
        if noise is None or self.dropout <= 0:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        else:  # attention dropout with each seed's own masks
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
            att = torch.softmax(att.masked_fill(~attn_mask, float("-inf")), dim=-1)
            y = noise.dropout(att.view(s, b, *att.shape[1:]), self.dropout).view_as(att) @ v
        x = x + self._drop(self.proj(y.transpose(1, 2).reshape(s, b, n, d)), noise)
        return x + self._drop(self.out(self.act(self.fc(self.ln2(x)))), noise)

    def _drop(self, y: torch.Tensor, noise: SeedNoise | None) -> torch.Tensor:
        return noise.dropout(y, self.dropout) if noise is not None else y


class DecisionTransformer(nn.Module):
    """GPT over interleaved (R, s, a) tokens; returns action predictions at every state token.
    One model per seed on the leading axis (see :mod:`offbench.algos.nets`)."""

    def __init__(self, obs_shape: tuple[int, ...], action_dim: int, discrete: bool, max_timestep: int,
                 cfg: DTConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.discrete, self.dropout = discrete, cfg.dropout
        self.embed_timestep = SeedEmbedding(max_timestep + 1, d)
        self.embed_return = SeedLinear(1, d)
        # frame stacks: the Nature-DQN encoder with a tanh, as the paper's Atari model; vectors: linear
        self.embed_state = NatureCNN(obs_shape, d, nn.Tanh) if is_image(obs_shape) else SeedLinear(int(np.prod(obs_shape)), d)
        self.embed_action = SeedEmbedding(action_dim, d) if discrete else SeedLinear(action_dim, d)
        self.embed_ln = SeedLayerNorm(d)
        self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.dropout, cfg.activation) for _ in range(cfg.n_layers))
        self.ln_f = SeedLayerNorm(d)
        self.predict_action = SeedLinear(d, action_dim)
        self.max_timestep = max_timestep

    def forward(self, states: torch.Tensor, actions: torch.Tensor, returns_to_go: torch.Tensor,
                timesteps: torch.Tensor, mask: torch.Tensor, noise: SeedNoise | None = None,
                last_only: bool = False) -> torch.Tensor:
        """states (S,B,K,obs), actions (S,B,K) or (S,B,K,act), returns_to_go (S,B,K), timesteps
        (S,B,K), mask (S,B,K) with 1 for real steps -> action logits or actions (S,B,K,act).
        ``noise``: dropout with these per-seed generators (training); None: no dropout.
        ``last_only`` (evaluation): only the prediction at the last step, (S,B,act), computed
        without the last action token (no state sees its own action) and with the final block
        evaluated for the last state token alone: the same numbers as ``[:, :, -1]``, cheaper.
        The final block always computes only the state tokens' outputs (the only ones predicted from)."""
        s, b, k = mask.shape
        time = self.embed_timestep(timesteps.clamp(0, self.max_timestep))
        tokens = torch.stack([
            self.embed_return(returns_to_go.unsqueeze(-1)) + time,
            self.embed_state(states) + time,
            self.embed_action(actions) + time,
        ], dim=3).reshape(s, b, 3 * k, -1)  # R_1, s_1, a_1, R_2, ...
        x = self.embed_ln(tokens)
        if noise is not None:
            x = noise.dropout(x, self.dropout)
        valid = mask.bool().reshape(s * b, k).repeat_interleave(3, dim=1)  # (S * B, 3K)
        n = 3 * k
        if last_only:
            x, valid, n = x[:, :, :-1], valid[:, :-1], n - 1  # ends with the last state token
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        attn_mask = (causal & (valid[:, None, :] | eye))[:, None]  # pads never attended (but self)
        for block in self.blocks[:-1]:
            x = block(x, attn_mask, noise)
        rows = slice(n - 1, n) if last_only else slice(1, None, 3)  # the last state token, or every one (s_t at 3t + 1)
        out = self.predict_action(self.ln_f(self.blocks[-1](x, attn_mask, noise, rows=rows)))
        if last_only:
            out = out[:, :, 0]
        return out if self.discrete else torch.tanh(out)


class DTPolicy:
    """Return-conditioned evaluation: keeps the last K steps of each episode and feeds them
    (all seeds at once: windows are (S, N, K, ...))."""

    def __init__(self, algo: DT, target_return: float, generators: list[torch.Generator]) -> None:
        self.algo, self.target, self.generators = algo, target_return, generators

    def reset(self, n: int) -> None:
        a, k, s = self.algo, self.algo.config.context, len(self.algo.seeds)
        self.t = 0
        self.states = torch.zeros(s, n, k, a.obs_dim, device=a.device)
        act_shape = (s, n, k) if a.discrete else (s, n, k, a.action_dim)
        self.actions = torch.zeros(act_shape, dtype=torch.long if a.discrete else None, device=a.device)
        self.rtg = torch.zeros(s, n, k, device=a.device)
        self.next_rtg = torch.full((s, n), float(self.target), device=a.device)

    @staticmethod
    def _push(buf: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Shift the window left by one step and put ``value`` last."""
        return torch.cat([buf[:, :, 1:], value.unsqueeze(2).to(buf.dtype)], dim=2)

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        a, t, k = self.algo, self.t, self.algo.config.context
        s, n = observations.shape[:2]
        self.states = self._push(self.states, a.norm(a.to_tensor(observations)))
        self.rtg = self._push(self.rtg, self.next_rtg)
        self.actions = self._push(self.actions, torch.zeros_like(self.actions[:, :, 0]))
        real = min(t + 1, k)  # steps of this episode in the window (the rest is left padding)
        steps = torch.arange(t + 1 - k, t + 1, device=a.device).clamp_min(0).expand(s, n, -1)
        mask = torch.zeros(s, n, k, device=a.device)
        mask[:, :, k - real :] = 1
        out = a.model(self.states, self.actions, self.rtg / a.config.rtg_scale, steps, mask, last_only=True)
        action = sample_or_argmax(out, a.config.sample_actions, self.generators) if a.discrete else out
        self.actions[:, :, -1] = action
        return action.cpu().numpy()

    def observe(self, rewards: np.ndarray) -> None:
        self.next_rtg = self.rtg[:, :, -1] - self.algo.to_tensor(rewards)
        self.t += 1


@ALGORITHMS.register("dt")
class DT(Algorithm):
    """Decision Transformer trained on length-K windows with AdamW, warmup and gradient clipping."""

    Config = DTConfig
    config: DTConfig
    return_conditioned: ClassVar[bool] = True
    seed_batched = True
    # (S, 64, 60, 128..512) activations; 5 seeds together measured 0.96x on CPU
    cpu_seeds_together = 1

    def __init__(self, config: DTConfig, data: Dataset, spec: DatasetSpec, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, data, spec, device, seeds)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.norm = ObsNormalizer.for_data(data, config.normalize_obs, 1e-6).to(device)  # kzl and CORL: std + 1e-6
        # the timestep embedding covers the longest episode (Atari: in the data, as the paper; later steps clamp)
        max_t = int(data.episode_lengths.max()) if spec.domain == "atari" else \
            max(spec.max_episode_steps, int(data.episode_lengths.max()))
        self.model = DecisionTransformer(self.obs_shape, self.action_dim, self.discrete, max_t, config).to(device)
        self.optim = adamw(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                       betas=tuple(config.betas))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim, self.lr_factor)

    def lr_factor(self, step: int) -> float:
        """Linear warmup, then constant or a cosine decay to 10% at the end of the budget."""
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        if c.lr_schedule == "cosine":
            progress = min(1.0, (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> WindowSampler:
        return WindowSampler(data, self.config.context, self.config.batch_size, rng)

    def loss(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """Each seed's (S,) mean action loss over the real (unpadded) steps of its windows."""
        mask = self.to_tensor(batch["mask"])
        s = mask.shape[0]
        states = self.norm(self.to_tensor(batch["observations"]))
        actions = self.to_tensor(batch["actions"], torch.long if self.discrete else None)
        out = self.model(states, actions, self.to_tensor(batch["returns_to_go"]) / self.config.rtg_scale,
                         self.to_tensor(batch["timesteps"], torch.long), mask, noise=self.noise)
        if self.discrete:
            per_step = F.cross_entropy(out.flatten(0, 2), actions.flatten(), reduction="none").view(mask.shape)
        else:
            per_step = ((out - actions) ** 2).mean(-1)
        return (per_step * mask).reshape(s, -1).sum(1) / mask.reshape(s, -1).sum(1)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        loss = self.loss(batch)
        self.optim.zero_grad(set_to_none=True)
        loss.sum().backward()
        clip_grad_norm_per_seed(self.model.parameters(), self.config.grad_clip)
        self.optim.step()
        self.sched.step()
        return {"loss": loss.detach()}

    def policy(self, target_return: float | None, generator: list[torch.Generator]) -> DTPolicy:
        if target_return is None or math.isnan(target_return):
            target_return = self.spec.target_returns[0]
        return DTPolicy(self, target_return, generator)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optim": self.optim.state_dict(), "sched": self.sched.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.sched.load_state_dict(state["sched"])
