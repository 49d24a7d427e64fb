"""The continuous-control algorithms: the properties their papers rest on, checked on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import brentq

from offbench.algos import get_algorithm
from offbench.algos.iql import expectile_loss
from offbench.algos.weighted_bc import awr_weights, rwr_weights
from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec

SPEC = DatasetSpec(name="toy", domain="mujoco", source="test", env="Pendulum-v1", max_episode_steps=50,
                   ref_min_return=0.0, ref_max_return=1.0, target_returns=(1.0,))


def toy_dataset(n_episodes: int = 8, length: int = 25, obs_dim: int = 3, act_dim: int = 2, seed: int = 0,
                action_std: float = 0.1, reward_scale: float = 1.0) -> Dataset:
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    terminals = np.zeros(n, bool)
    terminals[length - 1 :: length] = True
    return Dataset(observations=obs, actions=np.clip(rng.normal(0, action_std, (n, act_dim)), -1, 1).astype(np.float32),
                   rewards=(rng.uniform(0, 1, n) * reward_scale).astype(np.float32), terminals=terminals,
                   timeouts=np.zeros(n, bool), episode_starts=np.arange(0, n, length))


def one_seed(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A sampler's batch on the seed axis of a one-seed model."""
    return {k: v[None] for k, v in batch.items()}


def make(name: str, data: Dataset, **overrides: object):
    cls = get_algorithm(name)
    cfg = cls.Config.for_dataset(SPEC).with_overrides({k: str(v) for k, v in overrides.items()})
    torch.manual_seed(0)
    return cls(cfg, cls.describe(cfg, data, SPEC), torch.device("cpu"))


@pytest.mark.parametrize("tau", [0.5, 0.7, 0.9])
def test_iql_expectile_loss_recovers_the_expectile(tau: float) -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.exponential(2.0, 3000), rng.normal(-1, 0.5, 1000)])
    # the tau-expectile v solves tau * E[(x - v)+] = (1 - tau) * E[(v - x)+]
    exact = brentq(lambda v: tau * np.maximum(x - v, 0).mean() - (1 - tau) * np.maximum(v - x, 0).mean(), x.min(), x.max())
    xs = torch.as_tensor(x, dtype=torch.float64)
    v = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([v], lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = expectile_loss(xs - v, tau).mean()
        loss.backward()
        return loss

    opt.step(closure)
    assert v.item() == pytest.approx(exact, abs=1e-6)
    if tau == 0.5:
        assert v.item() == pytest.approx(x.mean(), abs=1e-6)


def test_cql_penalty_lowers_q_on_out_of_dataset_actions() -> None:
    data = toy_dataset(n_episodes=20, action_std=0.1)
    corners = torch.tensor([[0.9, 0.9], [-0.9, -0.9], [0.9, -0.9], [-0.9, 0.9]])

    def gap(alpha: float) -> float:
        algo = make("cql", data, alpha=alpha, hidden="[64, 64]", critic_hidden="[64, 64]", batch_size=128,
                    actor_lr=3e-4)
        rng = np.random.default_rng(0)
        sampler = algo.make_sampler(data, rng)
        for _ in range(300):
            algo.update(one_seed(sampler.sample()))
        with torch.no_grad():
            obs = algo.norm(torch.as_tensor(data.observations[:200]))[None]
            q_data = torch.min(*algo.critic(obs, torch.as_tensor(data.actions[:200])[None])).mean()
            q_ood = torch.stack([torch.min(*algo.critic(obs, c.expand(1, 200, 2))) for c in corners]).mean()
        return float(q_data - q_ood)

    with_cql, without = gap(10.0), gap(0.0)
    assert with_cql > 1.0, with_cql  # dataset actions valued clearly above unsupported ones
    assert with_cql > without + 1.0, (with_cql, without)


def test_td3bc_with_alpha_zero_is_behaviour_cloning() -> None:
    data = toy_dataset()
    td3 = make("td3bc", data, alpha=0.0)
    bc = make("bc", data, normalize_obs=True)
    bc.actor.load_state_dict(td3.actor.state_dict())
    batch = one_seed(td3.make_sampler(data, np.random.default_rng(0)).sample())
    b = td3.tensors(batch)
    loss = td3.actor_loss(b)
    assert loss.item() == pytest.approx(F.mse_loss(torch.tanh(bc.actor(b["obs"])), b["actions"]).item(), rel=1e-6)
    loss.sum().backward()
    bc_loss, _ = bc.loss(bc.tensors(batch))
    bc_loss.sum().backward()
    for p_td3, p_bc in zip(td3.actor.parameters(), bc.actor.parameters()):
        torch.testing.assert_close(p_td3.grad, p_bc.grad)


def test_reward_weighted_bc_weights_are_finite_for_huge_returns() -> None:
    data = toy_dataset(reward_scale=1e12)
    w = rwr_weights(data, temperature=0.01)
    assert np.isfinite(w).all() and w.max() == pytest.approx(1.0) and w.min() > 0
    adv = torch.tensor([1e30, -1e30, 0.0, 5.0])
    aw = awr_weights(adv, torch.tensor(1e-40), beta=1.0, max_weight=20.0)
    assert torch.isfinite(aw).all() and aw.max() <= 20.0
    for name in ("rwr", "awr"):
        algo = make(name, data)
        sampler = algo.make_sampler(data, np.random.default_rng(0))
        for _ in range(5):
            metrics = algo.update(one_seed(sampler.sample()))
        assert all(torch.isfinite(v).all() for v in metrics.values()), (name, metrics)


def test_cql_names_both_action_kinds() -> None:
    from offbench.algos.cql import CQL, DiscreteCQL

    cls = get_algorithm("cql")
    continuous = toy_dataset()
    discrete = toy_dataset()
    discrete.actions = np.zeros(len(discrete), np.int64)
    discrete.actions[::2] = 1
    cfg = cls.Config.for_dataset(SPEC)
    assert type(cls.for_data(cfg, continuous, SPEC, torch.device("cpu"), [0])) is CQL
    assert type(cls.for_data(cfg, discrete, SPEC, torch.device("cpu"), [0])) is DiscreteCQL


@pytest.mark.parametrize("name", ["td3bc", "iql", "awac"])
def test_continuous_only_algorithms_refuse_discrete_actions(name: str) -> None:
    from offbench.errors import UsageError

    data = toy_dataset()
    data.actions = np.zeros(len(data), np.int64)
    with pytest.raises(UsageError, match="needs continuous actions"):
        make(name, data)


def test_iql_uses_the_published_hopper_medium_expert_setting() -> None:
    from offbench.data.spec import get_spec

    cfg = get_algorithm("iql").Config.for_dataset(get_spec("hopper-medium-expert"))
    assert (cfg.expectile, cfg.beta) == (0.5, 6.0)
    cfg = get_algorithm("iql").Config.for_dataset(get_spec("hopper-medium"))
    assert (cfg.expectile, cfg.beta) == (0.7, 3.0)


@pytest.mark.parametrize("algo, old, value, new", [
    ("iql", "temperature", "5.0", {"beta": 5.0}),
    ("iql", "lr", "1e-3", {"actor_lr": 1e-3, "critic_lr": 1e-3, "value_lr": 1e-3}),
    ("cql", "policy_lr", "1e-4", {"actor_lr": 1e-4}),
    ("cql", "q_lr", "1e-3", {"critic_lr": 1e-3}),
    ("awac", "awac_lambda", "0.5", {"beta": 0.5}),
])
def test_former_field_names_set_the_renamed_fields_with_a_deprecation_warning(algo: str, old: str, value: str,
                                                                              new: dict) -> None:
    from offbench.data.spec import get_spec
    from offbench.errors import OffbenchDeprecation, UsageError

    cls = get_algorithm(algo).Config
    spec = get_spec("hopper-medium")
    with pytest.warns(OffbenchDeprecation, match=f"--set {old}={value} is deprecated; use --set {next(iter(new))}="):
        cfg = cls.resolve(spec, {old: value})
    assert {k: getattr(cfg, k) for k in new} == new
    assert not hasattr(cfg, old)
    assert cfg == cls.resolve(spec, {k: str(v) for k, v in new.items()})  # the same config, so the same run
    # a record written under the former name reads as today's config
    recorded = {**{k: v for k, v in cls.for_dataset(spec).to_dict().items() if k not in new}, old: float(value)}
    assert cls.from_record(recorded) == cfg
    with pytest.raises(UsageError, match=f"--set {old} and --set {next(iter(new))} name one setting"):
        cls.resolve(spec, {old: value, next(iter(new)): value})


def test_iql_actor_rate_follows_a_cosine_by_default_and_stays_with_constant() -> None:
    data = toy_dataset()
    for schedule, last in (("cosine", 0.0), ("constant", 1e-3)):
        algo = make("iql", data, steps=4, actor_lr=1e-3, actor_lr_schedule=schedule)
        sampler = algo.make_sampler(data, np.random.default_rng(0))
        for _ in range(4):
            algo.update(one_seed(sampler.sample()))
        assert algo.actor_optim.param_groups[0]["lr"] == pytest.approx(last, abs=1e-12)
        assert algo.critic_optim.param_groups[0]["lr"] == algo.value_optim.param_groups[0]["lr"] == 3e-4


def test_dt_recipes_corl_by_default_on_d4rl_and_the_paper_on_request() -> None:
    """The old ``preset=large-batch`` (batch and lr only) became CORL's whole recipe, the D4RL default."""
    from offbench.data.spec import get_spec

    spec = get_spec("walker2d-medium")
    cls = get_algorithm("dt").Config
    cfg = cls.for_dataset(spec)
    assert cfg.recipe == "corl"
    assert (cfg.batch_size, cfg.lr, cfg.context, cfg.embed_dim, cfg.activation, cfg.init, cfg.eval_every) == \
        (4096, 8e-4, 20, 128, "gelu", "normal-all", 5_000)
    paper = cls.resolve(spec, {"recipe": "paper"})
    assert (paper.batch_size, paper.lr, paper.activation, paper.init, paper.eval_every) == \
        (64, 1e-4, "relu", "gpt2-blocks", 10_000)
    assert cls.resolve(spec, {"recipe": "corl", "lr": "1e-3"}).lr == 1e-3  # explicit keys win
