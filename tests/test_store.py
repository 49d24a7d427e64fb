"""The canonical cache file and the fetch of generated datasets: digest, determinism, atomicity."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from offbench.data import cache, store
from offbench.errors import OffbenchError

PINNED_1K = "59d820aa391f551d2767530c42645fbd6420b8dace31f4d00d467a667ef690a6"


def test_generation_is_deterministic_and_matches_the_pinned_digest(kd1k_arrays: dict) -> None:
    # The same digest on every machine: pinned here and in datasets.toml.
    assert store.content_sha256(kd1k_arrays) == PINNED_1K
    path = cache.fetch("keytodoor-1k")
    info = cache.info("keytodoor-1k")
    assert info["cached"] and info["content_sha256"] == PINNED_1K and info["path"] == str(path)
    assert info["episodes"] == 1000 and info["transitions"] == len(kd1k_arrays["rewards"])
    assert info["action_space"] == "Discrete(4)" and info["observation_space"] == "Box(uint8, shape=(100,))"
    assert 0 < info["return_mean"] < 0.06 and info["return_min"] == 0 and info["return_max"] == 1


def test_digest_covers_data_not_file_bytes(tmp_path: Path, kd1k_arrays: dict) -> None:
    store.write(tmp_path / "a.hdf5", kd1k_arrays, {"created": "one time"})
    store.write(tmp_path / "b.hdf5", kd1k_arrays, {"created": "another time"})
    assert (tmp_path / "a.hdf5").read_bytes() != (tmp_path / "b.hdf5").read_bytes()
    a, _ = store.read(tmp_path / "a.hdf5")
    b, _ = store.read(tmp_path / "b.hdf5")
    assert store.content_sha256(a) == store.content_sha256(b) == PINNED_1K
    changed = dict(a, rewards=a["rewards"].copy())
    changed["rewards"][0] += 1
    assert store.content_sha256(changed) != PINNED_1K
    assert store.content_sha256(dict(a, actions=a["actions"].astype(np.int32))) != PINNED_1K  # dtype counts


def test_canonical_file_layout(kd1k_arrays: dict) -> None:
    path = cache.fetch("keytodoor-1k")
    with h5py.File(path) as f:
        assert set(f) == set(store.REQUIRED)
        assert f["episode_starts"].dtype == np.int64 and f["terminals"].dtype == bool
        for key in ("name", "source", "content_sha256", "offbench_version", "created", "seed"):
            assert key in f.attrs
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary left


def test_invalid_arrays_are_refused_and_nothing_is_written(tmp_path: Path, kd1k_arrays: dict) -> None:
    bad = dict(kd1k_arrays, rewards=kd1k_arrays["rewards"][:-1])
    with pytest.raises(OffbenchError, match="rewards"):
        store.write(tmp_path / "x.hdf5", bad, {})
    missing = {k: v for k, v in kd1k_arrays.items() if k != "timeouts"}
    with pytest.raises(OffbenchError, match="timeouts"):
        store.write(tmp_path / "x.hdf5", missing, {})
    assert list(tmp_path.iterdir()) == []


def test_a_digest_mismatch_is_an_error_and_nothing_is_cached(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offbench.data.spec import registry_path

    text = registry_path().read_text().replace(PINNED_1K, "f" * 64)
    toml = isolated / "datasets.toml"
    toml.write_text(text)
    monkeypatch.setenv("OFFBENCH_DATASETS", str(toml))
    with pytest.raises(OffbenchError, match="differs from the pinned"):
        cache.fetch("keytodoor-1k")
    assert not cache.is_cached("keytodoor-1k")
    assert not (isolated / "cache" / "datasets").exists() or not any((isolated / "cache" / "datasets").iterdir())


def test_a_truncated_cache_file_is_a_clear_error(isolated: Path) -> None:
    path = cache.fetch("keytodoor-1k")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(OffbenchError, match="delete it and fetch again"):
        cache.load("keytodoor-1k")
