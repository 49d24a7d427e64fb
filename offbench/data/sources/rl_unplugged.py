"""RL Unplugged's Atari episodes (Gulcehre et al. 2020): the DQN-replay runs as TFRecords.

Upstream (TFDS ``rlu_atari_checkpoints_ordered``): ``<base>/<Game>/run_<run>-<shard>-of-<shards>``,
five-digit numbers, one gzip-compressed TFRecord file per checkpoint of the DQN-replay run (shard
``c`` holds checkpoint ``c``'s episodes, in order). Each record is a ``tf.train.Example`` of one
episode: ``observations`` (PNG-encoded 84x84 grayscale frames), ``actions`` (int64),
``unclipped_rewards`` and ``discounts`` (float32), ``checkpoint_idx``, ``episode_idx``,
``episode_return``. When the last discount is 0 the episode ended in a terminal state and its last
step holds only that state's frame: it is dropped, so the steps are the DQN-replay buffer's rows
(observation, action, reward) of the same episode.

The DT recipe (:func:`offbench.data.sources.dqn_replay.sample_subset`) reads each checkpoint's
episodes as rows of a dopamine buffer filled from its start: ``frame_stack - 1`` zero rows before
each episode, whole episodes within the first ``per_checkpoint`` rows. For checkpoints stored that
way in both layouts, both sources give the same subset (same content digest); a DQN-replay buffer
that has wrapped stores its episodes from another row, so its window of rows covers other episodes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from offbench.data.sources.base import SOURCES, Arrays, FetchContext
from offbench.data.sources.dqn_replay import FRAME, Episodes, Layout, sample_subset
from offbench.data.spec import DatasetSpec
from offbench.data.tfrecord import parse_example, records
from offbench.errors import OffbenchError

KEYS = ("observations", "actions", "unclipped_rewards", "discounts")


def shard_name(spec: DatasetSpec, ckpt: int) -> str:
    p = spec.params
    return f"run_{p['run']}-{ckpt:05d}-of-{int(p.get('shards', 50)):05d}"


class Shard(Episodes):
    """One checkpoint's shard read as the first ``limit`` rows of a dopamine buffer."""

    def __init__(self, path: Path, limit: int, stack: int) -> None:
        self.where, self.pad = path, stack - 1
        self.episodes, self.records = [], []  # (first row, last row) and its record's index
        actions, rewards = np.zeros(limit, np.int64), np.zeros(limit, np.float32)
        row = self.pad
        for index, episode in self._read():
            a, r, _ = self._steps(index, episode)
            first, last = row, row + len(a) - 1
            if last >= limit:
                break
            actions[first : last + 1], rewards[first : last + 1] = a, r
            self.episodes.append((first, last))
            self.records.append(index)
            row = last + 1 + self.pad
        self.actions, self.rewards = actions, rewards
        self._stream: Iterator[tuple[int, dict[str, Any]]] | None = None
        self._at, self._example = -1, {}

    def _read(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for index, data in enumerate(records(self.where)):
            try:
                example = parse_example(data)
            except (ValueError, UnicodeDecodeError) as e:
                raise OffbenchError(f"{self.where}: record {index}: not a tf.train.Example ({e})") from None
            missing = [k for k in KEYS if k not in example]
            if missing:
                raise OffbenchError(f"{self.where}: record {index}: no {', '.join(missing)}; not an RL Unplugged "
                                    "Atari episode")
            yield index, example

    def _steps(self, index: int, ex: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
        """(actions, rewards, PNG frames) of the episode's buffer rows (a terminal frame dropped)."""
        actions, rewards, discounts, frames = ex["actions"], ex["unclipped_rewards"], ex["discounts"], ex["observations"]
        n = len(actions)
        if not (len(rewards) == len(discounts) == len(frames) == n) or n == 0:
            raise OffbenchError(f"{self.where}: record {index}: {len(frames)} observations, {n} actions, "
                                f"{len(rewards)} rewards, {len(discounts)} discounts (mismatched lengths)")
        keep = n - 1 if discounts[-1] == 0 and n > 1 else n
        return actions[:keep], rewards[:keep].astype(np.float32), frames[:keep]

    def frames(self, first: int, last: int) -> np.ndarray:
        """Frames of rows ``first..last``: zeros for padding rows, decoded PNGs for episode rows.
        Visits move forward, so the shard is read once (again only if asked for an earlier row)."""
        from PIL import Image

        out = np.zeros((last - first + 1, *FRAME), np.uint8)
        for (s, e), index in zip(self.episodes, self.records):
            if e < first or s > last:
                continue
            if self._stream is None or index < self._at:
                self._stream, self._at = self._read(), -1
            while self._at < index:
                self._at, self._example = next(self._stream)
            for row, png in zip(range(s, e + 1), self._steps(index, self._example)[2]):
                if first <= row <= last:
                    try:
                        frame = np.asarray(Image.open(io.BytesIO(png)))
                    except (OSError, ValueError) as err:
                        raise OffbenchError(f"{self.where}: record {index}: frame {row - s} is not a PNG image "
                                            f"({err})") from None
                    if frame.dtype != np.uint8 or frame.reshape(-1).size != FRAME[0] * FRAME[1]:
                        raise OffbenchError(f"{self.where}: record {index}: frame {row - s} is {frame.dtype} "
                                            f"{frame.shape}, expected uint8 {FRAME}")
                    out[row - first] = frame.reshape(FRAME)
        return out

    def close(self) -> None:
        self._stream, self._at = None, -1


class RLUnpluggedLayout(Layout):
    """One TFRecord file per checkpoint (see the module docstring)."""

    name = "RL Unplugged"
    quote = False

    def relative_paths(self, spec: DatasetSpec, ckpt: int) -> dict[str, str]:
        return {"episodes": f"{spec.params['game']}/{shard_name(spec, ckpt)}"}

    def find_local(self, spec: DatasetSpec, root: Path) -> Path:
        pattern = f"run_{spec.params['run']}-*-of-*"
        for cand in (root, root / spec.params["game"]):
            if any(cand.glob(pattern)):
                return cand
        raise OffbenchError(f"{root}: no RL Unplugged Atari files ({pattern}) in it or in {spec.params['game']}/ "
                            "below it")

    def open(self, files: dict[str, Path], limit: int, stack: int) -> Episodes:
        return Shard(files["episodes"], limit, stack)


RL_UNPLUGGED = RLUnpluggedLayout()


@SOURCES.register("rl_unplugged")
def build(spec: DatasetSpec, ctx: FetchContext) -> tuple[Arrays, dict[str, Any]]:
    """The DT-recipe subset read from RL Unplugged's TFRecords."""
    return sample_subset(spec, ctx, RL_UNPLUGGED)
