"""Minari datasets through minari's own API, made offline with create_dataset_from_buffers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from offbench.data import cache
from offbench.errors import OffbenchError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

LENGTHS = [12, 30, 7]


def make_hopper_medium(minari_root: Path) -> list[dict]:
    """A tiny dataset under the id of ``hopper-medium-minari`` (11-dim observations, 3-dim actions)."""
    from minari import create_dataset_from_buffers
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(0)
    episodes, buffers = [], []
    for i, t in enumerate(LENGTHS):
        ep = {"observations": rng.normal(size=(t + 1, 11)).astype(np.float32),
              "actions": rng.uniform(-1, 1, size=(t, 3)).astype(np.float32),
              "rewards": rng.uniform(0, 2, size=t), "terminations": [False] * (t - 1) + [i != 1],
              "truncations": [False] * (t - 1) + [i == 1]}
        episodes.append(ep)
        buffers.append(EpisodeBuffer(id=i, observations=list(ep["observations"]), actions=list(ep["actions"]),
                                     rewards=list(ep["rewards"]), terminations=ep["terminations"],
                                     truncations=ep["truncations"], infos={}))
    create_dataset_from_buffers(
        "mujoco/hopper/medium-v0", buffers,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (11,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (3,), np.float32),
        algorithm_name="test", description="offbench test data", code_permalink="https://example.org/offbench",
        author="offbench tests", author_email="tests@example.org",
    )
    # create_dataset_from_buffers records reference scores only when it can make the env and roll
    # out policies; set them as a published dataset carries them, through minari's storage API.
    import minari

    minari.load_dataset("mujoco/hopper/medium-v0").storage.update_metadata(
        {"ref_min_score": -20.0, "ref_max_score": 3000.0})
    return episodes


def test_minari_dataset_is_imported_with_its_reference_returns(minari_root: Path) -> None:
    episodes = make_hopper_medium(minari_root)
    cache.fetch("hopper-medium-minari")
    data = cache.load("hopper-medium-minari", fetch_missing=False)
    np.testing.assert_array_equal(data.episode_starts, [0, 12, 42])
    np.testing.assert_array_equal(data.observations, np.concatenate([e["observations"][:-1] for e in episodes]))
    np.testing.assert_array_equal(data.next_observations, np.concatenate([e["observations"][1:] for e in episodes]))
    np.testing.assert_array_equal(data.actions, np.concatenate([e["actions"] for e in episodes]))
    np.testing.assert_allclose(data.episode_returns, [e["rewards"].sum() for e in episodes], rtol=1e-6)
    assert data.timeouts.sum() == 1 and data.terminals.sum() == 2
    spec = cache.run_spec("hopper-medium-minari")
    assert (spec.ref_min_return, spec.ref_max_return) == (-20.0, 3000.0)
    facts = cache.info("hopper-medium-minari")
    assert facts["minari_id"] == "mujoco/hopper/medium-v0" and facts["ref_max_return"] == 3000.0
    assert spec.normalize(3000.0) == pytest.approx(100.0)


def test_minari_from_dir_and_a_bad_metadata_json(minari_root: Path, tmp_path: Path) -> None:
    make_hopper_medium(minari_root)
    copy = tmp_path / "copied" / "medium-v0"
    shutil.copytree(minari_root / "mujoco" / "hopper" / "medium-v0", copy)
    cache.fetch("hopper-medium-minari", local=copy)
    first = cache.info("hopper-medium-minari")["content_sha256"]
    assert cache.info("hopper-medium-minari")["origin"] == str(copy.resolve())
    meta = copy / "data" / "metadata.json"
    meta.write_text(meta.read_text()[:-20])
    with pytest.raises(OffbenchError, match=r"metadata\.json: not valid JSON"):
        cache.fetch("hopper-medium-minari", local=copy)
    good = json.loads((minari_root / "mujoco" / "hopper" / "medium-v0" / "data" / "metadata.json").read_text())
    del good["total_steps"]
    meta.write_text(json.dumps(good))
    with pytest.raises(OffbenchError, match=r"metadata\.json: missing total_steps"):
        cache.fetch("hopper-medium-minari", local=copy)
    assert cache.info("hopper-medium-minari")["content_sha256"] == first  # the cached copy is untouched


def test_minari_download_failure_is_one_line(minari_root: Path) -> None:
    with pytest.raises(OffbenchError, match="cannot download minari dataset mujoco/walker2d/expert-v0") as e:
        cache.fetch("walker2d-expert-minari")
    assert "\n" not in str(e.value) and "--from-dir" in str(e.value)
    assert not cache.is_cached("walker2d-expert-minari")


def test_library_loggers_stay_quiet_until_the_last_download_thread_is_done() -> None:
    import logging
    import threading

    from offbench.data.sources.minari import _quiet

    pytest.importorskip("huggingface_hub.utils.logging")  # configures its logger's level on import
    hub = logging.getLogger("huggingface_hub")
    before = hub.level
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with _quiet("huggingface_hub", "minari"):
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with _quiet("huggingface_hub", "minari"):
            second_in.set()
            first_out.wait(10)
            # the first download is done, this one still retries: its log lines must stay silent
            seen.append(logging.getLogger("huggingface_hub.utils._http").getEffectiveLevel())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == [logging.CRITICAL]
    assert hub.level == before
