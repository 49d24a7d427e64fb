"""Small building blocks shared by the algorithms."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def mlp(inp: int, hidden: tuple[int, ...] | list[int], out: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A fully connected network ``inp -> hidden... -> out`` with ``activation`` between layers."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inp, width), activation()]
        inp = width
    layers.append(nn.Linear(inp, out))
    return nn.Sequential(*layers)


class ObsNormalizer(nn.Module):
    """Flattens observations and standardizes them with dataset statistics (identity if off)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, enabled: bool) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32) if enabled else torch.zeros(len(mean))
        std_t = torch.as_tensor(std, dtype=torch.float32) if enabled else torch.ones(len(std))
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, obs: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
        flat = obs.reshape(*obs.shape[:batch_dims], -1).float()
        return (flat - self.mean) / self.std


def sample_or_argmax(logits: torch.Tensor, sample: bool, generator: torch.Generator) -> torch.Tensor:
    """Discrete actions from logits: sampled from the softmax, or the most likely one."""
    if not sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)
