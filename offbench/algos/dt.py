"""Decision Transformer (Chen et al. 2021): a causal GPT over (return-to-go, state, action) tokens.

Each timestep contributes three tokens, embedded separately; positions come either from one
learned embedding of the timestep added to each of the step's tokens (the gym code) or from one
learned embedding of the window's first timestep plus a learned embedding per token position
(the Atari code). The token sequence is optionally layer-normalized and passed through causal
self-attention blocks. The action at step t is predicted from the hidden state of the state
token s_t, which sees R_1, s_1, a_1, ..., R_t, s_t but not a_t. Discrete actions are trained with
cross-entropy, continuous ones with mean squared error on a tanh head. At evaluation the policy
is conditioned on a target return and subtracts the observed rewards from it.

Recipes (``--set dt.recipe=NAME``), applied over the domain's defaults:

- ``paper``: the DT paper's code, kzl/decision-transformer @ e2d82e6. On D4RL its ``gym/``
  recipe (``experiment.py`` argparse l.284-304: K 20, embed 128, 3 layers, 1 head, ReLU, dropout
  0.1, AdamW lr 1e-4 wd 1e-4 on every parameter, linear warmup 10k then constant, clip 0.25
  (``seq_trainer.py``), batch 64, 10 x 10k steps) with its init: GPT2's ``_init_weights``
  (``trajectory_gpt2.py`` l.356-366) runs inside ``GPT2Model.__init__`` (l.526), so only the
  blocks' linear layers get N(0, 0.02) weights and zero biases (layer norms 1/0), while DT's own
  embeddings, ``embed_ln`` and prediction head, made after it in ``decision_transformer.py``,
  keep PyTorch's default init (``init="gpt2-blocks"``). On Atari its ``atari/`` recipe (the
  ``atari`` domain's defaults, below). Default recipe of the ``keytodoor`` and ``atari`` domains.
- ``corl``: CORL's DT (corl-team/CORL @ eeeeef2, ``algorithms/offline/dt.py`` and
  ``configs/offline/dt/*/*_v2.yaml``): as ``paper`` but batch 4096, lr 8e-4 (YAML), GELU
  (l.247), N(0, 0.02) init on every Linear and Embedding with zero biases (``_init_weights``
  l.329-336, applied to the whole model), evaluation every 5k steps with 100 episodes per target.
  Default recipe of the ``mujoco`` domain: CORL's table is what ``offbench report --compare
  published`` shows for D4RL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offbench.algos.base import ALGORITHMS, AlgoConfig, Algorithm
from offbench.algos.config import D4RL_ADROIT, D4RL_ANTMAZE, each
from offbench.algos.nets import NatureCNN, ObsNormalizer, is_image, push_window, warmup_then
from offbench.algos.seeded import (
    SeedConv2d,
    SeedEmbedding,
    SeedLayerNorm,
    SeedLinear,
    SeedNoise,
    adamw,
    clip_grad_norm_per_seed,
    init_linear_,
    n_init_seeds,
    reinit_,
    sample_or_argmax,
    seed_rows,
)
from offbench.data.dataset import Dataset, WindowSampler
from offbench.data.info import DataInfo
from offbench.errors import UsageError


#: minGPT's Atari learning-rate schedule counts tokens (``trainer_atari.py`` l.116-127):
#: ``warmup_tokens=512*20`` and ``final_tokens=2*len(train_dataset)*context*3``
#: (``run_dt_atari.py`` l.85-86), with ``len(train_dataset) = len(data) - 3 * context`` (l.50).
MINGPT_WARMUP_TOKENS = 512 * 20



@dataclass
class DTConfig(AlgoConfig):
    """The paper's gym recipe by default (see the module docstring for the recipes).

    Atari (the ``atari`` domain; kzl ``atari/run.sh``, ``run_dt_atari.py``, ``mingpt/model_atari.py``,
    ``mingpt/trainer_atari.py``): K 30 (Pong 50), 6 layers, 8 heads, embed 128, GELU, dropout 0.1;
    return-to-go embedding Linear -> Tanh on the unscaled return, action embedding Embedding -> Tanh,
    the Nature-DQN frame encoder ending in a Tanh, no LayerNorm on the embeddings; positions: one
    learned embedding of the window's first timestep (zero-init) plus a learned embedding per token
    position (zero-init); minGPT's init (blocks, final LayerNorm and a bias-free head N(0, 0.02),
    action embedding N(0, 0.02), the return and frame encoders PyTorch's default); AdamW lr 6e-4
    betas (0.9, 0.95), weight decay 0.1 on Linear/Conv weights only; minGPT's token-counted schedule
    (warmup 10,240 tokens, cosine to a 10% floor at 2 x 3 x len(data) x K tokens); clip 1.0;
    windows that would run past an episode's end moved back to end there; sampled actions; 10
    episodes per evaluation. 5 epochs over the 500k-transition sets, as kzl counts them
    (``len(dataset) = N - 3K``, ``DataLoader`` keeps the last partial batch): 5 x ceil(499,910 / 128)
    = 19,530 steps (Pong: 5 x ceil(499,850 / 512) = 4,885), evaluated once per epoch as there. At
    evaluation the global position is the current step (``trainer_atari.py`` l.217), not the
    window's first one as in training: the original's mismatch, kept.

    Key-to-Door (recipe ``offbench``: the paper publishes no hyperparameters for it): the whole
    episode (40 steps) is the context, as the paper says; the paper's general recipe where it
    works (1 head, ReLU, AdamW wd 1e-4, clip 0.25, PyTorch's default init) and four departures,
    measured on keytodoor-10k/1k with 3-5 seeds (``benchmarks/keytodoor_table6.md`` has the
    defaults' table): embed 32 and 2 layers instead of 128 and 3 (on one core of the 2-core CPU
    30 gradient steps/s at batch 64 instead of 2.5 with the whole-episode context); lr 1e-2 with a
    100-step warmup and a cosine decay to 10% over 3,000 steps instead of a constant 1e-4 (lr 1e-3
    with dropout reached 54% on 10K after 4,000 steps); batch 128 instead of 64 (at batch 64 one
    10K seed of five ended at 59%, the others 87-95%: 95, 87, 94, 59, 95; at 128 95, 95, 100, 99
    and 100%, and on 1K 66, 51, 71, 59 and 73% against 83, 53, 57, 73 and 43% at 64; a learning
    rate of 3e-3 at 64 gave 97, 57 and 92%, 5,000 steps 90, 78 and a collapse to 0%, batches of
    256 84% on the first seed); dropout 0.1 on keytodoor-1k only (on its 28 successful episodes
    it lifts the final success from 31, 32, 28, 30 and 45% to 83, 53, 57, 73 and 43% at batch 64;
    on 10K it left 59-60% after 3,000 steps and 63/100% after 6,000). Returns-to-go unscaled (0
    or 1), greedy actions, as the paper's BC scoring below the random policy implies
    deterministic evaluation.
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
    activation: Literal["relu", "gelu"] = "relu"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10_000
    # after warmup: constant (gym recipe) | cosine (decay to 10% over the budget) | mingpt (kzl's Atari
    # trainer: warmup and cosine counted in tokens, floor 10%; ``warmup_steps`` unused)
    lr_schedule: Literal["constant", "cosine", "mingpt"] = "constant"
    grad_clip: float = 0.25
    rtg_scale: float = 1000.0
    normalize_obs: bool = True
    sample_actions: bool = True  # discrete actions: sample from the softmax (else argmax)
    betas: tuple[float, float] = (0.9, 0.999)
    recipe: str = "paper"  # paper (kzl) | corl (CORL's DT); `--set dt.recipe=corl`
    # default: PyTorch's | gpt2-blocks: N(0, 0.02) weights and zero biases in the blocks only (kzl gym)
    # | normal-all: every Linear and Embedding (CORL; its fused q/k/v in-projection is
    # nn.MultiheadAttention's raw parameter, which CORL's apply does not reach: xavier-uniform, zero
    # bias, as there) | mingpt: blocks, head and action embedding (kzl Atari)
    init: Literal["default", "gpt2-blocks", "normal-all", "mingpt"] = "default"
    embed_tanh: bool = False  # tanh on the return and action embeddings (Atari)
    embed_ln: bool = True  # LayerNorm over the token embeddings (gym; not in the Atari model)
    positions: Literal["timestep", "global+token"] = "timestep"  # timestep (gym: per step, on each token) | global+token (Atari)
    head_bias: bool = True  # the action head's bias (minGPT's head has none)
    decay_weights_only: bool = False  # weight decay on Linear/Conv weights only (minGPT), else on all
    windows: Literal["padded", "end-aligned"] = "padded"  # padded (left-padded at an episode's end) | end-aligned (moved back, Atari)
    # False: kzl's minGPT model_type 'naive', (s, a) tokens only, no returns-to-go (the paper's Atari BC: ``gptbc``)
    returns: bool = True

    def validate(self) -> None:
        super().validate()
        if self.embed_dim % self.n_heads:
            raise UsageError(f"embed_dim ({self.embed_dim}) must be divisible by n_heads ({self.n_heads})")

    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "paper": {"*": {}},  # the class defaults and the domain's
        "offbench": {"*": {}},  # offbench's own settings where the paper gives none (Key-to-Door)
        "corl": {"*": dict(batch_size=4096, lr=8e-4, activation="gelu", init="normal-all", eval_every=5_000,
                           eval_episodes=100),
                 # CORL configs/offline/dt/antmaze/*.yaml and {pen,door,hammer,relocate}/*.yaml; their
                 # target_returns are the datasets' (datasets.toml)
                 **each(D4RL_ANTMAZE, dict(batch_size=64, lr=1e-4, eval_every=10_000, rtg_scale=1.0)),
                 **each(D4RL_ADROIT, dict(rtg_scale=1.0))},
    }

    #: Pong: context 50 and batch 512 (``run.sh``), 5 epochs (see above).
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "pong-1pct": {"context": 50, "batch_size": 512, "steps": 4_885, "eval_every": 977},
        "keytodoor-1k": {"dropout": 0.1},  # see above: the 1K set's few successes overfit without it
    }

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        # D4RL: CORL's recipe by default; the paper's keeps its GPT2 init
        "mujoco": dict(recipe="corl", init="gpt2-blocks"),
        "robotics": dict(recipe="corl", init="gpt2-blocks"),  # D4RL AntMaze, Adroit, Kitchen
        "atari": dict(steps=19_530, batch_size=128, eval_every=3_906, eval_episodes=10, context=30, embed_dim=128,
                      n_layers=6, n_heads=8, dropout=0.1, activation="gelu", lr=6e-4, weight_decay=0.1,
                      betas=(0.9, 0.95), lr_schedule="mingpt", grad_clip=1.0, rtg_scale=1.0, normalize_obs=False,
                      init="mingpt", embed_tanh=True, embed_ln=False, positions="global+token", head_bias=False,
                      decay_weights_only=True, windows="end-aligned"),
        "keytodoor": dict(steps=3_000, batch_size=128, eval_every=1_000, eval_episodes=100, context=40,
                          embed_dim=32, n_layers=2, dropout=0.0, lr=1e-2, warmup_steps=100,
                          lr_schedule="cosine", rtg_scale=1.0, normalize_obs=False, sample_actions=False,
                          recipe="offbench"),
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


def _normal_002(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return nn.init.normal_(t, 0.0, 0.02, generator=generator)


def _xavier(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return nn.init.xavier_uniform_(t, generator=generator)


class DecisionTransformer(nn.Module):
    """GPT over interleaved (R, s, a) tokens; returns action predictions at every state token.
    One model per seed on the leading axis (see :mod:`offbench.algos.nets`)."""

    def __init__(self, obs_shape: tuple[int, ...], action_dim: int, discrete: bool, max_timestep: int,
                 cfg: DTConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.discrete, self.dropout = discrete, cfg.dropout
        self.positions, self.embed_tanh = cfg.positions, cfg.embed_tanh
        self.per_step = 3 if cfg.returns else 2  # tokens per timestep: (R, s, a) or minGPT's naive (s, a)
        if cfg.positions == "timestep":
            self.embed_timestep = SeedEmbedding(max_timestep + 1, d)
        self.embed_return = SeedLinear(1, d)
        # frame stacks: the Nature-DQN encoder with a tanh, as the paper's Atari model; vectors: linear
        self.embed_state = NatureCNN(obs_shape, d, nn.Tanh) if is_image(obs_shape) else SeedLinear(int(np.prod(obs_shape)), d)
        self.embed_action = SeedEmbedding(action_dim, d) if discrete else SeedLinear(action_dim, d)
        self.embed_ln = SeedLayerNorm(d) if cfg.embed_ln else None
        self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.dropout, cfg.activation) for _ in range(cfg.n_layers))
        self.ln_f = SeedLayerNorm(d)
        self.predict_action = SeedLinear(d, action_dim)
        if not cfg.head_bias:  # minGPT's head: nn.Linear(..., bias=False); a zero buffer keeps SeedLinear's kernel
            del self.predict_action.bias
            self.predict_action.register_buffer("bias", torch.zeros(n_init_seeds(), 1, action_dim))
        if cfg.positions == "global+token":  # minGPT: nn.Parameter(torch.zeros(...)), never re-initialized
            s = n_init_seeds()
            self.pos_emb = nn.Parameter(torch.zeros(s, 3 * cfg.context + 1, d))
            self.global_pos_emb = nn.Parameter(torch.zeros(s, max_timestep + 1, d))
        self.max_timestep = max_timestep
        self._init(cfg.init)

    def _init(self, init: str) -> None:
        """Re-draw the weights ``init`` names, per seed (inside :func:`~offbench.algos.nets.seeded_init`
        each seed from its own generator); layer norms are 1/0 from construction in every case."""
        block_linears = [m for b in self.blocks for m in (b.qkv, b.proj, b.fc, b.out)]
        if init == "gpt2-blocks":  # kzl gym: GPT2Model.init_weights reaches only the transformer
            for layer in block_linears:
                init_linear_(layer, _normal_002)
        elif init == "mingpt":  # kzl Atari: self.apply(_init_weights) before the encoders exist
            for layer in [*block_linears, self.predict_action]:
                init_linear_(layer, _normal_002)
            if self.discrete:  # nn.init.normal_(self.action_embeddings[0].weight, std=0.02) (l.157)
                reinit_(self.embed_action.weight, _normal_002)
        elif init == "normal-all":  # CORL: self.apply(_init_weights) over the whole model
            qkv = {id(b.qkv) for b in self.blocks}
            for m in self.modules():
                if isinstance(m, SeedLinear):
                    init_linear_(m, _xavier if id(m) in qkv else _normal_002)
                elif isinstance(m, SeedEmbedding):
                    reinit_(m.weight, _normal_002)

    def _position_embeddings(self, timesteps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """minGPT's positions (``model_atari.py`` l.256-258) for left-padded windows (S, B, K):
        the global embedding of the first real step's timestep, broadcast over the window, plus the
        per-token embedding counted from the first real token (a padded window is positioned as
        minGPT positions the shorter, unpadded one) -> (S, B, mK, D), m tokens per step."""
        k, m = mask.shape[-1], self.per_step
        pad = k - mask.sum(-1).round().long()  # (S, B) left-padded steps
        token = (torch.arange(m * k, device=mask.device) - m * pad.unsqueeze(-1)).clamp_min(0)
        first = timesteps.gather(-1, pad.clamp(max=k - 1).unsqueeze(-1)).squeeze(-1).clamp(0, self.max_timestep)
        return seed_rows(self.pos_emb, token) + seed_rows(self.global_pos_emb, first).unsqueeze(2)

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
        m = self.per_step
        state, action = self.embed_state(states), self.embed_action(actions)
        ret = self.embed_return(returns_to_go.unsqueeze(-1)) if m == 3 else None
        if self.embed_tanh:
            action = torch.tanh(action)
            ret = torch.tanh(ret) if ret is not None else None
        if self.positions == "timestep":
            time = self.embed_timestep(timesteps.clamp(0, self.max_timestep))
            state, action = state + time, action + time
            ret = ret + time if ret is not None else None
        steps = [ret, state, action] if ret is not None else [state, action]
        x = torch.stack(steps, dim=3).reshape(s, b, m * k, -1)  # R_1, s_1, a_1, R_2, ... (naive: s_1, a_1, s_2, ...)
        if self.positions == "global+token":
            x = x + self._position_embeddings(timesteps, mask)
        if self.embed_ln is not None:
            x = self.embed_ln(x)
        if noise is not None:
            x = noise.dropout(x, self.dropout)
        valid = mask.bool().reshape(s * b, k).repeat_interleave(m, dim=1)  # (S * B, mK)
        n = m * k
        if last_only:
            x, valid, n = x[:, :, :-1], valid[:, :-1], n - 1  # ends with the last state token
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        attn_mask = (causal & (valid[:, None, :] | eye))[:, None]  # pads never attended (but self)
        for block in self.blocks[:-1]:
            x = block(x, attn_mask, noise)
        # the last state token, or every one (s_t at m t + m - 2: 3t + 1, naive 2t)
        rows = slice(n - 1, n) if last_only else slice(m - 2, None, m)
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

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        a, t, k = self.algo, self.t, self.algo.config.context
        s, n = observations.shape[:2]
        self.states = push_window(self.states, a.norm(a.to_tensor(observations)))
        self.rtg = push_window(self.rtg, self.next_rtg)
        self.actions = push_window(self.actions, torch.zeros_like(self.actions[:, :, 0]))
        real = min(t + 1, k)  # steps of this episode in the window (the rest is left padding)
        if a.config.positions == "global+token":  # kzl's trainer_atari passes the current step (l.217)
            steps = torch.full((s, n, k), t, dtype=torch.long, device=a.device)
        else:
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


class EndAlignedWindowSampler(WindowSampler):
    """kzl's Atari windows (``run_dt_atari.py`` l.53-59): a window that would run past its
    episode's end is moved back to end there, so it is full whenever the episode holds K steps
    (kzl's may then reach into the previous episode; these are left-padded instead). Starts are
    uniform over the steps, as kzl's shuffled indices (up to its last ``3K`` rows, never drawn)."""

    def start_offsets(self, length: np.ndarray) -> np.ndarray:
        start = (self.rng.random(len(length)) * length).astype(np.int64)
        return np.maximum(np.minimum(start, length - self.context), 0)


def param_groups(model: nn.Module, weight_decay: float, weights_only: bool) -> list[dict[str, Any]]:
    """AdamW's parameter groups: every parameter decayed (kzl gym, CORL), or (``weights_only``,
    minGPT's ``configure_optimizers``, ``model_atari.py`` l.171-217) only Linear and Conv2d
    weights, with biases, layer norms, embeddings and position embeddings undecayed."""
    if not weights_only:
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    decay = [m.weight for m in model.modules() if isinstance(m, (SeedLinear, SeedConv2d))]
    ids = {id(p) for p in decay}
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": [p for p in model.parameters() if id(p) not in ids], "weight_decay": 0.0}]


@ALGORITHMS.register("dt")
class DT(Algorithm):
    """Decision Transformer trained on length-K windows with AdamW, warmup and gradient clipping."""

    Config = DTConfig
    config: DTConfig
    return_conditioned: ClassVar[bool] = True
    seed_batched = True
    # (S, 64, 60, 128..512) activations; 5 seeds together measured 0.96x on CPU
    cpu_seeds_together = 1

    def __init__(self, config: DTConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.norm = ObsNormalizer.for_data(info, config.normalize_obs, 1e-6).to(device)  # kzl and CORL: std + 1e-6
        # the timestep embedding covers the longest episode (Atari: in the data, as the paper; later steps clamp)
        max_t = info.longest_episode if info.domain == "atari" else max(info.max_episode_steps, info.longest_episode)
        self.model = DecisionTransformer(self.obs_shape, self.action_dim, self.discrete, max_t, config).to(device)
        self.optim = adamw(param_groups(self.model, config.weight_decay, config.decay_weights_only), lr=config.lr,
                           weight_decay=config.weight_decay, betas=tuple(config.betas))
        # minGPT: final_tokens = 2 * len(train_dataset) * K * 3, len(train_dataset) = len(data) - 3K
        self.final_tokens = 2 * max(1, info.transitions - 3 * config.context) * config.context * 3
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim, self.lr_factor)

    def lr_factor(self, step: int) -> float:
        """The learning-rate multiplier of update ``step`` (0-based): linear warmup, then constant or
        a cosine decay to 10% at the end of the budget; or minGPT's token-counted schedule
        (``trainer_atari.py`` l.116-127), which sets the rate after each update from the tokens seen
        (batch x K per update), so its first update runs at the full rate."""
        c = self.config
        if c.lr_schedule == "mingpt":
            if step == 0:
                return 1.0
            tokens = step * c.batch_size * c.context
            if tokens < MINGPT_WARMUP_TOKENS:
                return tokens / MINGPT_WARMUP_TOKENS
            # progress capped at 1 (minGPT's is not: its cosine would rise again past final_tokens, which
            # kzl's 5 epochs never reach: 5 / 6 of them)
            progress = min(1.0, (tokens - MINGPT_WARMUP_TOKENS) / max(1, self.final_tokens - MINGPT_WARMUP_TOKENS))
            return max(0.1, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return warmup_then(step, c.warmup_steps, c.steps, c.lr_schedule)

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> WindowSampler:
        cls = EndAlignedWindowSampler if self.config.windows == "end-aligned" else WindowSampler
        return cls(data, self.config.context, self.config.batch_size, rng)

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
            target_return = self.info.target_returns[0]
        return DTPolicy(self, target_return, generator)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optim": self.optim.state_dict(), "sched": self.sched.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.sched.load_state_dict(state["sched"])
