"""The algorithm protocol, its base classes, and the registry the algorithm modules add to.

An algorithm is one file: a config dataclass (published defaults, per domain where they differ),
the networks it needs, ``make_sampler`` (which minibatches it trains on), ``update(batch)``
(one gradient step, returning metrics as tensors), ``policy()`` (a batched policy for
evaluation) and ``state_dict`` / ``load_state_dict`` (everything needed to resume).

Built-in algorithms are *seed-batched* (``seed_batched = True``): one instance trains several
seeds at once, every tensor carrying a leading seed axis (see :mod:`offbench.algos.nets`).
Batches arrive as ``(S, B, ...)`` arrays, ``update`` returns one value per seed, the policy acts
for all seeds at once, and ``state_dict`` holds every per-seed tensor with the seed axis first
(0-dimensional tensors, like Adam's step count, are shared), so a checkpoint splits into one file
per seed and any seeds' files stack back into one model. A plug-in that is not seed-batched keeps
the plain protocol (batches ``(B, ...)``, scalar metrics, one seed per instance); :meth:`Algorithm.create`
wraps it in :class:`OneSeed`, so everything above the algorithms speaks the seed-batched protocol.

An instance is built from a :class:`~offbench.data.info.DataInfo` (shapes, action kind,
normalization statistics), not from the dataset; only ``make_sampler`` sees the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from offbench.algos.config import CORL_OBS_STD_EPS, AlgoConfig, parse_value  # noqa: F401  (re-exported)
from offbench.algos.nets import ObsNormalizer, return_range_reward_scale
from offbench.algos.seeded import SeedNoise, seeded_init
from offbench.data.dataset import Dataset
from offbench.data.info import DataInfo
from offbench.data.spec import DatasetSpec
from offbench.errors import UsageError
from offbench.registry import Registry


class Policy(Protocol):
    """A batched policy stepping ``n`` environments in lock step."""

    def reset(self, n: int) -> None: ...

    def act(self, observations: np.ndarray) -> np.ndarray: ...

    def observe(self, rewards: np.ndarray) -> None: ...


class MarkovPolicy:
    """A policy that looks only at the current observation: ``algo.act`` on a batch of them
    ((S, N, ...) for a seed-batched algorithm, with one generator per seed)."""

    def __init__(self, algo: TransitionAlgorithm, generator: Any) -> None:
        self.algo, self.generator = algo, generator

    def reset(self, n: int) -> None:
        pass

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        return self.algo.act(self.algo.norm(self.algo.to_tensor(observations)), self.generator).cpu().numpy()

    def observe(self, rewards: np.ndarray) -> None:
        pass


class Algorithm:
    """Base class: stores the config, dataset facts and device; subclasses fill in the rest."""

    Config: ClassVar[type[AlgoConfig]] = AlgoConfig
    #: Whether the policy is conditioned on a target return (evaluated once per target).
    return_conditioned: ClassVar[bool] = False
    #: Whether the algorithm has anything to train (the random baseline does not).
    trainable: ClassVar[bool] = True
    #: Whether one instance trains several seeds on a leading seed axis (see the module docstring).
    seed_batched: ClassVar[bool] = False
    #: At most this many seeds per model on a CPU (None: all). Batching seeds pays where kernel
    #: launches and Python dominate a step; where large activations make a step compute- and
    #: memory-bound on a CPU, S seeds cost more than S single steps (caches), so they run apart.
    cpu_seeds_together: ClassVar[int | None] = None

    def __init__(self, config: AlgoConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        self.config, self.info, self.device = config, info, device
        self.seeds = [int(s) for s in seeds]
        self.obs_shape = info.obs_shape
        self.discrete = info.discrete
        self.action_dim = info.action_dim
        self.noise = SeedNoise(self.seeds, device)

    @classmethod
    def describe(cls, config: AlgoConfig, data: Dataset, spec: DatasetSpec) -> DataInfo:
        """What an instance needs to know about ``data``: its shapes and episode facts, and the
        observation statistics where the config normalizes observations."""
        return DataInfo.of(data, spec, obs_stats=bool(getattr(config, "normalize_obs", True)))

    @classmethod
    def create(cls, config: AlgoConfig, info: DataInfo, device: torch.device, seeds: Sequence[int]) -> Algorithm:
        """An instance training ``seeds`` on a seed axis, each seed's parameters initialized from
        its own generator; a plain plug-in is built for its one seed and seen through
        :class:`OneSeed`."""
        if cls.seed_batched:
            with seeded_init(seeds):
                return cls(config, info, device, seeds)
        if len(seeds) != 1:
            raise ValueError(f"{cls.__name__} is not seed-batched; it trains one seed per instance")
        torch.manual_seed(seeds[0])
        return OneSeed(cls(config, info, device))

    @classmethod
    def for_data(cls, config: AlgoConfig, data: Dataset, spec: DatasetSpec, device: torch.device,
                 seeds: Sequence[int]) -> Algorithm:
        """:meth:`create` for the dataset ``data`` (described by :meth:`describe`)."""
        return cls.create(config, cls.describe(config, data, spec), device, seeds)

    @classmethod
    def most_seeds(cls, cpu: bool) -> int | None:
        """The most seeds one instance trains (None: any number): one for a plain plug-in, on a
        CPU ``cpu_seeds_together``."""
        if not cls.seed_batched:
            return 1
        return cls.cpu_seeds_together if cpu else None

    def seed_states(self) -> list[dict[str, Any]]:
        """The training state of each seed on its own (the state split on its seed axis)."""
        state = self.state_dict()
        return [{"algo": seed_slice(state, i), "noise": self.noise.get_state(i)} for i in range(len(self.seeds))]

    def load_seed_states(self, states: list[dict[str, Any]]) -> None:
        """Restore from one state per seed (as :meth:`seed_states` gives them)."""
        self.load_state_dict(stack_seeds([s["algo"] for s in states]))
        for i, s in enumerate(states):
            self.noise.set_state(i, s["noise"])

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def policy(self, target_return: float | None, generator: Any) -> Policy:
        """The evaluation policy; ``generator``: one per seed for a seed-batched algorithm."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def to_tensor(self, array: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``array`` on the device as ``dtype`` (default: torch's default float type, float32 unless
        changed; the equivalence tests compute in float64)."""
        return torch.as_tensor(array, device=self.device).to(dtype or torch.get_default_dtype())


class TransitionAlgorithm(Algorithm):
    """Shared plumbing for algorithms trained on single transitions (BC family, TD3+BC, IQL, CQL,
    AWAC): observation normalization, the sampler, batches as tensors, a Markov policy, and
    ``state_dict`` over the attributes named in ``STATE`` (networks and optimizers)."""

    STATE: ClassVar[tuple[str, ...]] = ()
    #: Continuous-control algorithms refuse discrete-action datasets with a usage error.
    continuous_only: ClassVar[bool] = False

    def __init__(self, config: AlgoConfig, info: DataInfo, device: torch.device,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__(config, info, device, seeds)
        if self.continuous_only and self.discrete:
            raise UsageError(f"{type(self).__name__} needs continuous actions; {info.name} has discrete ones")
        self.obs_dim = int(np.prod(self.obs_shape))
        self.norm = ObsNormalizer.for_data(info, getattr(config, "normalize_obs", True),
                                           getattr(config, "obs_std_eps", CORL_OBS_STD_EPS)).to(device)
        self.reward_scale, self.reward_bias = self.reward_transform(info)

    def reward_transform(self, info: DataInfo) -> tuple[float, float]:
        """``(scale, bias)``: training batches hold ``scale * r + bias``. The scale: with a
        config's ``normalize_reward`` on locomotion data, CORL's ``modify_reward`` (and the IQL
        authors' ``normalize``), ``reward_range / (max - min episode return)``, else 1; times the
        config's ``reward_scale``. The bias: the config's ``reward_bias`` (CORL's AntMaze
        ``r - 1``, CQL's ``10 r - 5``); 1 and 0 for a config without them."""
        scale = float(getattr(self.config, "reward_scale", 1.0))
        if getattr(self.config, "normalize_reward", False) and info.domain == "mujoco" and info.return_range:
            scale *= return_range_reward_scale(info.return_range, self.config.reward_range)  # type: ignore[attr-defined]
        return scale, float(getattr(self.config, "reward_bias", 0.0))

    def train_data(self, data: Dataset) -> Dataset:
        """The transitions to train on (all of them unless a subclass filters)."""
        return data

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> Any:
        from offbench.data.dataset import TransitionSampler

        return TransitionSampler(self.train_data(data), self.config.batch_size, rng)

    def tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The batch on the device: normalized observations, actions, scaled rewards, dones."""
        out = {"obs": self.norm(self.to_tensor(batch["observations"])),
               "actions": self.to_tensor(batch["actions"], torch.long if self.discrete else None)}
        if "next_observations" in batch:
            out["next_obs"] = self.norm(self.to_tensor(batch["next_observations"]))
            out["rewards"] = self.to_tensor(batch["rewards"]) * self.reward_scale + self.reward_bias
            out["dones"] = self.to_tensor(batch["dones"])
        for key in ("weights", "returns"):
            if key in batch:
                out[key] = self.to_tensor(batch[key])
        return out

    def act(self, obs: torch.Tensor, generator: Any) -> torch.Tensor:
        """Actions for a batch of normalized observations (evaluation)."""
        raise NotImplementedError

    def policy(self, target_return: float | None, generator: Any) -> Policy:
        return MarkovPolicy(self, generator)

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).state_dict() for name in self.STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.STATE:
            getattr(self, name).load_state_dict(state[name])


class OneSeedPolicy:
    """A plain policy (observations (N, ...)) seen through the seed axis of the evaluation."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def reset(self, n: int) -> None:
        self.policy.reset(n)

    def act(self, observations: np.ndarray) -> np.ndarray:
        return np.asarray(self.policy.act(observations[0]))[None]

    def observe(self, rewards: np.ndarray) -> None:
        self.policy.observe(rewards[0])


class OneSeed(Algorithm):
    """A plain plug-in (one seed, batches ``(B, ...)``, scalar metrics, numpy batches) seen as a
    seed-batched algorithm with one seed, so the loop, samplers, evaluation and launchers speak
    one protocol. Its checkpoint is the plug-in's own ``state_dict``."""

    seed_batched = True

    def __init__(self, inner: Algorithm) -> None:
        self.inner = inner
        self.config, self.info, self.device, self.seeds = inner.config, inner.info, inner.device, inner.seeds
        self.obs_shape, self.discrete, self.action_dim = inner.obs_shape, inner.discrete, inner.action_dim
        self.noise = inner.noise
        self.trainable = inner.trainable  # type: ignore[misc]
        self.return_conditioned = inner.return_conditioned  # type: ignore[misc]

    def make_sampler(self, data: Dataset, rng: np.random.Generator) -> Any:
        return self.inner.make_sampler(data, rng)

    def update(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        one = {k: v[0].cpu().numpy() if isinstance(v, torch.Tensor) else v[0] for k, v in batch.items()}
        return {k: torch.as_tensor(v).reshape(1) for k, v in self.inner.update(one).items()}

    def policy(self, target_return: float | None, generator: Any) -> Policy:
        return OneSeedPolicy(self.inner.policy(target_return, generator[0]))

    def seed_states(self) -> list[dict[str, Any]]:
        return [self.inner.state_dict()]

    def load_seed_states(self, states: list[dict[str, Any]]) -> None:
        self.inner.load_state_dict(states[0])


def seed_slice(state: Any, i: int) -> Any:
    """Seed ``i``'s part of a seed-batched state: every tensor with a seed axis cut to ``i:i+1``;
    0-dimensional tensors and plain values are shared and kept."""
    if isinstance(state, torch.Tensor):
        return state[i : i + 1].clone() if state.ndim else state.clone()
    if isinstance(state, dict):
        return {k: seed_slice(v, i) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(seed_slice(v, i) for v in state)
    return state


def stack_seeds(states: list[Any]) -> Any:
    """The inverse of :func:`seed_slice`: per-seed states joined on their seed axis."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(states) if first.ndim else first
    if isinstance(first, dict):
        return {k: stack_seeds([s[k] for s in states]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(stack_seeds(list(parts)) for parts in zip(*states))
    return first


ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm", group="offbench.algorithms")
