"""The Decision Transformer paper's Atari BC baseline (Table 1's "BC" column): the same GPT as DT
over (state, action) tokens only, with no returns-to-go, trained to predict the data's actions
(kzl/decision-transformer ``atari/mingpt/model_atari.py`` with ``model_type='naive'``,
``run_dt_atari.py --model_type naive``). Everything else is DT's (its Atari recipe on Atari data);
evaluation needs no target return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from offbench.algos.base import ALGORITHMS
from offbench.algos.dt import DT, DTConfig, DTPolicy


@dataclass
class GPTBCConfig(DTConfig):
    """DT's fields and recipes (see :class:`~offbench.algos.dt.DTConfig`), without the returns."""

    returns: bool = False  # minGPT model_type 'naive'


@ALGORITHMS.register("gptbc")
class GPTBC(DT):
    """Behaviour cloning with DT's GPT over (state, action) tokens: the DT paper's Atari BC."""

    Config = GPTBCConfig
    return_conditioned: ClassVar[bool] = False

    def policy(self, target_return: float | None, generator: list[torch.Generator]) -> DTPolicy:
        return DTPolicy(self, 0.0, generator)  # the return window is kept but never read
