"""Several seeds trained as one model compute exactly what each seed computes alone (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from offbench.algos import get_algorithm
from offbench.algos.base import Algorithm
from offbench.batches import SeedBatches
from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec
from tests.test_algorithms import SPEC, toy_dataset

SEEDS = [3, 0, 11]
DISCRETE = DatasetSpec(name="toy-discrete", domain="keytodoor", source="test", env="KeyToDoor-v0",
                       max_episode_steps=25, ref_min_return=0.0, ref_max_return=1.0, target_returns=(1.0,))
SMALL = {"hidden": "[32, 32]", "batch_size": "16"}
CONFIGS = {
    "bc": SMALL, "pbc": SMALL, "rwr": SMALL, "awr": SMALL, "td3bc": SMALL, "iql": SMALL, "awac": SMALL,
    "cql": {**SMALL, "n_actions": "3"},
    "dt": {"embed_dim": "16", "n_layers": "2", "n_heads": "2", "context": "5", "batch_size": "8", "dropout": "0.1",
           "warmup_steps": "3"},
}


def discrete_dataset() -> Dataset:
    data = toy_dataset(obs_dim=4)
    data.actions = np.random.default_rng(5).integers(0, 3, len(data))
    return data


def build(name: str, data: Dataset, spec: DatasetSpec, seeds: list[int]) -> tuple[Algorithm, SeedBatches]:
    cls = get_algorithm(name)
    cfg = cls.Config.for_dataset(spec).with_overrides(CONFIGS[name])
    algo = cls.for_data(cfg, data, spec, torch.device("cpu"), seeds)
    return algo, SeedBatches([algo.make_sampler(data, np.random.default_rng(s)) for s in seeds])


def train(algo: Algorithm, sampler: SeedBatches, steps: int) -> list[dict[str, np.ndarray]]:
    return [{k: v.detach().numpy().copy() for k, v in algo.update(sampler.sample()).items()} for _ in range(steps)]


def flat_tensors(state: object, skip: str = "") -> list[torch.Tensor]:
    """Every tensor of a state, in a fixed order; those whose path contains ``skip`` are left out."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state, key=str) if not (skip and skip in str(k)) for t in flat_tensors(state[k], skip)]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in flat_tensors(v, skip)]
    return []


# Training S seeds as one model is claimed to compute *mathematically* what each seed computes
# alone; only the order of floating-point operations differs (batched vs single matmuls, a grouped
# vs a plain convolution, kernels chosen per CPU: AVX-512, AVX2, SSE4.1). The equivalence tests
# therefore compute in float64 (``float64`` fixture), where that reordering costs far less than any
# real difference could hide in. The tolerance follows from it: a sum of n products carries a
# relative error of at most about n * u (u = 2**-53 ~ 1.1e-16); the longest sums here are the
# convolution weight gradients (n ~ 1e6 terms: batch x output positions), so a gradient may differ
# by ~1e-10 relative. Adam moves a parameter by at most ~lr per step and the difference in that
# move is at most ~lr times the gradient's relative difference, so after k <= 12 steps at lr
# <= 1e-3 parameters differ by ~1e-12 absolute. RTOL/ATOL below sit a thousand times above that
# and still far below anything a real mismatch produces (another sample, generator, dropout mask
# or a seed mixed into another's parameters moves values by O(lr) ~ 1e-4 or more). In float32 the
# same argument fails: a gradient that is zero in exact arithmetic (an attention key bias, which the
# softmax cancels) is pure rounding noise of ~1e-8, the size of Adam's eps, so Adam turns it into
# lr-sized steps whose sign depends on the CPU's kernels; in float64 that noise (~1e-17) stays
# ~1e-9 of eps and moves nothing.
RTOL, ATOL = 1e-7, 1e-9


def assert_same_state(a: dict, b: dict) -> None:
    ta, tb = flat_tensors(a), flat_tensors(b)
    assert len(ta) == len(tb) and ta
    for x, y in zip(ta, tb):
        if x.is_floating_point():
            # every parameter and optimizer moment in float64 (0-d step counters keep their own type)
            assert x.dtype == torch.float64 or x.ndim == 0, "equivalence tests must compute in float64"
            torch.testing.assert_close(x, y, rtol=RTOL, atol=ATOL)
        else:
            assert torch.equal(x, y)


CASES = [(n, False) for n in CONFIGS] + [("bc", True), ("cql", True), ("dt", True)]


@pytest.mark.parametrize(("name", "discrete"), CASES, ids=[f"{n}{'-discrete' if d else ''}" for n, d in CASES])
def test_seeds_trained_together_match_each_seed_trained_alone(name: str, discrete: bool, float64: None) -> None:
    data, spec = (discrete_dataset(), DISCRETE) if discrete else (toy_dataset(), SPEC)
    together, sampler = build(name, data, spec, SEEDS)
    metrics_together = train(together, sampler, 12)
    states = together.seed_states()
    for i, seed in enumerate(SEEDS):
        alone, alone_sampler = build(name, data, spec, [seed])
        metrics_alone = train(alone, alone_sampler, 12)
        assert_same_state(states[i], alone.seed_states()[0])
        for m_t, m_a in zip(metrics_together, metrics_alone):
            for key in m_a:
                np.testing.assert_allclose(m_t[key][i], m_a[key][0], rtol=RTOL, atol=ATOL)
    # different seeds really are different models
    assert not torch.allclose(flat_tensors(states[0])[0], flat_tensors(states[1])[0])


@pytest.mark.parametrize("name", ["bc", "cql", "dt"])
def test_frame_stack_models_trained_together_match_each_seed_alone(name: str, float64: None) -> None:
    """The Nature-DQN encoder per seed (a grouped convolution) on (4, 84, 84) frame stacks."""
    rng = np.random.default_rng(0)
    n = 24
    stack = np.stack([np.clip(np.arange(n)[:, None] - k, -1, None) for k in (3, 2, 1, 0)], axis=1)[:, :, 0]
    data = Dataset(observations=rng.integers(0, 255, (n, 84, 84), dtype=np.uint8),
                   actions=rng.integers(0, 4, n), rewards=rng.uniform(0, 1, n).astype(np.float32),
                   terminals=np.eye(1, n, n - 1, dtype=bool)[0], timeouts=np.zeros(n, bool),
                   episode_starts=np.array([0]), stack_indices=stack)
    spec = DatasetSpec(name="toy-atari", domain="atari", source="test", env="PongNoFrameskip-v4",
                       max_episode_steps=100, ref_min_return=0.0, ref_max_return=1.0, target_returns=(1.0,))
    small = {"bc": {"batch_size": "4"}, "cql": {"batch_size": "4"},
             "dt": {"batch_size": "2", "context": "4", "embed_dim": "16", "n_layers": "1", "n_heads": "1"}}[name]
    cls = get_algorithm(name)
    cfg = cls.Config.for_dataset(spec).with_overrides(small)

    def trained(seeds: list[int]) -> list[dict]:
        algo = cls.for_data(cfg, data, spec, torch.device("cpu"), seeds)
        train(algo, SeedBatches([algo.make_sampler(data, np.random.default_rng(s)) for s in seeds]), 3)
        return algo.seed_states()

    together = trained(SEEDS[:2])
    for i, seed in enumerate(SEEDS[:2]):
        assert_same_state(together[i], trained([seed])[0])


@pytest.mark.parametrize("name", ["td3bc", "dt"])
def test_a_seed_split_out_of_a_group_continues_as_if_it_had_trained_alone(name: str, float64: None) -> None:
    data = toy_dataset()
    together, sampler = build(name, data, SPEC, SEEDS)
    train(together, sampler, 6)
    # resume seed 0 alone and seeds 3, 11 together (another grouping) from the group's per-seed states
    states = dict(zip(SEEDS, together.seed_states()))
    rng_states = {s: smp.rng.bit_generator.state for s, smp in zip(SEEDS, sampler.samplers)}
    results = {}
    for group in ([0], [3, 11]):
        algo, smp = build(name, data, SPEC, group)
        algo.load_seed_states([states[s] for s in group])
        for s, part in zip(group, smp.samplers):
            part.rng.bit_generator.state = rng_states[s]
        train(algo, smp, 6)
        results.update(zip(group, algo.seed_states()))
    for seed in SEEDS:
        alone, smp = build(name, data, SPEC, [seed])
        train(alone, smp, 12)
        assert_same_state(results[seed]["algo"], alone.seed_states()[0]["algo"])


def test_evaluation_of_a_group_matches_each_seed_evaluated_alone(kd1k_arrays: dict) -> None:
    from offbench.data.spec import get_spec
    from offbench.evaluate import rollout

    data, spec = Dataset.from_arrays(kd1k_arrays), get_spec("keytodoor-1k")
    together, _ = build("bc", data, spec, SEEDS)
    together.config.sample_actions = True  # exercise the per-seed action sampling
    evs = rollout(together.policy(None, [torch.Generator().manual_seed(100 + s) for s in SEEDS]),
                  spec, 4, [7 + s for s in SEEDS])
    for i, seed in enumerate(SEEDS):
        alone, _ = build("bc", data, spec, [seed])
        alone.config.sample_actions = True
        ev = rollout(alone.policy(None, [torch.Generator().manual_seed(100 + seed)]), spec, 4, [7 + seed])[0]
        np.testing.assert_allclose(evs[i].returns, ev.returns)
        np.testing.assert_array_equal(evs[i].lengths, ev.lengths)


def test_run_with_seeds_together_gives_the_records_of_separate_runs(isolated: Path) -> None:
    from offbench.launch import plan_runs, run_plans

    sets = ["eval_every=10", "eval_episodes=6", "dt.embed_dim=16", "dt.n_layers=1"]
    together = plan_runs(["keytodoor-1k"], ["dt", "bc"], 3, isolated / "together", sets, steps=20)
    alone = plan_runs(["keytodoor-1k"], ["dt", "bc"], 3, isolated / "alone", sets, steps=20)
    out = run_plans(together, device="cpu", workers=1, seeds_together=3)
    assert not out.failed and len(out.finished) == 6
    assert {s["seeds_together"] for s in out.finished} == {3}
    out = run_plans(alone, device="cpu", workers=1, seeds_together=1)
    assert {s["seeds_together"] for s in out.finished} == {1}
    for a, b in zip(together, alone):
        sa, sb = json.loads(a.dir.summary.read_text()), json.loads(b.dir.summary.read_text())
        assert sa["score_last"] == pytest.approx(sb["score_last"]) and sa["return_best"] == pytest.approx(sb["return_best"])
        train_a = [json.loads(line) for line in a.dir.metrics.read_text().splitlines()]
        train_b = [json.loads(line) for line in b.dir.metrics.read_text().splitlines()]
        assert [r["step"] for r in train_a] == [r["step"] for r in train_b]
        for ra, rb in zip(train_a, train_b):
            if ra["kind"] == "train":
                assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("stored_next", [False, True])
def test_device_resident_batches_equal_host_batches(stored_next: bool) -> None:
    from offbench.batches import DeviceBatches

    data = toy_dataset()
    if stored_next:
        data.next_observations = data.observations[::-1].copy()
    algo, host = build("awr", data, SPEC, SEEDS)
    dev = DeviceBatches([algo.make_sampler(data, np.random.default_rng(s)) for s in SEEDS], torch.device("cpu"))
    assert DeviceBatches.suitable(dev.samplers)
    for _ in range(3):
        a, b = host.sample(), dev.sample()
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key].numpy(), err_msg=key)


def test_grouping_on_a_cpu_keeps_workers_busy_and_heavy_algorithms_apart(isolated: Path) -> None:
    from offbench.launch import group_seeds, plan_runs

    plans = plan_runs(["keytodoor-1k"], ["bc", "dt"], 5, isolated / "results")
    sizes = {a: sorted(len(g) for g in group_seeds(plans, parts=2, cpu=True) if g[0].algo == a) for a in ("bc", "dt")}
    assert sizes == {"bc": [5], "dt": [1] * 5}  # dt: cpu_seeds_together = 1
    gpu = group_seeds(plans)
    assert sorted(len(g) for g in gpu) == [5, 5] and all(len({p.algo for p in g}) == 1 for g in gpu)
    halves = group_seeds([p for p in plans if p.algo == "bc"], parts=2, cpu=True)
    assert sorted(len(g) for g in halves) == [2, 3]


def test_a_checkpoint_from_an_older_offbench_is_refused_in_one_line(isolated: Path) -> None:
    from offbench.errors import OffbenchError
    from offbench.launch import plan_runs
    from offbench.train import execute

    plan = plan_runs(["keytodoor-1k"], ["bc"], 1, isolated / "results", steps=10)[0]
    plan.dir.root.mkdir(parents=True)
    torch.save({"step": 5, "algo": {}}, plan.dir.checkpoint)  # format 1: no "format" key
    with pytest.raises(OffbenchError, match="written by an older offbench") as err:
        execute(plan, device="cpu")
    assert "\n" not in str(err.value) and str(plan.dir.checkpoint) in str(err.value)
    assert plan.dir.checkpoint.is_file()  # nothing deleted
