"""Algorithm configurations: the dataclass every algorithm's config extends, its per-domain,
per-dataset and per-recipe defaults, ``--set`` parsing and the checks of every field."""

from __future__ import annotations

import dataclasses
import json
import typing
import warnings
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from offbench.data.spec import DatasetSpec
from offbench.errors import OffbenchDeprecation, UsageError


#: D4RL's AntMaze and Adroit sets as offbench names them (datasets.toml): CORL's per-dataset
#: configs (``configs/offline/<algo>/{antmaze,pen,door,hammer,relocate}/*.yaml``) set one value per
#: family, given to every set of the family with :func:`each`.
D4RL_ANTMAZE = tuple(f"antmaze-{maze}" for maze in ("umaze", "umaze-diverse", "medium-play", "medium-diverse",
                                                     "large-play", "large-diverse"))
D4RL_ADROIT = tuple(f"{task}-{kind}" for task in ("pen", "door", "hammer", "relocate")
                    for kind in ("human", "cloned", "expert"))
D4RL_KITCHEN = ("kitchen-complete", "kitchen-partial", "kitchen-mixed")


def each(names: tuple[str, ...], values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``values`` for every dataset of ``names`` (a ``DATASET_DEFAULTS`` or recipe entry)."""
    return {name: dict(values) for name in names}


#: States are standardized as ``(s - mean) / (std + eps)``; CORL's transition algorithms use eps
#: 1e-3 (``compute_mean_std(..., eps=1e-3)``), the default for a config without ``obs_std_eps``.
CORL_OBS_STD_EPS = 1e-3


@dataclass
class AlgoConfig:
    """Fields every algorithm has: the training budget and the evaluation schedule."""

    steps: int = 1_000_000
    batch_size: int = 256
    eval_every: int = 5_000
    eval_episodes: int = 10

    #: Overrides of the defaults above per dataset domain (``keytodoor``, ``mujoco``, ``atari``).
    DOMAIN_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Overrides per dataset (by name; a ``-sparse`` variant takes its base's), after the domain's.
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Named recipes, where two publications' recipes for one algorithm differ (``--set recipe=NAME``;
    #: an algorithm with recipes has a ``recipe`` field whose default, per domain, names the one
    #: used). Each recipe maps ``"*"`` (every dataset) and dataset names (a ``-sparse`` variant
    #: takes its base's) to overrides applied over the domain's and the dataset's defaults.
    RECIPES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    #: Former names of fields: ``--set OLD=value`` sets the new field(s) with a deprecation line,
    #: and run records written under the old names read as the new ones (:meth:`upgrade`).
    RENAMED: ClassVar[dict[str, tuple[str, ...]]] = {}

    @classmethod
    def for_domain(cls, domain: str) -> AlgoConfig:
        return cls(**cls.DOMAIN_DEFAULTS.get(domain, {}))

    @classmethod
    def for_dataset(cls, spec: DatasetSpec, recipe: str | None = None) -> AlgoConfig:
        """The defaults for ``spec``: class defaults, then its domain's, then its own, then those of
        ``recipe`` (default: the domain's recipe) for every dataset and for this one."""
        base = {**cls.DOMAIN_DEFAULTS.get(spec.domain, {}), **cls.DATASET_DEFAULTS.get(spec.stored_as, {})}
        if not cls.RECIPES:
            if recipe is not None:
                raise UsageError(f"{cls.__name__} has one recipe; --set recipe is for algorithms whose "
                                 f"publications differ")
            return cls(**base)
        name = recipe if recipe is not None else cls(**base).recipe  # type: ignore[attr-defined]
        cls.check_recipe(name)
        chosen = cls.RECIPES[name]
        return cls(**{**base, **chosen.get("*", {}), **chosen.get(spec.stored_as, {}), "recipe": name})

    @classmethod
    def check_recipe(cls, name: str) -> None:
        if name not in cls.RECIPES:
            raise UsageError(f"unknown recipe '{name}' for {cls.__name__}; recipes: {', '.join(cls.RECIPES)}")

    @classmethod
    def resolve(cls, spec: DatasetSpec, overrides: dict[str, str]) -> AlgoConfig:
        """The configuration a run on ``spec`` uses: the defaults of the recipe chosen with
        ``recipe=NAME`` (or the domain's), then every other ``key=value`` override."""
        recipe = overrides.get("recipe")
        return cls.for_dataset(spec, recipe).with_overrides({k: v for k, v in overrides.items() if k != "recipe"})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def upgrade(cls, recorded: dict[str, Any]) -> dict[str, Any]:
        """A config as a run record holds it, with fields under former names (:data:`RENAMED`)
        given their current names (a name given explicitly wins over a former one)."""
        out = {k: v for k, v in recorded.items() if k not in cls.RENAMED}
        for old, new in cls.RENAMED.items():
            if old in recorded:
                out.update({name: recorded[old] for name in new if name not in recorded})
        return out

    @classmethod
    def from_record(cls, recorded: dict[str, Any]) -> AlgoConfig:
        """The config a run record (``config.json``'s ``config``) holds, in today's field names."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cls.upgrade(recorded).items() if k in names})

    def with_overrides(self, overrides: dict[str, str]) -> AlgoConfig:
        """Apply ``--set key=value`` strings, parsing each value as the field's type (a recipe is
        chosen with :meth:`resolve`, which applies its defaults first)."""
        by_name = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        if "recipe" in overrides:
            if not self.RECIPES:
                raise UsageError(f"{type(self).__name__} has one recipe; --set recipe is for algorithms whose "
                                 f"publications differ")
            self.check_recipe(overrides["recipe"])
            if overrides["recipe"] != getattr(self, "recipe"):
                raise ValueError("a recipe other than the config's own is chosen with AlgoConfig.resolve")
        overrides = self._renamed_overrides(overrides)
        for key, text in overrides.items():
            if key not in by_name:
                raise UsageError(f"unknown --set key '{key}' for {type(self).__name__}; valid keys: {', '.join(by_name)}")
            changes[key] = parse_value(text, getattr(self, key), key)
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def _renamed_overrides(self, overrides: dict[str, str]) -> dict[str, str]:
        """``overrides`` with former field names replaced by the current ones, each with a
        deprecation warning (an old and a new name for one field: a usage error)."""
        out = {k: v for k, v in overrides.items() if k not in self.RENAMED}
        for old, new in self.RENAMED.items():
            if old not in overrides:
                continue
            both = [name for name in new if name in overrides]
            if both:
                raise UsageError(f"--set {old} and --set {both[0]} name one setting; give {both[0]} only")
            value = overrides[old]
            warnings.warn(f"{type(self).__name__}: --set {old}={value} is deprecated; use "
                          + " ".join(f"--set {name}={value}" for name in new), OffbenchDeprecation, stacklevel=3)
            out.update({name: overrides[old] for name in new})
        return out

    def validate(self) -> None:
        """Every field against its declared type and range (one line naming the field, the value
        and what is allowed): ``Literal`` fields take one of their values; integers are >= 0 and
        sizes (:data:`SIZES`) >= 1, as is every entry of an integer tuple (layer widths); the
        shared float fields of :data:`FLOAT_RANGES` lie in their range."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value, hint = getattr(self, f.name), hints.get(f.name)
            if typing.get_origin(hint) is typing.Literal and value not in typing.get_args(hint):
                allowed = ", ".join(map(str, typing.get_args(hint)))
                raise UsageError(f"{f.name} must be one of {allowed}; got '{value}'")
            if isinstance(value, int) and not isinstance(value, bool):
                least = 1 if f.name in SIZES or f.name.startswith("n_") else 0
                if value < least:
                    raise UsageError(f"{f.name} must be >= {least}, got {value}")
            if typing.get_origin(hint) is tuple and typing.get_args(hint)[:1] == (int,):
                if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
                    raise UsageError(f"{f.name} must be a list of integers >= 1, got {list(value)}")
            if typing.get_origin(hint) is tuple and typing.get_args(hint)[:1] == (float,):
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                    raise UsageError(f"{f.name} must be a list of numbers, got {list(value)}")
            low, high, closed = FLOAT_RANGES.get(f.name, (0.0, None, True) if f.name.endswith("lr") else (None, None, True))
            if isinstance(value, float) and ((low is not None and value < low) or
                                             (high is not None and (value > high if closed else value >= high))):
                shown = f"in [{low}, {high}{']' if closed else ')'}" if high is not None else f">= {low}"
                raise UsageError(f"{f.name} must be {shown}, got {value}")
        low, high = getattr(self, "log_std_min", None), getattr(self, "log_std_max", None)
        if low is not None and high is not None and not low < high:  # a Gaussian policy's log-std clamp
            raise UsageError(f"log_std_min must be < log_std_max, got {low}, {high}")


#: Integer fields that count something that must exist (>= 1); other integers (and ``n_*``) as named.
SIZES = frozenset({"batch_size", "eval_episodes", "context", "embed_dim", "frame_stack", "buffer_size"})
#: Ranges of float fields shared across algorithms: (low, high, high included); any ``*lr`` is >= 0.
FLOAT_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "discount": (0.0, 1.0, True), "tau": (0.0, 1.0, True), "expectile": (0.0, 1.0, True),
    "dropout": (0.0, 1.0, False), "rms_momentum": (0.0, 1.0, True), "weight_decay": (0.0, None, True),
    "grad_clip": (0.0, None, True), "alpha": (0.0, None, True),
    "policy_noise": (0.0, None, True), "noise_clip": (0.0, None, True), "exp_adv_max": (0.0, None, True),
    "max_weight": (0.0, None, True), "obs_std_eps": (0.0, None, True), "temperature": (0.0, None, True),
    "beta": (0.0, None, True), "rtg_scale": (0.0, None, True),
    "reward_range": (0.0, None, True), "actor_dropout": (0.0, 1.0, False)}


def parse_value(text: str, current: Any, key: str) -> Any:
    """Parse ``text`` as the type of ``current`` (bool, int, float, str, or JSON for sequences)."""
    try:
        if isinstance(current, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(current, int):
            return int(float(text)) if float(text).is_integer() else int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (list, tuple)):
            value = json.loads(text)
            if not isinstance(value, list):
                raise UsageError(f"--set {key}={text}: expected a JSON list such as {json.dumps(list(current))}")
            return type(current)(value)
        return text
    except (ValueError, json.JSONDecodeError):
        raise UsageError(f"--set {key}={text}: expected a value of type {type(current).__name__}") from None
