"""Decision Transformer and BC/%BC follow their published recipes (kzl/decision-transformer, CORL)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from offbench.algos import get_algorithm
from offbench.algos.bc import WindowPolicy
from offbench.algos.dt import DT, DecisionTransformer, DTConfig, EndAlignedWindowSampler
from offbench.algos.seeded import SeedConv2d, SeedLinear, seeded_init
from offbench.batches import SeedBatches
from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec, get_spec
from offbench.data.variants import top_fraction
from offbench.errors import UsageError
from tests.test_algorithms import SPEC, toy_dataset
from tests.test_seed_batching import RTOL, ATOL, SEEDS, assert_same_state, train

ATARI = DatasetSpec(name="toy-atari", domain="atari", source="test", env="PongNoFrameskip-v4",
                    max_episode_steps=100, ref_min_return=0.0, ref_max_return=1.0, target_returns=(1.0,))


def frames_dataset(lengths: tuple[int, ...] = (7, 3, 6), seed: int = 0) -> Dataset:
    """Frame-stacked episodes (zero frames before each start), single 84x84 frames stored once."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    starts = np.cumsum([0, *lengths[:-1]])
    t = np.arange(n) - np.repeat(starts, lengths)
    stack = np.stack([np.where(t - k >= 0, np.arange(n) - k, -1) for k in (3, 2, 1, 0)], axis=1)
    terminals = np.zeros(n, bool)
    terminals[np.cumsum(lengths) - 1] = True
    return Dataset(observations=rng.integers(0, 255, (n, 84, 84), dtype=np.uint8), actions=rng.integers(0, 4, n),
                   rewards=rng.uniform(0, 1, n).astype(np.float32), terminals=terminals, timeouts=np.zeros(n, bool),
                   episode_starts=starts, stack_indices=stack.astype(np.int32))


def std_of(p: torch.Tensor) -> float:
    return float(p.detach().double().std())


# -- Decision Transformer: recipes and init ---------------------------------------------------------

def test_dt_paper_init_is_normal_in_the_gpt2_blocks_only() -> None:
    """kzl gym: GPT2Model.init_weights reaches the blocks; DT's own layers keep PyTorch's init."""
    cfg = DTConfig.for_dataset(get_spec("hopper-medium"), "paper")
    assert cfg.init == "gpt2-blocks" and (cfg.batch_size, cfg.lr, cfg.activation) == (64, 1e-4, "relu")
    with seeded_init([0]):
        m = DecisionTransformer((11,), 3, False, 1000, cfg)
    for block in m.blocks:
        for layer in (block.qkv, block.proj, block.fc, block.out):
            assert std_of(layer.weight) == pytest.approx(0.02, rel=0.03) and not layer.bias.any()
        assert (block.ln1.weight == 1).all() and not block.ln1.bias.any()
    # nn.Linear's default: uniform in +-1/sqrt(fan_in), std 1/sqrt(3 fan_in); nn.Embedding's: N(0, 1)
    assert std_of(m.embed_state.weight) == pytest.approx(1 / math.sqrt(3 * 11), rel=0.1)
    assert m.embed_state.bias.abs().max() > 0.05
    assert std_of(m.predict_action.weight) == pytest.approx(1 / math.sqrt(3 * 128), rel=0.1)
    assert std_of(m.embed_timestep.weight) == pytest.approx(1.0, rel=0.02)
    assert m.embed_ln is not None and m.positions == "timestep"


def test_dt_corl_recipe_is_the_d4rl_default_with_normal_init_everywhere() -> None:
    spec = get_spec("hopper-medium")
    cfg = DTConfig.for_dataset(spec)
    assert cfg.recipe == "corl"
    assert (cfg.batch_size, cfg.lr, cfg.activation, cfg.init, cfg.eval_every, cfg.eval_episodes) == \
        (4096, 8e-4, "gelu", "normal-all", 5_000, 100)
    # everything else as the paper's gym recipe (CORL's YAMLs)
    assert (cfg.context, cfg.embed_dim, cfg.n_layers, cfg.n_heads, cfg.dropout, cfg.weight_decay, cfg.warmup_steps,
            cfg.grad_clip, cfg.steps, cfg.rtg_scale, tuple(cfg.betas)) == \
        (20, 128, 3, 1, 0.1, 1e-4, 10_000, 0.25, 100_000, 1000.0, (0.9, 0.999))
    with seeded_init([0]):
        m = DecisionTransformer((11,), 3, False, 1000, cfg)
    qkv = {id(b.qkv) for b in m.blocks}
    linears = [x for x in m.modules() if isinstance(x, SeedLinear) and id(x) not in qkv]
    assert len(linears) == 3 + 3 * 3 + 1  # return/state/action embeddings, proj/fc/out per block, head
    for layer in linears:
        if layer.weight.numel() >= 1000:  # the 1-input return embedding has too few weights for a std
            assert std_of(layer.weight) == pytest.approx(0.02, rel=0.06)
        assert not layer.bias.any()
    assert std_of(m.embed_timestep.weight) == pytest.approx(0.02, rel=0.02)
    # nn.MultiheadAttention's in_proj_weight (3d, d): xavier-uniform, untouched by CORL's apply
    for b in m.blocks:
        assert std_of(b.qkv.weight) == pytest.approx(math.sqrt(6 / (128 + 384)) / math.sqrt(3), rel=0.03)
        assert not b.qkv.bias.any()


def test_keytodoor_dt_defaults_are_offbenchs_own_documented_settings() -> None:
    assert DTConfig.for_dataset(get_spec("keytodoor-1k")).dropout == 0.1  # the 1K set's one departure
    cfg = DTConfig.for_dataset(get_spec("keytodoor-10k"))
    expected = dict(recipe="offbench", steps=3_000, batch_size=128, eval_every=1_000, eval_episodes=100, context=40,
                    embed_dim=32, n_layers=2, n_heads=1, dropout=0.0, activation="relu", lr=1e-2, weight_decay=1e-4,
                    warmup_steps=100, lr_schedule="cosine", grad_clip=0.25, rtg_scale=1.0, normalize_obs=False,
                    sample_actions=False, betas=(0.9, 0.999), init="default", embed_tanh=False, embed_ln=True,
                    positions="timestep", head_bias=True, decay_weights_only=False, windows="padded")
    assert {k: getattr(cfg, k) for k in expected} == expected


@pytest.mark.parametrize(("algo", "listed"), [("dt", "paper, offbench, corl"), ("bc", "corl, paper, offbench"),
                                              ("pbc", "corl, paper, offbench"), ("rwr", "offbench"),
                                              ("awr", "offbench"), ("cql", "corl, offbench"),
                                              ("iql", "corl, paper")])
def test_an_unknown_recipe_is_a_usage_error_listing_the_recipes(algo: str, listed: str) -> None:
    from offbench.launch import plan_runs

    with pytest.raises(UsageError, match=f"unknown recipe 'bogus'.*recipes: {listed}$"):
        plan_runs(["hopper-medium"], [algo], 1, Path("unused"), [f"{algo}.recipe=bogus"])


# -- Decision Transformer on Atari (kzl atari/mingpt) ------------------------------------------------

def atari_dt(seeds: list[int], data: Dataset, **overrides: str) -> DT:
    cfg = DTConfig.for_dataset(ATARI).with_overrides({"batch_size": "3", "context": "4", "n_layers": "2", **overrides})
    return DT.for_data(cfg, data, ATARI, torch.device("cpu"), seeds)


def test_atari_dt_is_mingpt() -> None:
    cfg = DTConfig.for_dataset(get_spec("breakout-1pct"))
    assert (cfg.grad_clip, cfg.weight_decay, tuple(cfg.betas), cfg.lr, cfg.rtg_scale, cfg.sample_actions) == \
        (1.0, 0.1, (0.9, 0.95), 6e-4, 1.0, True)
    data = frames_dataset()
    algo = atari_dt([0, 1], data)
    m = algo.model
    assert m.embed_ln is None and m.embed_tanh and not hasattr(m, "embed_timestep")
    # positions: zero-init global (one row per timestep) and per-token (3K + 1) tables, per seed
    assert m.global_pos_emb.shape == (2, 7 + 1, 128) and m.pos_emb.shape == (2, 3 * 4 + 1, 128)
    assert not m.global_pos_emb.any() and not m.pos_emb.any()
    # minGPT init: blocks and the bias-free head N(0, 0.02), action embedding N(0, 0.02); encoders default
    assert "predict_action.bias" not in dict(m.named_parameters()) and not m.predict_action.bias.any()
    assert std_of(m.blocks[0].fc.weight) == pytest.approx(0.02, rel=0.03)
    assert std_of(m.embed_action.weight) == pytest.approx(0.02, rel=0.2)
    assert std_of(m.embed_return.weight) > 0.2  # nn.Linear(1, d): uniform in +-1
    # weight decay 0.1 on Linear/Conv weights only
    decay, rest = algo.optim.param_groups
    weights = [x.weight for x in m.modules() if isinstance(x, (SeedLinear, SeedConv2d))]
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(p) for p in weights}
    undecayed = {id(p) for p in rest["params"]}
    for p in (m.pos_emb, m.global_pos_emb, m.embed_action.weight, m.ln_f.weight, m.blocks[0].qkv.bias,
              m.embed_state.convs[0].bias):
        assert id(p) in undecayed
    assert len(decay["params"]) + len(rest["params"]) == len(list(m.parameters()))
    # a forward pass on (4, 84, 84) frame stacks, through the loss, one update and the policy
    sampler = SeedBatches([algo.make_sampler(data, np.random.default_rng(s)) for s in (0, 1)])
    batch = sampler.sample()
    assert batch["observations"].shape == (2, 3, 4, 4, 84, 84)  # (seeds, batch, K, frame stack)
    metrics = algo.update(batch)
    assert torch.isfinite(metrics["loss"]).all() and metrics["loss"].shape == (2,)
    policy = algo.policy(None, [torch.Generator().manual_seed(s) for s in (0, 1)])
    policy.reset(2)
    actions = policy.act(np.zeros((2, 2, 4, 84, 84), np.uint8))
    assert actions.shape == (2, 2) and set(np.unique(actions)) <= set(range(4))


def test_atari_dt_clips_gradients_at_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import offbench.algos.dt as dt_module

    data = frames_dataset()
    algo = atari_dt([0], data)
    seen = []
    real = dt_module.clip_grad_norm_per_seed
    monkeypatch.setattr(dt_module, "clip_grad_norm_per_seed", lambda params, c: seen.append(c) or real(params, c))
    algo.update(SeedBatches([algo.make_sampler(data, np.random.default_rng(0))]).sample())
    assert seen == [1.0]


def test_atari_positions_count_from_the_window_start(float64: None) -> None:
    """A left-padded window predicts as its unpadded part alone; the global embedding is the first
    real step's; with random (trained-like) position tables so that positions matter."""
    torch.manual_seed(0)
    cfg = DTConfig.for_dataset(ATARI).with_overrides({"context": "5", "n_layers": "2", "embed_dim": "16",
                                                      "n_heads": "2"})
    net = DecisionTransformer((6,), 4, True, 40, cfg)
    with torch.no_grad():
        net.pos_emb.normal_()
        net.global_pos_emb.normal_()
    g = torch.Generator().manual_seed(1)
    states, actions = torch.randn(1, 2, 5, 6, generator=g), torch.randint(4, (1, 2, 5), generator=g)
    rtg, steps = torch.rand(1, 2, 5, generator=g), (torch.arange(5) + 10).expand(1, 2, 5).clone()
    full = net(states, actions, rtg, steps, torch.ones(1, 2, 5))
    short = net(states[:, :, 2:], actions[:, :, 2:], rtg[:, :, 2:], steps[:, :, 2:], torch.ones(1, 2, 3))
    mask = torch.ones(1, 2, 5)
    mask[:, :, :2] = 0
    padded = net(torch.cat([torch.randn(1, 2, 2, 6), states[:, :, 2:]], 2), actions, rtg,
                 torch.cat([torch.zeros(1, 2, 2, dtype=torch.long), steps[:, :, 2:]], 2), mask)
    torch.testing.assert_close(padded[:, :, 2:], short, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(full[:, :, 2:], short)  # other positions, another global step
    # one global embedding per window: the first real step's timestep, broadcast
    other = steps.clone()
    other[:, :, 1:] += 7  # only the first step's timestep is read
    torch.testing.assert_close(net(states, actions, rtg, other, torch.ones(1, 2, 5)), full, rtol=1e-10, atol=1e-12)


def test_atari_evaluation_passes_the_current_step_as_kzl() -> None:
    algo = atari_dt([0], frames_dataset())
    seen = []
    forward = algo.model.forward

    def spy(states, actions, rtg, timesteps, mask, **kw):
        seen.append(timesteps.clone())
        return forward(states, actions, rtg, timesteps, mask, **kw)

    algo.model.forward = spy
    policy = algo.policy(5.0, [torch.Generator().manual_seed(0)])
    policy.reset(1)
    for _ in range(3):
        policy.act(np.zeros((1, 1, 4, 84, 84), np.uint8))
        policy.observe(np.zeros((1, 1)))
    assert [int(t.unique()) for t in seen] == [0, 1, 2]


def test_mingpt_lr_schedule_counts_tokens() -> None:
    data = frames_dataset((30, 30))
    algo = atari_dt([0], data, batch_size="32", context="10")
    assert algo.final_tokens == 2 * (60 - 30) * 10 * 3
    f = algo.lr_factor
    assert f(0) == 1.0  # minGPT sets the rate after the first update
    assert f(1) == pytest.approx(320 / 10240) and f(31) == pytest.approx(31 * 320 / 10240)
    big = atari_dt([0], frames_dataset((400, 500)), batch_size="4", context="4")
    tokens = lambda step: step * 16  # noqa: E731
    for step in (700, 1000, 1300):  # tokens within (warmup, final)
        p = (tokens(step) - 10240) / (big.final_tokens - 10240)
        assert big.lr_factor(step) == pytest.approx(max(0.1, 0.5 * (1 + math.cos(math.pi * p))))
    assert big.lr_factor(1400) == big.lr_factor(10**6) == 0.1  # the floor, and no rise past final_tokens


def test_end_aligned_windows_are_moved_back_inside_their_episode() -> None:
    """kzl's Atari dataset moves a window that would cross its episode's end back to end there."""
    data = frames_dataset((9, 3, 12))
    b = EndAlignedWindowSampler(data, 5, 2000, np.random.default_rng(0)).sample()
    real, t = b["mask"].sum(1), b["timesteps"]
    assert set(real.tolist()) == {3.0, 5.0}  # full windows, but for the 3-step episode (left-padded)
    full = real == 5
    assert (np.diff(t[full], axis=1) == 1).all()  # consecutive steps of one episode
    # a start uniform over the steps: 5 of 9 (5 of 12) starts end at the last step, (5 + 5) / 21 of the full windows
    at_end = np.isin(t[full, -1], [8, 11]) & ~((t[full, -1] == 8) & (t[full, 0] != 4))
    assert at_end.mean() == pytest.approx(10 / 21, abs=0.05)
    assert not (t[full, -1] > 11).any()


def test_atari_dt_seeds_together_match_each_alone_with_padded_windows(float64: None) -> None:
    data = frames_dataset((7, 3, 6))

    def trained(seeds: list[int]) -> list[dict]:
        algo = atari_dt(seeds, data, batch_size="3")
        train(algo, SeedBatches([algo.make_sampler(data, np.random.default_rng(s)) for s in seeds]), 3)
        return algo.seed_states()

    together = trained(SEEDS[:2])
    for i, seed in enumerate(SEEDS[:2]):
        assert_same_state(together[i], trained([seed])[0])


# -- %BC selection ---------------------------------------------------------------------------------

def kzl_top_timesteps(traj_lens: np.ndarray, returns: np.ndarray, pct_traj: float) -> np.ndarray:
    """kzl/decision-transformer gym/experiment.py l.104-113, verbatim but for names."""
    num_timesteps = sum(traj_lens)
    num_timesteps = max(int(pct_traj * num_timesteps), 1)
    sorted_inds = np.argsort(returns)  # lowest to highest
    num_trajectories = 1
    timesteps = traj_lens[sorted_inds[-1]]
    ind = len(traj_lens) - 2
    while ind >= 0 and timesteps + traj_lens[sorted_inds[ind]] <= num_timesteps:
        timesteps += traj_lens[sorted_inds[ind]]
        num_trajectories += 1
        ind -= 1
    return sorted_inds[-num_trajectories:]


def episodes(lengths: list[int], returns: list[float]) -> Dataset:
    n = sum(lengths)
    rewards = np.zeros(n, np.float32)
    ends = np.cumsum(lengths) - 1
    rewards[ends] = returns
    terminals = np.zeros(n, bool)
    terminals[ends] = True
    return Dataset(np.arange(n, dtype=np.float32)[:, None], np.zeros((n, 1), np.float32), rewards, terminals,
                   np.zeros(n, bool), np.cumsum([0, *lengths[:-1]]))


def test_paper_percent_bc_selection_is_kzls_loop() -> None:
    d = episodes([3, 2, 4, 5], [6, 10, 2, 8])  # 14 steps; best: 10 (2), 8 (5), 6 (3), 2 (4)
    assert top_fraction(d, 0.3).episode_returns.tolist() == [10]  # budget int(4.2) = 4: 2 + 5 > 4
    assert sorted(top_fraction(d, 0.5).episode_returns.tolist()) == [8, 10]  # budget 7 = 2 + 5
    assert sorted(top_fraction(d, 0.8).episode_returns.tolist()) == [6, 8, 10]  # 11: stops before the 4 (15)
    assert top_fraction(d, 0.01).episode_returns.tolist() == [10]  # at least one, even over the budget
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 12))
        lengths = rng.integers(1, 30, k)
        returns = rng.integers(-5, 5, k).astype(float)  # ties included
        pct = float(rng.uniform(0.01, 1.0))
        kept = top_fraction(episodes(lengths.tolist(), returns.tolist()), pct, "timesteps")
        ref = np.sort(kzl_top_timesteps(lengths, returns, pct))
        np.testing.assert_array_equal(kept.episode_lengths, lengths[ref])
        np.testing.assert_array_equal(kept.episode_returns, returns[ref])


def test_corl_ten_percent_bc_keeps_the_best_tenth_of_trajectories() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 5, 9, 10, 19, 25, 104):
        lengths, returns = rng.integers(1, 9, n), rng.permutation(n).astype(float)
        kept = top_fraction(episodes(lengths.tolist(), returns.tolist()), 0.1, "trajectories")
        keep = max(1, int(0.1 * n))
        assert kept.num_episodes == keep
        assert sorted(kept.episode_returns.tolist()) == sorted(returns)[-keep:]


def test_pbc_recipes_select_and_normalize_as_their_references() -> None:
    data = toy_dataset(n_episodes=20, length=10)
    data.observations += np.repeat(data.episode_returns, 10)[:, None].astype(np.float32)  # statistics differ by episode
    corl = get_algorithm("pbc").Config.for_dataset(SPEC)
    assert (corl.recipe, corl.by, corl.fraction, corl.normalize_on, corl.context, corl.hidden, corl.lr) == \
        ("corl", "trajectories", 0.1, "selected", 1, (256, 256), 3e-4)
    algo = get_algorithm("pbc").for_data(corl, data, SPEC, torch.device("cpu"), [0])
    kept = algo.train_data(data)
    assert kept.num_episodes == 2 and kept.episode_returns.min() >= np.sort(data.episode_returns)[-2]
    np.testing.assert_allclose(algo.norm.mean.numpy(), kept.obs_mean, rtol=1e-6)  # CORL: the kept trajectories'
    np.testing.assert_allclose(algo.norm.std.numpy(), kept.obs_std + 1e-3, rtol=1e-6)
    paper = get_algorithm("pbc").Config.resolve(SPEC, {"recipe": "paper"})
    assert (paper.by, paper.normalize_on, paper.context, paper.obs_std_eps) == ("timesteps", "all", 20, 1e-6)
    algo = get_algorithm("pbc").for_data(paper, data, SPEC, torch.device("cpu"), [0])
    np.testing.assert_allclose(algo.norm.mean.numpy(), data.obs_mean, rtol=1e-6)  # kzl: the whole dataset's
    assert algo.train_data(data).num_episodes == 2  # 10% of 200 steps = two 10-step episodes


def test_keytodoor_and_atari_pbc_keep_their_selection() -> None:
    kd = get_algorithm("pbc").Config.for_dataset(get_spec("keytodoor-1k"))
    assert (kd.recipe, kd.by, kd.context, kd.hidden, kd.dropout, kd.steps, kd.lr, kd.lr_schedule) == \
        ("offbench", "success", 1, (128, 128, 128), 0.1, 3_000, 1e-4, "cosine")
    assert get_algorithm("pbc").Config.for_dataset(get_spec("keytodoor-10k")).lr_schedule == "constant"
    atari = get_algorithm("pbc").Config.for_dataset(get_spec("breakout-1pct"))
    assert (atari.by, atari.recipe) == ("timesteps", "offbench")  # not a published recipe: labelled so
    assert get_algorithm("bc").Config.for_dataset(get_spec("keytodoor-1k")).recipe == "offbench"
    assert get_algorithm("cql").Config.for_dataset(get_spec("breakout-1pct")).recipe == "offbench"
    assert get_algorithm("cql").Config.for_dataset(get_spec("hopper-medium")).recipe == "corl"


# -- BC: the DT paper's windowed MLP ---------------------------------------------------------------

def test_paper_bc_recipe_is_kzls_mlp_bc() -> None:
    cfg = get_algorithm("bc").Config.resolve(SPEC, {"recipe": "paper"})
    assert (cfg.context, cfg.hidden, cfg.dropout, cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.batch_size,
            cfg.steps, cfg.obs_std_eps) == (20, (128, 128, 128), 0.1, 1e-4, 1e-4, 10_000, 64, 100_000, 1e-6)
    data = toy_dataset(obs_dim=3, act_dim=1)
    algo = get_algorithm("bc").for_data(cfg, data, SPEC, torch.device("cpu"), [0])
    widths = [(layer.weight.shape[1], layer.weight.shape[2]) for layer in algo.actor.layers]
    assert widths == [(60, 128), (128, 128), (128, 128)] and algo.actor.head.weight.shape[1:] == (128, 1)
    assert isinstance(algo.optim, torch.optim.AdamW) and algo.optim.param_groups[0]["weight_decay"] == 1e-4
    assert algo.sched.get_last_lr()[0] == pytest.approx(1e-4 / 10_000)  # linear warmup from step 1
    # training windows are padded with raw zero states before standardization, as kzl's get_batch
    batch = algo.make_sampler(data, np.random.default_rng(0)).sample()
    obs = algo.norm(torch.as_tensor(batch["observations"]))
    pads = batch["mask"] == 0
    assert pads.any() and (batch["mask"][:, -1] == 1).all()  # the target step is always real
    torch.testing.assert_close(obs[torch.as_tensor(pads)], (-algo.norm.mean / algo.norm.std).expand(int(pads.sum()), 3))


def test_paper_bc_trains_and_evaluates_through_its_window_policy() -> None:
    from offbench.evaluate import rollout

    data = toy_dataset(obs_dim=3, act_dim=1)
    cls = get_algorithm("bc")
    cfg = cls.Config.resolve(SPEC, {"recipe": "paper", "context": "4", "hidden": "[16, 16]", "warmup_steps": "2",
                                    "batch_size": "8"})
    algo = cls.for_data(cfg, data, SPEC, torch.device("cpu"), [0, 1])
    sampler = SeedBatches([algo.make_sampler(data, np.random.default_rng(s)) for s in (0, 1)])
    losses = [algo.update(sampler.sample())["loss"] for _ in range(5)]
    assert all(torch.isfinite(x).all() and x.shape == (2,) for x in losses)
    # the policy keeps each episode's last K standardized states, zeros before its start
    policy = algo.policy(None, [torch.Generator().manual_seed(s) for s in (0, 1)])
    assert isinstance(policy, WindowPolicy)
    policy.reset(3)
    obs = [np.random.default_rng(i).normal(size=(2, 3, 3)).astype(np.float32) for i in range(5)]
    for i, o in enumerate(obs):
        out = policy.act(o)
        window = torch.stack([algo.norm(torch.as_tensor(x)) for x in obs[max(0, i - 3) : i + 1]], dim=2)
        window = torch.cat([torch.zeros(2, 3, 4 - window.shape[2], 3), window], dim=2)
        with torch.no_grad():
            expected = torch.tanh(algo.actor(window.flatten(2)))  # no dropout at evaluation
        np.testing.assert_allclose(out, expected.numpy(), rtol=1e-6, atol=1e-7)
    evs = rollout(algo.policy(None, [torch.Generator().manual_seed(s) for s in (0, 1)]), SPEC, 2, [0, 1])
    assert len(evs) == 2 and all(np.isfinite(ev.returns).all() and (ev.lengths == 50).all() for ev in evs)


def test_paper_bc_dropout_masks_differ_per_seed_and_only_in_training() -> None:
    data = toy_dataset(obs_dim=3, act_dim=1)
    cls = get_algorithm("bc")
    cfg = cls.Config.resolve(SPEC, {"recipe": "paper", "context": "3", "hidden": "[64]", "dropout": "0.5"})
    algo = cls.for_data(cfg, data, SPEC, torch.device("cpu"), [0, 1])
    with torch.no_grad():  # both seeds given seed 0's weights: only the dropout masks can differ
        for p in algo.actor.parameters():
            p[1] = p[0]
    x = torch.randn(1, 5, 9).expand(2, 5, 9)
    drop = algo.actor(x, algo.noise)
    assert not torch.allclose(drop[0], drop[1])  # per-seed masks
    clean = algo.actor(x)
    torch.testing.assert_close(clean[0], clean[1])  # evaluation: no dropout


@pytest.mark.parametrize("name", ["bc", "pbc"])
def test_paper_bc_seeds_together_match_each_alone(name: str, float64: None) -> None:
    data = toy_dataset()
    cls = get_algorithm(name)
    sets = {"recipe": "paper", "context": "5", "hidden": "[32, 32]", "batch_size": "16", "warmup_steps": "3"}
    cfg = cls.Config.resolve(SPEC, {**sets, "fraction": "0.5"} if name == "pbc" else sets)

    def trained(seeds: list[int]) -> tuple[list[dict], list[dict]]:
        algo = cls.for_data(cfg, data, SPEC, torch.device("cpu"), seeds)
        metrics = train(algo, SeedBatches([algo.make_sampler(data, np.random.default_rng(s)) for s in seeds]), 12)
        return algo.seed_states(), metrics

    together, m_together = trained(SEEDS)
    for i, seed in enumerate(SEEDS):
        alone, m_alone = trained([seed])
        assert_same_state(together[i], alone[0])
        for a, b in zip(m_together, m_alone):
            np.testing.assert_allclose(a["loss"][i], b["loss"][0], rtol=RTOL, atol=ATOL)


def test_windowed_bc_is_refused_for_frames_and_for_the_weighted_family() -> None:
    with pytest.raises(UsageError, match="vector observations"):
        get_algorithm("bc").for_data(get_algorithm("bc").Config.resolve(ATARI, {"recipe": "paper"}), frames_dataset(),
                                     ATARI, torch.device("cpu"), [0])
    with pytest.raises(UsageError, match="weighted family"):
        get_algorithm("rwr").Config.resolve(SPEC, {"context": "20"})


def test_bc_cosine_schedule_decays_the_rate_to_a_tenth_over_the_budget() -> None:
    cfg = get_algorithm("bc").Config.for_dataset(SPEC).with_overrides({"lr_schedule": "cosine", "steps": "10",
                                                                       "lr": "0.01"})
    algo = get_algorithm("bc").for_data(cfg, toy_dataset(obs_dim=3, act_dim=1), SPEC, torch.device("cpu"), [0])
    assert algo.optim.param_groups[0]["lr"] == pytest.approx(0.01)  # the first update at the full rate
    sampler = algo.make_sampler(toy_dataset(obs_dim=3, act_dim=1), np.random.default_rng(0))
    rates = []
    for _ in range(10):
        rates.append(algo.optim.param_groups[0]["lr"])
        algo.update({k: v[None] for k, v in sampler.sample().items()})  # one seed: (1, B, ...)
    expected = [0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 10))) for k in range(10)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    constant = get_algorithm("bc").for_data(get_algorithm("bc").Config.for_dataset(SPEC),
                                            toy_dataset(obs_dim=3, act_dim=1), SPEC, torch.device("cpu"), [0])
    assert constant.sched is None  # CORL's BC: no schedule
