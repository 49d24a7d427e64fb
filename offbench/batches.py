"""Training batches for several seeds at once, on a leading seed axis: stacked on the host, or
gathered on the training device from data kept there."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from offbench.algos.base import Algorithm


class SeedBatches:
    """One sampler per seed, each with its own generator; their batches stacked on a seed axis."""

    def __init__(self, samplers: list[Any]) -> None:
        self.samplers = samplers

    def sample(self) -> dict[str, np.ndarray]:
        batches = [s.sample() for s in self.samplers]
        return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


class DeviceBatches:
    """All seeds' transition batches gathered on the device from columns kept there: per step only
    the (seeds, batch) indices, drawn by each seed's own sampler generator, cross from the host.
    The batches equal :class:`SeedBatches`' (same draws, same rows)."""

    def __init__(self, samplers: list[Any], device: torch.device) -> None:
        self.samplers, self.device = samplers, device
        cols, nxt = samplers[0].columns()
        self.columns = {k: torch.as_tensor(v, device=device) for k, v in cols.items()}
        self.next_index = None if nxt is None else torch.as_tensor(nxt, device=device)

    @classmethod
    def suitable(cls, samplers: list[Any]) -> bool:
        """Whether every seed samples single steps of one and the same data (no frame stacks)."""
        first = samplers[0]
        return all(hasattr(s, "columns") and s.data is first.data for s in samplers) and first.columns() is not None

    def sample(self) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(np.stack([s.indices() for s in self.samplers])).to(self.device, non_blocking=True)
        batch = {k: col[idx] for k, col in self.columns.items()}
        if self.next_index is not None:
            batch["next_observations"] = self.columns["observations"][self.next_index[idx]]
        return batch


def seed_batches(algo: Algorithm, samplers: list[Any]) -> SeedBatches | DeviceBatches:
    """Device-resident sampling where the data allow it, else numpy batches stacked on the host."""
    if DeviceBatches.suitable(samplers):
        return DeviceBatches(samplers, algo.device)
    return SeedBatches(samplers)
