"""DQN-replay checkpoints in dopamine's layout -> the DT-recipe subset (frames once, stack indices)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from offbench.data import cache
from offbench.data.sources.dqn_replay import stack_indices, whole_episodes
from offbench.errors import OffbenchError
from tests.test_sources import registry
from tests.upstream import dqn_checkpoint, serve, write_dqn_checkpoint, write_npy_gz

ENTRY = """
[pong-test]
domain = "atari"
source = "dqn_replay"
env = "ALE/Pong-v5"
max_episode_steps = 108000
ref_min_return = -20.7
ref_max_return = 14.6
target_returns = [20.0]
base_url = "{url}"
game = "Pong"
run = 1
checkpoints = 3
transitions = 150
per_checkpoint = 200
trajectories_per_visit = 2
frame_stack = 4
num_actions = 6
seed = 0
"""

EPISODES = {0: [20, 15, 30, 25, 12, 40, 18], 1: [33, 22, 17, 28, 35, 9], 2: [26, 19, 31, 14, 22, 27]}


def make_checkpoints(root: Path) -> dict[int, dict[str, np.ndarray]]:
    logs = root / "dqn" / "Pong" / "1" / "replay_logs"
    out = {}
    for c, lengths in EPISODES.items():
        arrays = dqn_checkpoint(lengths, seed=c + 1, wrap_at=50 if c == 2 else None)
        write_dqn_checkpoint(logs, c, arrays)
        out[c] = arrays
    return out


def row_id(frame: np.ndarray) -> int:
    return int(np.frombuffer(frame[0, :4].tobytes(), np.int32)[0])


def test_subset_keeps_whole_episodes_frames_once_and_stack_indices(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "bucket"
    ckpts = make_checkpoints(root)
    with serve(root) as server:
        registry(tmp_path, ENTRY.format(url=server.url), monkeypatch)
        cache.fetch("pong-test")
        assert any("%24store%24" not in r and "$store$_observation_ckpt.0.gz" in r for r, _ in server.requests)
    data = cache.load("pong-test", fetch_missing=False)
    assert len(data) >= 150 and data.observations.shape[1:] == (84, 84) and data.observations.dtype == np.uint8
    assert data.stack_indices.shape == (len(data), 4)
    for s, e in zip(data.episode_starts, data.episode_ends):
        ids = [row_id(f) for f in data.observations[s:e]]
        ckpt, written = divmod(ids[0], 1_000_000)  # the row it was written to before any wrap
        src = ckpts[ckpt - 1]
        assert ids == [ckpt * 1_000_000 + written + i for i in range(e - s)]  # consecutive steps
        first = (written + (50 if ckpt == 3 else 0)) % len(src["terminal"])  # its storage row
        rows = np.arange(first, first + (e - s))
        # a whole episode: preceded by 3 padding rows, ending at a terminal
        assert not src["observation"][first - 3 : first].any()
        assert src["terminal"][rows[-1]] == 1 and not src["terminal"][rows[:-1]].any()
        np.testing.assert_array_equal(data.actions[s:e], src["action"][rows])
        np.testing.assert_array_equal(data.rewards[s:e], src["reward"][rows])
        assert data.terminals[e - 1] and not data.terminals[s : e - 1].any()
        np.testing.assert_array_equal(data.stack_indices[s], [-1, -1, -1, s])
        np.testing.assert_array_equal(data.stack_indices[s + 2], [-1, s, s + 1, s + 2])
        if e - s > 4:
            np.testing.assert_array_equal(data.stack_indices[s + 4], [s + 1, s + 2, s + 3, s + 4])
    # wrapped checkpoint 2: nothing from around its write cursor (rows 49..53)
    kept = {row_id(f) for f in data.observations}
    wrapped = [(i % 1_000_000 + 50) % len(ckpts[2]["terminal"]) for i in kept if i // 1_000_000 == 3]
    assert wrapped and not any(46 <= r <= 53 for r in wrapped)
    assert cache.info("pong-test")["recipe"].startswith("DT:")


def test_from_dir_import_equals_the_download(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "bucket"
    make_checkpoints(root)
    with serve(root) as server:
        registry(tmp_path, ENTRY.format(url=server.url), monkeypatch)
        cache.fetch("pong-test")
    fetched = cache.info("pong-test")["content_sha256"]
    copy = tmp_path / "copied"
    shutil.copytree(root / "dqn" / "Pong" / "1" / "replay_logs", copy)
    cache.fetch("pong-test", local=copy)
    assert cache.info("pong-test")["content_sha256"] == fetched


def test_mismatched_lengths_name_the_file_and_nothing_is_cached(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "bucket"
    make_checkpoints(root)
    logs = root / "dqn" / "Pong" / "1" / "replay_logs"
    for c in EPISODES:
        write_npy_gz(logs / f"$store$_reward_ckpt.{c}.gz", np.zeros(7, np.float32))
    registry(tmp_path, ENTRY.format(url="http://127.0.0.1:9/"), monkeypatch)
    with pytest.raises(OffbenchError, match=r"\$store\$_reward_ckpt\.\d\.gz: has shape \(7,\).*mismatched"):
        cache.fetch("pong-test", local=logs)
    assert not cache.is_cached("pong-test")


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path, monkeypatch) -> None:
    import gzip
    import io

    marker = tmp_path / "unpickled"

    class Trap:  # unpickling it would create `marker`
        def __reduce__(self):
            return (Path.touch, (marker,))

    root = tmp_path / "bucket"
    make_checkpoints(root)
    logs = root / "dqn" / "Pong" / "1" / "replay_logs"
    buf = io.BytesIO()
    np.save(buf, np.array([Trap()], dtype=object), allow_pickle=True)
    for c in EPISODES:
        with gzip.open(logs / f"$store$_action_ckpt.{c}.gz", "wb") as f:
            f.write(buf.getvalue())
    registry(tmp_path, ENTRY.format(url="http://127.0.0.1:9/"), monkeypatch)
    with pytest.raises(OffbenchError, match="object or Fortran-ordered arrays are not accepted"):
        cache.fetch("pong-test", local=logs)
    assert not marker.exists()


def test_truncated_checkpoint_is_an_error(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "bucket"
    make_checkpoints(root)
    logs = root / "dqn" / "Pong" / "1" / "replay_logs"
    for c in EPISODES:
        p = logs / f"$store$_observation_ckpt.{c}.gz"
        p.write_bytes(p.read_bytes()[:3000])
    registry(tmp_path, ENTRY.format(url="http://127.0.0.1:9/"), monkeypatch)
    with pytest.raises(OffbenchError, match=r"observation_ckpt\.\d\.gz: (damaged|truncated)"):
        cache.fetch("pong-test", local=logs)
    assert not cache.is_cached("pong-test")


def test_whole_episodes_by_hand() -> None:
    t = np.zeros(30, bool)
    t[[8, 15, 27]] = True  # fresh buffer: episode rows 3..8, 12..15, 19..27
    assert whole_episodes(t, 3, fresh=True, invalid=set()) == [(3, 8), (12, 15), (19, 27)]
    assert whole_episodes(t, 3, fresh=False, invalid=set()) == [(12, 15), (19, 27)]
    assert whole_episodes(t, 3, fresh=True, invalid={10}) == [(3, 8), (19, 27)]


def test_stack_indices_by_hand() -> None:
    np.testing.assert_array_equal(stack_indices(np.array([0, 2]), 5, 3),
                                  [[-1, -1, 0], [-1, 0, 1], [-1, -1, 2], [-1, 2, 3], [2, 3, 4]])
