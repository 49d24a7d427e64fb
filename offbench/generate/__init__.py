"""``offbench generate``: datasets made on this machine, above the data layer (it trains behaviour
policies with :mod:`offbench.generate.sac` and writes through :mod:`offbench.data.cache`).

- :mod:`offbench.generate.d4rl`: the D4RL recipe for any continuous-control gymnasium environment;
- :mod:`offbench.generate.atari`: random-policy Atari sets in the DQN-replay checkpoint format.
"""

from __future__ import annotations

from collections.abc import Callable

from offbench.generate.atari import GAMES, generate_atari
from offbench.generate.d4rl import LEVELS, PRESETS, generate_d4rl

__all__ = ["LEVELS", "PRESETS", "generate"]


def generate(env: str, preset: str = "quick", levels: list[str] | None = None, overrides: dict[str, str] | None = None,
             device: str = "cpu", force: bool = False, log: Callable[[str], None] = print) -> list[str]:
    """Make ``env``'s datasets (an Atari game: the DQN-replay-format set; else the D4RL levels);
    return the registered dataset names."""
    if env.lower() in GAMES:
        return generate_atari(env.lower(), preset, log)
    return generate_d4rl(env, preset, levels, overrides, device, force, log)
