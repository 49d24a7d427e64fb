"""On D4RL's AntMaze and Adroit sets every algorithm CORL configures runs CORL's per-dataset recipe.

Part (a) resolves offbench's config on a sample of sets and compares it with the values of CORL's
YAMLs (corl-team/CORL at eeeeef2671235fcce3a3eb255576a207d78840e6,
``configs/offline/<algo>/{antmaze,pen,door,hammer,relocate}/*.yaml``), written out here so that the
test needs nothing outside the repository; the IQL authors' AntMaze and Adroit settings
(ikostrikov/implicit_q_learning, ``configs/antmaze_config.py``, ``configs/kitchen_config.py``,
``train_offline.py``) for ``recipe=paper``. Part (b) checks the mechanisms the recipes switched on:
the reward transforms, CQL's Lagrange multiplier, max-target backup and clipped penalty, IQL's
actor dropout.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from offbench.algos.config import D4RL_ADROIT, D4RL_ANTMAZE, D4RL_KITCHEN
from offbench.data.spec import get_spec
from tests.test_algorithms import one_seed, toy_dataset
from tests.test_fidelity_corl import build, resolved

SAMPLE_ANTMAZE = ["antmaze-umaze", "antmaze-large-diverse"]
SAMPLE_ADROIT = ["pen-human", "relocate-expert"]

# -- CORL's YAML values (the keys its antmaze / Adroit files change against hopper/medium_v2.yaml) --
BC_ANTMAZE = {"n_episodes": 100, "batch_size": 256, "max_timesteps": 1000000, "eval_freq": 5000, "normalize": True}
TD3_BC_ANTMAZE = {"normalize_reward": True, "n_episodes": 100, "alpha": 2.5, "tau": 0.005}
IQL_ANTMAZE = {"iql_tau": 0.9, "beta": 10.0, "tau": 0.005, "iql_deterministic": False, "normalize_reward": True,
               "n_episodes": 100}
IQL_ADROIT = {"iql_tau": 0.8, "actor_dropout": 0.1, "tau": 0.005, "iql_deterministic": False,
              "normalize_reward": False, "beta": 3.0, "n_episodes": 10}
CQL_ANTMAZE = {"cql_alpha": 5.0, "cql_lagrange": True, "cql_target_action_gap": 0.8, "cql_max_target_backup": True,
               "cql_clip_diff_min": -200, "cql_clip_diff_max": math.inf, "q_n_hidden_layers": 5,
               "reward_scale": 10.0, "reward_bias": -5.0, "policy_lr": 0.0001, "qf_lr": 0.0003, "normalize": False,
               "eval_freq": 50000, "n_episodes": 100}
CQL_ADROIT = {"cql_alpha": 1.0, "policy_lr": 0.0001, "normalize_reward": False, "cql_lagrange": False,
              "q_n_hidden_layers": 3, "normalize": True, "eval_freq": 5000, "n_episodes": 10}
AWAC_ANTMAZE = {"awac_lambda": 0.1, "normalize_reward": True, "n_test_episodes": 100, "eval_frequency": 1000}
AWAC_ADROIT = {"awac_lambda": 0.1, "n_test_episodes": 10, "eval_frequency": 1000}
DT_ANTMAZE = {"batch_size": 64, "learning_rate": 0.0001, "eval_every": 10000, "reward_scale": 1.0,
              "update_steps": 100000, "eval_episodes": 100}
DT_TARGETS = {"antmaze-umaze": [1.0, 0.5], "antmaze-large-diverse": [1.0, 0.5, 0.25, 0.125, 0.06, 0.03],
              "pen-human": [3100, 1550], "relocate-expert": [4300, 2150]}
# CORL's modify_reward on AntMaze: r - 1 (TD3+BC, IQL, AWAC: normalize_reward), r * 10 - 5 (CQL:
# reward_scale, reward_bias); the IQL authors' train_offline.py: r - 1
ANTMAZE_REWARD = {"td3bc": (1.0, -1.0), "iql": (1.0, -1.0), "awac": (1.0, -1.0), "cql": (10.0, -5.0)}


def test_the_family_names_are_the_registered_d4rl_sets() -> None:
    for name in D4RL_ANTMAZE + D4RL_ADROIT + D4RL_KITCHEN:
        spec = get_spec(name)
        assert spec.domain == "robotics" and spec.source == "minari" and spec.params["minari_id"].startswith("D4RL/")
    assert len(D4RL_ANTMAZE) == 6 and len(D4RL_ADROIT) == 12


@pytest.mark.parametrize("name", SAMPLE_ANTMAZE + SAMPLE_ADROIT)
def test_bc_and_ten_percent_bc_evaluate_as_corls(name: str) -> None:
    episodes = BC_ANTMAZE["n_episodes"] if name.startswith("antmaze") else 10
    for algo in ("bc", "pbc"):
        cfg = resolved(algo, name)
        assert (cfg.eval_episodes, cfg.steps, cfg.eval_every, cfg.batch_size) == (
            episodes, BC_ANTMAZE["max_timesteps"], BC_ANTMAZE["eval_freq"], BC_ANTMAZE["batch_size"])
    assert resolved("pbc", name).fraction == 0.1


@pytest.mark.parametrize("name", SAMPLE_ANTMAZE + SAMPLE_ADROIT)
def test_td3bc_iql_cql_awac_configs_are_corls(name: str) -> None:
    antmaze = name.startswith("antmaze")
    td3 = resolved("td3bc", name)
    assert (td3.eval_episodes, td3.alpha, td3.tau) == ((100 if antmaze else 10), 2.5, 0.005)
    assert (td3.reward_scale, td3.reward_bias) == (ANTMAZE_REWARD["td3bc"] if antmaze else (1.0, 0.0))

    y = IQL_ANTMAZE if antmaze else IQL_ADROIT
    iql = resolved("iql", name)
    assert (iql.recipe, iql.expectile, iql.beta, iql.tau, iql.deterministic, iql.eval_episodes) == (
        "corl", y["iql_tau"], y["beta"], y["tau"], y["iql_deterministic"], y["n_episodes"])
    assert iql.actor_dropout == y.get("actor_dropout", 0.0)
    assert (iql.reward_scale, iql.reward_bias) == (ANTMAZE_REWARD["iql"] if antmaze else (1.0, 0.0))
    assert not iql.normalize_reward  # locomotion's return-range scaling: never on these sets

    y = CQL_ANTMAZE if antmaze else CQL_ADROIT
    cql = resolved("cql", name)
    assert (cql.alpha, cql.lagrange, cql.actor_lr, cql.critic_lr, cql.normalize_obs, cql.eval_every,
            cql.eval_episodes) == (y["cql_alpha"], y["cql_lagrange"], y["policy_lr"], 0.0003, y["normalize"],
                                   y["eval_freq"], y["n_episodes"])
    assert cql.critic_hidden == (256,) * y["q_n_hidden_layers"] and cql.hidden == (256,) * 3
    assert (cql.corl_init, cql.learn_log_std_scale, cql.log_std_min) == (True, True, -20.0)  # CORL's model
    if antmaze:
        assert (cql.target_action_gap, cql.max_target_backup, cql.clip_diff_min, cql.clip_diff_max) == (
            y["cql_target_action_gap"], y["cql_max_target_backup"], y["cql_clip_diff_min"], y["cql_clip_diff_max"])
        assert (cql.reward_scale, cql.reward_bias) == (y["reward_scale"], y["reward_bias"]) == ANTMAZE_REWARD["cql"]
    else:
        assert (cql.reward_scale, cql.reward_bias, cql.max_target_backup) == (1.0, 0.0, False)

    y = AWAC_ANTMAZE if antmaze else AWAC_ADROIT
    awac = resolved("awac", name)
    assert (awac.beta, awac.eval_episodes, awac.eval_every) == (y["awac_lambda"], y["n_test_episodes"],
                                                                y["eval_frequency"])
    assert (awac.reward_scale, awac.reward_bias) == (ANTMAZE_REWARD["awac"] if antmaze else (1.0, 0.0))


@pytest.mark.parametrize("name", SAMPLE_ANTMAZE + SAMPLE_ADROIT)
def test_dt_config_and_targets_are_corls(name: str) -> None:
    dt = resolved("dt", name)
    assert dt.recipe == "corl" and dt.rtg_scale == 1.0 and dt.steps == DT_ANTMAZE["update_steps"]
    assert dt.eval_episodes == DT_ANTMAZE["eval_episodes"]
    if name.startswith("antmaze"):
        assert (dt.batch_size, dt.lr, dt.eval_every) == (DT_ANTMAZE["batch_size"], DT_ANTMAZE["learning_rate"],
                                                         DT_ANTMAZE["eval_every"])
    else:  # as on locomotion
        assert (dt.batch_size, dt.lr, dt.eval_every) == (4096, 0.0008, 5000)
    assert list(get_spec(name).target_returns) == DT_TARGETS[name]


@pytest.mark.parametrize("name", ["antmaze-medium-play", "door-cloned", "kitchen-mixed"])
def test_iql_paper_recipe_is_the_iql_authors_on_antmaze_adroit_and_kitchen(name: str) -> None:
    cfg = resolved("iql", name, {"recipe": "paper"})
    if name.startswith("antmaze"):  # antmaze_config.py; README: --eval_episodes=100; rewards - 1
        expected = {"expectile": 0.9, "beta": 10.0, "actor_dropout": 0.0, "reward_bias": -1.0, "eval_episodes": 100}
    else:  # kitchen_config.py, which the README runs on Kitchen and Adroit
        expected = {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1, "reward_bias": 0.0, "eval_episodes": 10}
    assert {k: getattr(cfg, k) for k in expected} == expected
    assert (cfg.tau, cfg.hidden, cfg.normalize_obs, cfg.log_std_min) == (0.005, (256, 256), False, -5.0)


# -- mechanisms ------------------------------------------------------------------------------------
SMALL = {"hidden": "[16, 16]"}


@pytest.mark.parametrize("algo", sorted(ANTMAZE_REWARD))
def test_training_batches_carry_the_antmaze_reward_transform(algo: str) -> None:
    data = toy_dataset()
    small = {**SMALL, "critic_hidden": "[16, 16]"} if algo == "cql" else SMALL
    model = build(algo, "antmaze-umaze", [0], small, data)
    batch = model.make_sampler(data, np.random.default_rng(0)).sample()
    scale, bias = ANTMAZE_REWARD[algo]
    np.testing.assert_allclose(model.tensors(one_seed(batch))["rewards"][0].numpy(), batch["rewards"] * scale + bias,
                               rtol=1e-6, atol=1e-6)
    adroit = build(algo, "pen-human", [0], small, data)  # Adroit: rewards as they are
    assert torch.equal(adroit.tensors(one_seed(batch))["rewards"][0], torch.as_tensor(batch["rewards"]))


CQL_SMALL = {"hidden": "[16, 16]", "critic_hidden": "[16, 16]", "batch_size": "8", "n_actions": "3"}


def cql_antmaze(overrides: dict[str, str] | None = None):
    data = toy_dataset()
    model = build("cql", "antmaze-umaze", [0], {**CQL_SMALL, **(overrides or {})}, data)
    return model, model.make_sampler(data, np.random.default_rng(0))


@pytest.mark.parametrize(("gap", "direction"), [(-1e3, 1.0), (1e3, -1.0)])
def test_cql_lagrange_multiplier_rises_while_the_penalty_exceeds_the_gap(gap: float, direction: float) -> None:
    """CORL's dual step: alpha' descends ``-alpha' * alpha * (penalty - gap)``, so it grows while the
    penalty is above the gap and shrinks below it. Adam's first step moves a parameter by its lr
    (the gradient's sign times lr, up to Adam's eps), here the critics' 3e-4."""
    model, sampler = cql_antmaze({"target_action_gap": str(gap)})
    assert torch.equal(model.log_alpha_prime, torch.ones(1, 1))  # CORL Scalar(1.0)
    logs = model.update(one_seed(sampler.sample()))
    assert logs["alpha_prime"].item() == pytest.approx(math.e)  # the weight used: alpha' before its step
    step = model.log_alpha_prime.item() - 1.0
    assert step == pytest.approx(direction * 3e-4, rel=1e-3)


def test_cql_penalty_is_clipped_per_state_before_its_mean() -> None:
    model, sampler = cql_antmaze()
    b = model.tensors(one_seed(sampler.sample()))
    free = model.conservative_penalty(b)
    model.config.clip_diff_min = model.config.clip_diff_max = 0.25
    clipped = model.conservative_penalty(b)
    assert all(torch.equal(p, torch.full((1,), 0.25)) for p in clipped)
    assert not all(torch.equal(p, torch.full((1,), 0.25)) for p in free)


def test_cql_max_target_backup_takes_the_best_of_the_sampled_actions() -> None:
    """The target's next action is the best of ``n_actions`` sampled ones under the target critics'
    min, and its log-probability is that action's (CORL's gather over the argmax)."""
    model, sampler = cql_antmaze()
    b = model.tensors(one_seed(sampler.sample()))
    state = model.noise.get_state(0)
    with torch.no_grad():
        best, logp = model.next_value(b["next_obs"])
        model.noise.set_state(0, state)  # the same draws again, every sampled action's value
        actions, all_logp = model.actor(b["next_obs"], noise=model.noise.normal, samples=3)
        q = torch.min(*model.critic_target(model.repeat(b["next_obs"]), actions)).view(1, 8, 3)
    assert best.shape == logp.shape == (1, 8)
    assert torch.all(best.unsqueeze(-1) >= q) and torch.equal(best, q.max(-1).values)
    torch.testing.assert_close(logp, all_logp.view(1, 8, 3).gather(-1, q.argmax(-1, keepdim=True)).squeeze(-1))
    assert not torch.equal(q.max(-1).values, q.min(-1).values)  # the samples differ: the max is a choice


def test_iql_actor_dropout_acts_in_training_only_with_each_seeds_masks() -> None:
    data = toy_dataset()
    model = build("iql", "pen-human", [0, 1], {"hidden": "[64, 64]"}, data)
    assert model.config.actor_dropout == 0.1
    obs = torch.randn(2, 32, 3)
    with torch.no_grad():
        evaluated = model.actor(obs)
        assert torch.equal(evaluated, model.actor(obs))  # evaluation: no dropout, deterministic
        trained = model.actor(obs, model.noise)
        assert not torch.allclose(trained, evaluated)
        # inverted dropout keeps the hidden activations' expectation: over many masks the first
        # hidden layer's mean output approaches the undropped one (500 draws: standard error
        # sqrt(0.1 / 0.9 / 500) of each unit's value, ~1.5%; 10% tolerance)
        first = model.actor.net[:2]
        h = first(obs)
        mean = torch.stack([model.noise.dropout(h, 0.1) for _ in range(500)]).mean(0)
        torch.testing.assert_close(mean.mean(), h.mean(), rtol=0.1, atol=0)
