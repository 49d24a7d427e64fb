"""Dataset sources against files in the exact upstream layouts, served from 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from offbench.data import cache
from offbench.data.spec import all_specs
from offbench.errors import OffbenchError
from tests.test_cli import offbench, one_line_error
from tests.upstream import d4rl_arrays, serve, write_d4rl

LENGTHS = [30, 40, 25, 50, 7]  # terminal, timeout, terminal, timeout, terminal


@pytest.fixture
def mirror(tmp_path: Path):
    """A loopback server over an empty directory laid out like the D4RL bucket."""
    root = tmp_path / "upstream"
    root.mkdir()
    with serve(root) as server:
        yield root, server


def hopper_file(root: Path, level: str = "medium", dtype: type = np.float32, **kw) -> tuple[Path, dict]:
    arrays = d4rl_arrays(LENGTHS, obs_dim=11, act_dim=3, dtype=dtype, **kw)
    path = write_d4rl(root / "gym_mujoco_v2" / f"hopper_{level.replace('-', '_')}-v2.hdf5", arrays,
                      metadata=level in ("medium", "expert"))
    return path, arrays


def test_d4rl_fetch_from_a_mirror_gives_the_same_arrays_and_records_provenance(mirror) -> None:
    root, server = mirror
    path, src = hopper_file(root)
    cache.fetch("hopper-medium", mirror=server.url)
    data = cache.load("hopper-medium", fetch_missing=False)
    for k in ("observations", "actions", "rewards", "terminals", "timeouts"):
        np.testing.assert_array_equal(getattr(data, k), src[k])
    np.testing.assert_array_equal(data.next_observations, src["next_observations"])
    # episodes split at both terminals and timeouts
    np.testing.assert_array_equal(data.episode_starts, [0, 30, 70, 95, 145])
    ends = np.cumsum(LENGTHS)
    expected = [src["rewards"][s:e].astype(np.float64).sum() for s, e in zip(ends - LENGTHS, ends)]
    np.testing.assert_allclose(data.episode_returns, expected, rtol=1e-6)
    facts = cache.info("hopper-medium")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert facts["file_sha256"] == digest
    assert facts["origin"] == server.url + "gym_mujoco_v2/hopper_medium-v2.hdf5"
    assert facts["downloaded"] and facts["episodes"] == 5
    record = json.loads(next((cache.dataset_path("hopper-medium").parents[1] / "downloads").rglob("*.json")).read_text())
    assert record["sha256"] == digest and record["size"] == path.stat().st_size
    # a second fetch neither downloads nor rewrites
    before = cache.dataset_path("hopper-medium").stat().st_mtime_ns
    server.requests.clear()
    cache.fetch("hopper-medium", mirror=server.url)
    assert server.requests == [] and cache.dataset_path("hopper-medium").stat().st_mtime_ns == before


def test_float64_medium_replay_is_stored_as_float32(mirror) -> None:
    root, server = mirror
    _, src = hopper_file(root, "medium-replay", dtype=np.float64)
    cache.fetch("hopper-medium-replay", mirror=server.url)
    data = cache.load("hopper-medium-replay", fetch_missing=False)
    assert data.observations.dtype == np.float32 and data.actions.dtype == np.float32
    np.testing.assert_array_equal(data.observations, src["observations"].astype(np.float32))


@pytest.mark.parametrize("cuts", [(0,), (1,), (1 / 3, 1 / 3), (-1,)])
def test_an_interrupted_download_resumes_and_ends_byte_identical(mirror, cuts) -> None:
    root, server = mirror
    path, _ = hopper_file(root)
    rel = "gym_mujoco_v2/hopper_medium-v2.hdf5"
    size = path.stat().st_size
    offset = 0
    for cut in cuts:  # each attempt is cut after some bytes (a fraction of the file, or -1: all but one)
        n = size - offset - 1 if cut == -1 else int(cut * size) if isinstance(cut, float) else cut
        server.cut_after[rel] = n
        with pytest.raises(OffbenchError, match=r"stopped at [\d,]+ of [\d,]+ bytes; run the same fetch again"):
            cache.fetch("hopper-medium", mirror=server.url)
        assert server.requests[-1] == (rel, f"bytes={offset}-" if offset else None)
        offset += n
        assert not cache.is_cached("hopper-medium")
        part = next((cache.dataset_path("hopper-medium").parents[1] / "downloads").rglob("*.part"))
        assert part.stat().st_size == offset
    cache.fetch("hopper-medium", mirror=server.url)
    assert server.requests[-1] == (rel, f"bytes={offset}-" if offset else None)
    kept = cache.dataset_path("hopper-medium").parents[1] / "downloads" / "d4rl" / rel
    assert kept.read_bytes() == path.read_bytes()


def test_a_dropped_chunked_download_without_content_length_is_not_cached(mirror) -> None:
    root, server = mirror
    path, _ = hopper_file(root)
    rel = "gym_mujoco_v2/hopper_medium-v2.hdf5"
    server.chunked.add(rel)
    server.cut_after[rel] = path.stat().st_size // 2  # the connection closes in the middle of a chunk
    with pytest.raises(OffbenchError, match=r"stopped at [\d,]+ of an unknown number of bytes; run the same fetch"):
        cache.fetch("hopper-medium", mirror=server.url)
    assert not cache.is_cached("hopper-medium")
    downloads = cache.dataset_path("hopper-medium").parents[1] / "downloads" / "d4rl" / rel
    kept = downloads.with_name(downloads.name + ".part").stat().st_size
    assert not downloads.exists() and 0 < kept < path.stat().st_size
    assert path.read_bytes()[:kept] == downloads.with_name(downloads.name + ".part").read_bytes()
    cache.fetch("hopper-medium", mirror=server.url)  # resumes where the kept bytes end
    assert server.requests[-1] == (rel, f"bytes={kept}-") and downloads.read_bytes() == path.read_bytes()


def test_cli_download_failure_is_one_line_with_alternatives_and_exit_1(tmp_path: Path) -> None:
    line = one_line_error(offbench("fetch", "walker2d-medium", "--mirror", "http://127.0.0.1:9/"), 1)
    assert "http://127.0.0.1:9/gym_mujoco_v2/walker2d_medium-v2.hdf5" in line
    assert "--mirror" in line and "--from-file" in line
    assert not list((tmp_path / "cache").rglob("*.hdf5"))
    # the environment variable works the same way
    line = one_line_error(offbench("fetch", "walker2d-medium", env={"OFFBENCH_MIRROR": "http://127.0.0.1:9/x/"}), 1)
    assert "http://127.0.0.1:9/x/gym_mujoco_v2/walker2d_medium-v2.hdf5" in line


def test_a_truncated_hdf5_file_is_not_cached_and_the_download_is_discarded(mirror) -> None:
    root, server = mirror
    path, _ = hopper_file(root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OffbenchError, match=r"hopper_medium-v2\.hdf5.*(not a readable HDF5|damaged)"):
        cache.fetch("hopper-medium", mirror=server.url)
    assert not cache.is_cached("hopper-medium")
    left = (cache.dataset_path("hopper-medium").parents[1] / "downloads").rglob("*.hdf5*")
    assert [p.suffix for p in left] == [".lock"]  # only the (empty) lock file stays


@pytest.mark.parametrize("damage, message", [
    ("drop_rewards", "missing rewards"),
    ("wide_obs", r"'observations' has shape \(152, 12\), expected \(152, 11\)"),
    ("short_actions", r"'actions' has shape \(151, 3\), expected \(152, 3\)"),
])
def test_malformed_d4rl_files_name_the_problem(tmp_path: Path, damage: str, message: str) -> None:
    src = d4rl_arrays(LENGTHS, obs_dim=11, act_dim=3)
    if damage == "drop_rewards":
        del src["rewards"]
    elif damage == "wide_obs":
        src["observations"] = np.zeros((152, 12), np.float32)
    else:
        src["actions"] = src["actions"][:-1]
    path = write_d4rl(tmp_path / "bad.hdf5", src)
    with pytest.raises(OffbenchError, match=message) as e:
        cache.fetch("hopper-medium", local=path)
    assert str(path) in str(e.value)
    assert not cache.is_cached("hopper-medium")


def test_from_file_import_matches_a_download(mirror, tmp_path: Path) -> None:
    root, server = mirror
    path, _ = hopper_file(root)
    p = offbench("fetch", "hopper-medium", "--from-file", str(path))
    assert p.returncode == 0, p.stderr
    imported = cache.info("hopper-medium")
    assert imported["origin"] == str(path.resolve())
    cache.fetch("hopper-medium", force=True, mirror=server.url)
    assert cache.info("hopper-medium")["content_sha256"] == imported["content_sha256"]
    line = one_line_error(offbench("fetch", "hopper-medium", "hopper-expert", "--from-file", str(path)), 2)
    assert "one dataset" in line


def registry(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "datasets.toml"
    path.write_text(text)
    monkeypatch.setenv("OFFBENCH_DATASETS", str(path))


D4RL_ENTRY = """
[{name}]
domain = "mujoco"
source = "d4rl"
env = "Hopper-v4"
max_episode_steps = 1000
ref_min_return = 0.0
ref_max_return = 100.0
target_returns = [1.0]
base_url = "{url}"
file = "{file}"
observation_dim = 11
action_dim = 3
"""


def test_a_pinned_checksum_mismatch_discards_the_file(mirror, tmp_path: Path, monkeypatch) -> None:
    root, server = mirror
    hopper_file(root)
    registry(tmp_path, D4RL_ENTRY.format(name="h", url=server.url, file="gym_mujoco_v2/hopper_medium-v2.hdf5")
             + f'file_sha256 = "{"0" * 64}"\n', monkeypatch)
    with pytest.raises(OffbenchError, match="differs from the pinned 0000000000000000"):
        cache.fetch("h")
    assert not cache.is_cached("h")
    assert [p.name for p in (tmp_path / "cache").rglob("*.hdf5*")] == ["hopper_medium-v2.hdf5.lock"]


@pytest.mark.parametrize("name, file", [("../../evil", "gym_mujoco_v2/hopper_medium-v2.hdf5"),
                                        ("ok", "../../../evil.hdf5")])
def test_names_and_paths_cannot_write_outside_the_cache(mirror, tmp_path: Path, monkeypatch, name, file) -> None:
    root, server = mirror
    hopper_file(root)
    registry(tmp_path, D4RL_ENTRY.format(name=f'"{name}"', url=server.url, file=file), monkeypatch)
    with pytest.raises(OffbenchError, match="refusing to write outside"):
        cache.fetch(name)
    assert not list(tmp_path.rglob("evil*"))


def test_sparse_variant_keeps_each_episode_return(mirror) -> None:
    root, server = mirror
    hopper_file(root)
    assert "hopper-medium-sparse" in all_specs()
    cache.fetch("hopper-medium-sparse", mirror=server.url)  # fetches the base
    assert cache.is_cached("hopper-medium")
    dense, sparse = cache.load("hopper-medium"), cache.load("hopper-medium-sparse")
    np.testing.assert_allclose(sparse.episode_returns, dense.episode_returns, rtol=1e-6)
    last = np.zeros(len(dense), bool)
    last[dense.episode_ends - 1] = True
    assert np.all(sparse.rewards[~last] == 0)
    np.testing.assert_array_equal(sparse.returns_to_go[dense.episode_starts], sparse.episode_returns)
    assert cache.info("hopper-medium-sparse")["reward"] == "delayed"


def test_delayed_reward_env_pays_the_same_return_at_the_end() -> None:
    from offbench.data.spec import get_spec
    from offbench.envs.factory import make_env

    spec = get_spec("keytodoor-1k-sparse")
    dense, sparse = make_env(get_spec("keytodoor-1k")), make_env(spec)
    for seed in range(40):
        totals = []
        for env in (dense, sparse):
            env.reset(seed=seed)
            rng, done, rewards = np.random.default_rng(seed), False, []
            while not done:
                _, r, term, trunc, _ = env.step(int(rng.integers(4)))
                rewards.append(r)
                done = term or trunc
            totals.append(sum(rewards))
        assert totals[0] == totals[1] and all(r == 0 for r in rewards[:-1])


def test_a_full_disk_is_an_error_not_a_corrupt_cache(mirror, tmp_path: Path) -> None:
    root, server = mirror
    path, _ = hopper_file(root)
    limit = path.stat().st_size // 2
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d)); "
            "from offbench.cli import main; sys.argv = ['offbench'] + sys.argv[1:]; main()") % (limit, limit)
    p = subprocess.run([sys.executable, "-c", code, "fetch", "hopper-medium", "--mirror", server.url],
                       capture_output=True, text=True, env=os.environ, timeout=120)
    line = one_line_error(p, 1)
    assert "disk full" in line
    assert not cache.is_cached("hopper-medium")
    assert not list((tmp_path / "cache").rglob("*.part")) and not list((tmp_path / "cache").rglob("*.hdf5"))


def test_mirrors_are_tried_in_order_until_one_serves_the_file(tmp_path: Path) -> None:
    """Three mirrors: the first answers 404 (an empty tree), the second an HTML page for every
    path, the third holds the file. The fetch ends with the third's file, named in the record."""
    empty, portal, good = (tmp_path / n for n in ("empty", "portal", "good"))
    for root in (empty, portal, good):
        root.mkdir()
    path, src = hopper_file(good)
    with serve(empty) as a, serve(portal) as b, serve(good) as c:
        b.html = True
        cache.fetch("hopper-medium", mirror=(a.url, b.url, c.url))
        assert [r[0] for r in a.requests] == [r[0] for r in b.requests] == ["gym_mujoco_v2/hopper_medium-v2.hdf5"]
    data = cache.load("hopper-medium", fetch_missing=False)
    np.testing.assert_array_equal(data.observations, src["observations"])
    assert cache.info("hopper-medium")["origin"] == c.url + "gym_mujoco_v2/hopper_medium-v2.hdf5"


def test_when_every_mirror_refuses_the_error_names_each_and_nothing_is_cached(tmp_path: Path) -> None:
    empty, portal = tmp_path / "empty", tmp_path / "portal"
    empty.mkdir()
    portal.mkdir()
    with serve(empty) as a, serve(portal) as b:
        b.html = True
        with pytest.raises(OffbenchError) as err:
            cache.fetch("hopper-medium", mirror=(a.url, b.url))
    line = str(err.value)
    assert "\n" not in line and "from any of 2 places" in line
    assert f"{a.url}gym_mujoco_v2/hopper_medium-v2.hdf5: HTTP 404" in line and "HTML page" in line
    assert not cache.dataset_path("hopper-medium").exists()
    assert not list((tmp_path / "cache").rglob("*.hdf5"))  # the portal's page was not kept as the file


def test_datasets_toml_mirrors_follow_the_upstream_base_url(tmp_path: Path) -> None:
    """A spec's ``mirrors`` (after its ``base_url``) are used without --mirror."""
    from offbench.data.sources.base import FetchContext
    from offbench.data.spec import get_spec

    spec = get_spec("hopper-medium")
    spec = dataclasses.replace(spec, params={**spec.params, "mirrors": ["http://m1/", "http://m2/"]})
    job = FetchContext(downloads=tmp_path).downloads_of(spec, "gym_mujoco_v2/x.hdf5")
    assert job.urls == (spec.params["base_url"] + "gym_mujoco_v2/x.hdf5", "http://m1/gym_mujoco_v2/x.hdf5",
                        "http://m2/gym_mujoco_v2/x.hdf5")
    given = FetchContext(downloads=tmp_path, mirror=("http://a/", "http://b/")).downloads_of(spec, "f")
    assert given.urls == ("http://a/f", "http://b/f")  # mirrors given on the command line replace the list


def test_fetch_takes_several_mirrors_on_the_command_line(tmp_path: Path) -> None:
    empty, good = tmp_path / "empty", tmp_path / "good"
    empty.mkdir()
    hopper_file(good)
    with serve(empty) as a, serve(good) as b:
        p = offbench("fetch", "hopper-medium", "--mirror", a.url, "--mirror", b.url)
        assert p.returncode == 0 and "hopper-medium: cached" in p.stdout, p.stderr
        assert len(a.requests) == 1 and len(b.requests) == 1
    p = offbench("info", "hopper-medium")
    assert b.url in p.stdout
