"""Behaviour cloning (``bc``) and filtered behaviour cloning (``pbc``, "%BC").

BC fits a policy to all dataset actions: cross-entropy for discrete actions, mean squared error
on a tanh output for continuous ones. %BC does the same on a filtered dataset: the best episodes
by return (see :func:`offbench.data.variants.top_fraction`), or only the successful episodes (the
DT paper's choice on Key-to-Door).

Recipes (``--set bc.recipe=NAME``, ``--set pbc.recipe=NAME``), applied over the domain's defaults:

- ``corl`` (default everywhere): CORL's BC (corl-team/CORL @ eeeeef2,
  ``algorithms/offline/any_percent_bc.py`` and ``configs/offline/bc{,_10}/*/*_v2.yaml``): a Markov
  policy ``Linear(s,256)-ReLU-Linear(256,256)-ReLU-Linear(256,A)-Tanh``, Adam lr 3e-4 (hard-coded,
  l.357), batch 256, 1M steps, states standardized with std + 1e-3, evaluation every 5k steps with
  10 episodes. CORL's "10% BC" (``pbc``) keeps the best ``max(1, int(0.1 * N))`` trajectories by
  undiscounted return (``keep_best_trajectories`` l.206-229 with the YAMLs' ``discount: 1.0``)
  and standardizes states with the kept trajectories' statistics (selection, l.322, runs before
  ``compute_mean_std``). On Key-to-Door and Atari the same network with offbench's own settings
  (below): the behaviour offbench had before recipes.
- ``paper``: the DT paper's BC (kzl/decision-transformer @ e2d82e6,
  ``gym/decision_transformer/models/mlp_bc.py``, ``training/act_trainer.py`` and ``experiment.py``'s
  shared defaults): an MLP over the last K = 20 states concatenated,
  ``Linear(20 s, 128) [ReLU Dropout(0.1) Linear(128, 128)] x 2 ReLU Dropout(0.1) Linear(128, A) Tanh``,
  mean squared error on the window's last action only, AdamW lr 1e-4 weight decay 1e-4 on every
  parameter, linear warmup over 10k steps then constant, no gradient clipping, batch 64, 100k
  steps, states standardized with std + 1e-6, 100 evaluation episodes after every 10k steps.
  Windows come from DT's sampler (``get_batch`` l.118-164): a trajectory in proportion to its
  length, a start uniform within it, up to K steps from there, left-padded at the episode's end
  (so the first K - 1 steps of an episode are never a target, and its last step often is: as
  there). Padding as kzl pads: training windows with raw zero states *before* standardization
  (``(0 - mean) / std``), evaluation windows with zeros *after* it (``evaluate_episode`` passes
  standardized states, ``get_action`` pads them with zeros): the original's mismatch, kept. The
  paper's %BC (``pbc``) keeps whole trajectories in return order while they fit in X% of the
  timesteps (``experiment.py`` l.101-113), with statistics over the whole dataset (l.85-87).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offbench.algos.base import ALGORITHMS, AlgoConfig, MarkovPolicy, Policy, TransitionAlgorithm
from offbench.algos.config import D4RL_ANTMAZE, each
from offbench.algos.nets import is_image, push_window, state_network, warmup_then
from offbench.algos.seeded import SeedLinear, SeedNoise, adam, adamw, per_seed, sample_or_argmax
from offbench.data.dataset import Dataset, WindowSampler
from offbench.data.info import DataInfo
from offbench.data.spec import DatasetSpec
from offbench.data.variants import successful, top_fraction
from offbench.errors import UsageError

#: The DT paper's BC (kzl ``experiment.py`` argparse defaults shared by ``--model_type bc``).
PAPER_BC: dict[str, Any] = dict(context=20, hidden=(128, 128, 128), dropout=0.1, lr=1e-4, weight_decay=1e-4,
                                warmup_steps=10_000, batch_size=64, steps=100_000, eval_every=10_000,
                                eval_episodes=100, obs_std_eps=1e-6)


@dataclass
class BCConfig(AlgoConfig):
    """CORL's BC defaults for D4RL locomotion.

    Key-to-Door (recipe ``offbench``; the paper gives no settings for it): the DT paper's BC model
    and optimizer scale on one state (3 x 128, ReLU, dropout 0.1, lr 1e-4, batch 64; no warmup, no
    weight decay), 3,000 steps, greedy actions; on keytodoor-1k the learning rate decays (cosine, to
    10%) over the budget. Measured on the successful episodes (``pbc``, 5 seeds): on 1K, with a
    constant rate the final policy swings between evaluations (68, 52, 72, 36 and 62%; 86 -> 72
    and 71 -> 36% from one evaluation to the next), with the decay it settles (72, 68, 71, 69 and
    39%); on 10K the constant rate ends at 96% and the decay, slowing the last third, at 90, 86,
    87, 85 and 77%. The Markov 256 x 256 network at lr 1e-3 (offbench's earlier setting) reached
    27-56% on 1K, and longer training makes its 26 successful episodes overfit (31-36% after
    4,000-10,000 steps).

    Atari (offbench's own variant): a Markov Nature-DQN CNN, not the DT paper's naive GPT with K
    30 (Table 1, kzl ``atari/run.sh`` ``--model_type 'naive'``), with the DT paper's optimizer
    scale and about as many samples as DT's 5 epochs.
    """

    steps: int = 1_000_000
    batch_size: int = 256
    eval_every: int = 5_000
    eval_episodes: int = 10
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    normalize_obs: bool = True
    sample_actions: bool = True  # discrete actions: sample from the softmax (else argmax)
    recipe: str = "corl"  # corl (Markov MLP) | paper (the DT paper's windowed MLP); `--set bc.recipe=paper`
    # states the policy sees: 1 = the current one; K > 1: the last K, concatenated (kzl MLPBCModel).
    # K > 1 or dropout > 0 selects the windowed MLP (ReLU, dropout after every hidden layer)
    context: int = 1
    dropout: float = 0.0
    weight_decay: float = 0.0  # > 0: AdamW (DT paper) on every parameter; 0: Adam (CORL)
    warmup_steps: int = 0  # linear warmup min((step + 1) / warmup, 1), then constant (DT paper: 10k)
    lr_schedule: Literal["constant", "cosine"] = "constant"  # after warmup; cosine: to 10% over the budget
    obs_std_eps: float = 1e-3  # states standardized as (s - mean) / (std + eps): CORL 1e-3, kzl 1e-6

    #: ``offbench``: the Markov network with offbench's own settings where no publication gives
    #: any (Key-to-Door, Atari: the DT paper's Table 1 BC is a GPT without returns, not built).
    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {"corl": {"*": {}}, "paper": {"*": PAPER_BC},
                                                               "offbench": {"*": {}}}

    #: keytodoor-1k: see above. CORL configs/offline/{bc,bc_10}/antmaze/*.yaml: n_episodes 100 (its
    #: Adroit configs are its hopper-medium values, the class defaults).
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {"keytodoor-1k": {"lr_schedule": "cosine"},
                                                              **each(D4RL_ANTMAZE, {"eval_episodes": 100})}

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "keytodoor": dict(steps=3_000, batch_size=64, eval_every=1_000, eval_episodes=100, hidden=(128, 128, 128),
                          dropout=0.1, lr=1e-4, normalize_obs=False, sample_actions=False, recipe="offbench"),
        # Atari: Nature-DQN encoder, the DT paper's optimizer scale and about as many samples as DT's 5 epochs
        "atari": dict(steps=20_000, batch_size=128, eval_every=5_000, eval_episodes=10, lr=6e-4, normalize_obs=False,
                      recipe="offbench"),
    }

    @property
    def windowed(self) -> bool:
        """Whether the policy is the DT paper's MLP over a window of states (else a Markov network)."""
        return self.context > 1 or self.dropout > 0


@dataclass
class PBCConfig(BCConfig):
    """%BC: CORL's 10% BC by default; Key-to-Door: the successful episodes (DT paper)."""

    fraction: float = 0.1
    by: Literal["trajectories", "timesteps", "success"] = "trajectories"  # trajectories (CORL) | timesteps (DT paper) | success (DT paper, Key-to-Door)
    normalize_on: Literal["selected", "all"] = "selected"  # state statistics of the kept episodes (CORL) | all (the whole dataset, kzl)

    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "corl": {"*": {}},
        "paper": {"*": {**PAPER_BC, "by": "timesteps", "normalize_on": "all"}},
        "offbench": {"*": {}},
    }

    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "keytodoor": {**BCConfig.DOMAIN_DEFAULTS["keytodoor"], "by": "success"},
        "atari": {**BCConfig.DOMAIN_DEFAULTS["atari"], "by": "timesteps"},  # as before recipes
    }

    def validate(self) -> None:
        super().validate()
        if not 0 < self.fraction <= 1:
            raise UsageError(f"fraction must be in (0, 1], got {self.fraction}")


class WindowMLP(nn.Module):
    """kzl's ``MLPBCModel`` per seed: ``Linear(K s, h1)``, then for every further width
    ``ReLU Dropout Linear``, then ``ReLU Dropout Linear(h, out)`` (the tanh is BC's); dropout with
    each seed's own masks (training only)."""

    def __init__(self, inp: int, hidden: Sequence[int], out: int, dropout: float) -> None:
        super().__init__()
        widths = [inp, *hidden]
        self.layers = nn.ModuleList(SeedLinear(a, b) for a, b in zip(widths, widths[1:]))
        self.head = SeedLinear(widths[-1], out)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, noise: SeedNoise | None = None) -> torch.Tensor:
        """x (S, B, K * obs) -> (S, B, out); ``noise``: dropout (training), None: none (evaluation)."""
        for layer in self.layers:
            x = F.relu(layer(x))
            if noise is not None:
                x = noise.dropout(x, self.dropout)
        return self.head(x)


class WindowPolicy:
    """Evaluation of the windowed MLP: the last K standardized states of each episode, zeros
    before its start (kzl ``MLPBCModel.get_action``), all seeds at once ((S, N, K, obs))."""

    def __init__(self, algo: BC, generators: list[torch.Generator]) -> None:
        self.algo, self.generators = algo, generators

    def reset(self, n: int) -> None:
        a = self.algo
        self.states = torch.zeros(len(a.seeds), n, a.config.context, a.obs_dim, device=a.device)

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        a = self.algo
        obs = a.norm(a.to_tensor(observations))
        self.states = push_window(self.states, obs)
        return a.act(self.states.flatten(2), self.generators).cpu().numpy()

    def observe(self, rewards: np.ndarray) -> None:
        pass


@ALGORITHMS.register("bc")
class BC(TransitionAlgorithm):
    """Behaviour cloning: a Markov MLP, or the DT paper's MLP over the last K states (``recipe=paper``).

    On Atari frames: offbench's own variant, a Markov Nature-DQN CNN, not the DT paper's naive GPT
    with K 30 (Table 1)."""

    Config = BCConfig
    config: BCConfig
    STATE = ("actor", "optim")
    seed_batched = True

    def __init__(self, config: BCConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        c = config
        self.windowed = c.windowed
        if self.windowed:
            if is_image(self.obs_shape):
                raise UsageError(f"{type(self).__name__}: the windowed MLP (context > 1 or dropout > 0) is for vector "
                                 f"observations; {info.name} has frames")
            self.actor: nn.Module = WindowMLP(c.context * self.obs_dim, c.hidden, self.action_dim, c.dropout).to(device)
        else:
            self.actor = state_network(self.obs_shape, c.hidden, self.action_dim).to(device)
        if c.weight_decay > 0:
            self.optim = adamw(self.actor.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        else:
            self.optim = adam(self.actor.parameters(), lr=c.lr)
        scheduled = c.warmup_steps or c.lr_schedule != "constant"
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim, self.lr_factor) if scheduled else None

    def lr_factor(self, step: int) -> float:
        """kzl: ``LambdaLR(optimizer, lambda steps: min((steps+1)/warmup_steps, 1))``; then constant
        or (``lr_schedule=cosine``) decayed to 10% over the budget."""
        return warmup_then(step, self.config.warmup_steps, self.config.steps, self.config.lr_schedule)

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> Any:
        if not self.windowed:
            return super().make_sampler(data, rng)
        sampler = WindowSampler(self.train_data(data), self.config.context, self.config.batch_size, rng)
        sampler.whole_episodes = False  # kzl's get_batch: a uniform start whatever the episode lengths
        return sampler

    def bc_losses(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per sample (S, B): cross-entropy (discrete) or mean squared error of tanh outputs
        (continuous); the windowed MLP predicts the window's last action (kzl ``act_trainer.py``)."""
        if self.windowed:
            out, actions = self.actor(b["obs"].flatten(2), self.noise), b["actions"][:, :, -1]
        else:
            out, actions = self.actor(b["obs"]), b["actions"]
        if self.discrete:
            return F.cross_entropy(out.flatten(0, 1), actions.flatten(), reduction="none").view(out.shape[:2])
        return (torch.tanh(out) - actions).pow(2).mean(-1)

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each seed's training loss (S,) and any extra metrics: the mean imitation loss, each
        transition weighted by the batch's ``weights`` where it has them (the weighted family)."""
        losses = self.bc_losses(b)
        return per_seed(b["weights"] * losses if "weights" in b else losses), {}

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return self.policy_step(self.tensors(batch))

    def policy_step(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimizer step on :meth:`loss`; returns the loss per seed and any extra metrics."""
        loss, extra = self.loss(b)
        self.optim.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.optim.step()
        if self.sched is not None:
            self.sched.step()
        return {"loss": loss.detach(), **extra}

    def act(self, obs: torch.Tensor, generator: list[torch.Generator]) -> torch.Tensor:
        """Actions for standardized observations (S, N, ...), or flattened windows (S, N, K * obs)."""
        out = self.actor(obs)
        if self.discrete:
            return sample_or_argmax(out, self.config.sample_actions, generator)
        return torch.tanh(out)

    def policy(self, target_return: float | None, generator: Any) -> Policy:
        return WindowPolicy(self, generator) if self.windowed else MarkovPolicy(self, generator)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        return state if self.sched is None else {**state, "sched": self.sched.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.sched is not None:
            self.sched.load_state_dict(state["sched"])


@ALGORITHMS.register("pbc")
class PercentBC(BC):
    """%BC: behaviour cloning on the best part of the dataset."""

    Config = PBCConfig
    config: PBCConfig

    def __init__(self, config: PBCConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        self._kept: tuple[Dataset, Dataset] | None = None

    @classmethod
    def describe(cls, config: AlgoConfig, data: Dataset, spec: DatasetSpec) -> DataInfo:
        """The dataset's description, with the selected episodes' observation statistics when
        ``normalize_on`` is ``selected``."""
        info = super().describe(config, data, spec)
        pbc = cast(PBCConfig, config)
        if pbc.normalize_on == "selected" and pbc.normalize_obs:
            info = info.with_obs_stats(select(data, pbc))
        return info

    def train_data(self, data: Dataset) -> Dataset:
        if self._kept is None or self._kept[0] is not data:  # one selection for every seed's sampler
            self._kept = (data, select(data, self.config))
        return self._kept[1]


def select(data: Dataset, config: PBCConfig) -> Dataset:
    """The episodes %BC trains on: the top fraction by return (or length), or the successful ones."""
    if config.by == "success":
        return successful(data)
    return top_fraction(data, config.fraction, by=config.by)
