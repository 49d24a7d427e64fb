"""RL Unplugged's Atari TFRecords -> the same DT-recipe subset as DQN-replay's files, and the
fallback from a DQN-replay upstream that is down."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from offbench.data import cache
from offbench.data.tfrecord import masked_crc, parse_example, records
from offbench.errors import OffbenchError
from tests.test_sources import registry
from tests.upstream import dqn_checkpoint, rlu_shard, serve, tf_example, tfrecord_bytes, write_dqn_checkpoint

EPISODES = {0: [20, 15, 30, 25, 12, 40, 18], 1: [33, 22, 17, 28, 35, 9], 2: [26, 19, 31, 14, 22, 27]}

ENTRY = """
[pong-test]
domain = "atari"
source = "{source}"
env = "ALE/Pong-v5"
max_episode_steps = 108000
ref_min_return = -20.7
ref_max_return = 14.6
target_returns = [20.0]
base_url = "{url}{base}"
{fallbacks}
game = "Pong"
run = 1
checkpoints = 3
shards = 3
transitions = 120
per_checkpoint = 150
trajectories_per_visit = 2
frame_stack = 4
num_actions = 6
seed = 0
"""


def write_both_layouts(root: Path) -> None:
    """One set of episodes per checkpoint, in DQN-replay's files (under ``dqn/``) and as RL
    Unplugged's shards (under ``rlu/``). The buffers are larger than their contents, as a buffer
    still filling is: its write cursor and invalid rows lie after the 150-row window the recipe
    reads, as they do for the real checkpoints' 1M rows and 100k-row window."""
    for c, lengths in EPISODES.items():
        arrays = dqn_checkpoint(lengths, seed=c + 1, capacity=sum(lengths) + 3 * len(lengths) + 8)
        write_dqn_checkpoint(root / "dqn" / "Pong" / "1" / "replay_logs", c, arrays)
        shard = root / "rlu" / "Pong" / f"run_1-{c:05d}-of-00003"
        shard.parent.mkdir(parents=True, exist_ok=True)
        shard.write_bytes(rlu_shard(c, arrays))


def entry(url: str, source: str = "dqn_replay", fallback: bool = False) -> str:
    base = "" if source == "dqn_replay" else "rlu/"
    fb = f'fallbacks = [{{ source = "rl_unplugged", base_url = "{url}rlu/" }}]' if fallback else ""
    return ENTRY.format(url=url, source=source, base=base, fallbacks=fb)


def test_both_layouts_give_the_same_subset_by_download_and_from_dir(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "bucket"
    write_both_layouts(root)
    with serve(root) as server:
        registry(tmp_path, entry(server.url), monkeypatch)
        cache.fetch("pong-test")
        from_dqn = cache.info("pong-test")
        registry(tmp_path, entry(server.url, source="rl_unplugged"), monkeypatch)
        cache.fetch("pong-test", force=True)
        from_rlu = cache.info("pong-test")
        assert any(r.startswith("rlu/Pong/run_1-00000-of-00003") for r, _ in server.requests)
    assert from_rlu["source"] == "rl_unplugged" and from_dqn["source"] == "dqn_replay"
    assert from_rlu["transitions"] == from_dqn["transitions"] >= 120
    assert from_rlu["content_sha256"] == from_dqn["content_sha256"]
    # --from-dir with either layout: the directory says which
    registry(tmp_path, entry("http://127.0.0.1:9/", fallback=True), monkeypatch)
    for layout in ("dqn", "rlu"):
        cache.fetch("pong-test", local=root / layout)
        assert cache.info("pong-test")["content_sha256"] == from_dqn["content_sha256"]
    assert cache.info("pong-test")["source"] == "rl_unplugged"


def test_fetch_falls_back_to_rl_unplugged_when_dqn_replay_answers_503(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "bucket"
    write_both_layouts(root)
    with serve(root) as server:
        registry(tmp_path, entry(server.url), monkeypatch)
        cache.fetch("pong-test")
        digest = cache.info("pong-test")["content_sha256"]
        cache.dataset_path("pong-test").unlink()
        shutil.rmtree(tmp_path / "cache" / "downloads", ignore_errors=True)
        registry(tmp_path, entry(server.url, fallback=True), monkeypatch)
        server.down["dqn/"] = 503
        server.requests.clear()
        cache.fetch("pong-test")
        assert any(r.startswith("dqn/") for r, _ in server.requests)  # upstream tried first
    facts = cache.info("pong-test")
    assert facts["source"] == "rl_unplugged" and facts["origin"].endswith("rlu/Pong")
    assert facts["content_sha256"] == digest


def test_every_source_failing_is_one_line_naming_each(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "bucket"
    write_both_layouts(root)
    with serve(root) as server:
        registry(tmp_path, entry(server.url, fallback=True), monkeypatch)
        server.down[""] = 503
        with pytest.raises(OffbenchError) as e:
            cache.fetch("pong-test")
    msg = str(e.value)
    assert "\n" not in msg and "[dqn_replay]" in msg and "[rl_unplugged]" in msg and "503" in msg
    assert not cache.dataset_path("pong-test").exists()


def damaged_shard(path: Path, at: int) -> None:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[at] ^= 0x40
    path.write_bytes(gzip.compress(bytes(raw)))


def test_a_record_with_a_wrong_crc_is_named_and_nothing_is_cached(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "bucket"
    write_both_layouts(root)
    shard = root / "rlu" / "Pong" / "run_1-00001-of-00003"
    first = struct.unpack("<Q", gzip.decompress(shard.read_bytes())[:8])[0]
    damaged_shard(shard, 12 + first + 4 + 12 + 30)  # inside the second record's data
    with serve(root) as server:
        registry(tmp_path, entry(server.url, source="rl_unplugged"), monkeypatch)
        with pytest.raises(OffbenchError, match=r"run_1-00001-of-00003: record 1: wrong CRC of its data"):
            cache.fetch("pong-test")
    assert not cache.dataset_path("pong-test").exists()
    # the damaged download is forgotten: the next fetch gets it again
    assert not (tmp_path / "cache" / "downloads" / "rl_unplugged" / "Pong" / "run_1-00001-of-00003").exists()


def test_tfrecord_reader_by_hand(tmp_path: Path) -> None:
    import google_crc32c

    assert google_crc32c.value(b"123456789") == 0xE3069283  # the CRC-32C check value
    ex = tf_example({"frames": [b"ab", b""], "r": np.array([1.5, -2.0], np.float32),
                     "i": np.array([3, -1, 1 << 40])})
    path = tmp_path / "f.tfrecord"
    path.write_bytes(tfrecord_bytes([ex, ex]))
    got = [parse_example(r) for r in records(path)]
    assert len(got) == 2 and got[0]["frames"] == [b"ab", b""]
    np.testing.assert_array_equal(got[0]["r"], [1.5, -2.0])
    np.testing.assert_array_equal(got[0]["i"], [3, -1, 1 << 40])
    length = struct.pack("<Q", 5)
    path.write_bytes(length + struct.pack("<I", masked_crc(length)) + b"abc")  # cut short
    with pytest.raises(OffbenchError, match=r"record 0: truncated"):
        list(records(path))
