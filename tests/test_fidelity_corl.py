"""TD3+BC, IQL, CQL and AWAC follow CORL's published recipe (the reference of offbench's table).

The expected values are copied from CORL's per-dataset YAMLs (corl-team/CORL at
eeeeef2671235fcce3a3eb255576a207d78840e6, ``configs/offline/<algo>/<env>/<level>_v2.yaml``) and
from its algorithm files (``algorithms/offline/<algo>.py``), written out here so that the test
needs nothing outside the repository. Part (a) resolves offbench's config for a sample of D4RL
sets and compares every YAML value offbench models; part (b) checks the mechanisms behind them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from offbench.algos import get_algorithm
from offbench.algos.nets import DeterministicActor, GaussianActor
from offbench.algos.seeded import SeedLinear, seed_linears
from offbench.data.spec import get_spec
from offbench.errors import UsageError
from tests.test_algorithms import toy_dataset

INF = float("inf")
SAMPLE = ["hopper-medium", "hopper-medium-replay", "hopper-medium-expert", "walker2d-medium-replay",
          "halfcheetah-medium-expert"]

# -- CORL's YAML values on the sample (fields that are the same on all five, then the others) -----
TD3_BC_YAML = {"alpha": 2.5, "discount": 0.99, "tau": 0.005, "policy_noise": 0.2, "noise_clip": 0.5, "policy_freq": 2,
               "batch_size": 256, "max_timesteps": 1000000, "eval_freq": 5000, "n_episodes": 10, "normalize": True,
               "normalize_reward": False}
IQL_YAML_COMMON = {"discount": 0.99, "actor_lr": 0.0003, "qf_lr": 0.0003, "vf_lr": 0.0003, "batch_size": 256,
                   "max_timesteps": 1000000, "eval_freq": 5000, "n_episodes": 10, "normalize": True}
IQL_YAML = {
    "hopper-medium": {"beta": 3.0, "iql_tau": 0.7, "iql_deterministic": True, "normalize_reward": True, "tau": 0.001},
    "hopper-medium-replay": {"beta": 3.0, "iql_tau": 0.7, "iql_deterministic": True, "normalize_reward": True,
                             "tau": 0.001},
    "hopper-medium-expert": {"beta": 6.0, "iql_tau": 0.5, "iql_deterministic": False, "normalize_reward": False,
                             "tau": 0.005},
    "walker2d-medium-replay": {"beta": 3.0, "iql_tau": 0.7, "iql_deterministic": False, "normalize_reward": False,
                               "tau": 0.005},
    "halfcheetah-medium-expert": {"beta": 3.0, "iql_tau": 0.7, "iql_deterministic": False, "normalize_reward": False,
                                  "tau": 0.005},
}
CQL_YAML_COMMON = {"cql_alpha": 10.0, "cql_n_actions": 10, "cql_temp": 1.0, "discount": 0.99,
                   "soft_target_update_rate": 0.005, "policy_lr": 3e-05, "qf_lr": 0.0003, "normalize": True,
                   "orthogonal_init": True, "q_n_hidden_layers": 3, "backup_entropy": False, "batch_size": 256,
                   "max_timesteps": 1000000, "eval_freq": 5000, "n_episodes": 10, "cql_lagrange": False,
                   "cql_importance_sample": True, "cql_max_target_backup": False, "cql_clip_diff_min": -INF,
                   "cql_clip_diff_max": INF, "bc_steps": 0, "target_update_period": 1,
                   "use_automatic_entropy_tuning": True, "alpha_multiplier": 1.0, "reward_scale": 1.0,
                   "reward_bias": 0.0}
CQL_YAML = {"hopper-medium": {"normalize_reward": True}, "hopper-medium-replay": {"normalize_reward": False},
            "hopper-medium-expert": {"normalize_reward": False}, "walker2d-medium-replay": {"normalize_reward": False},
            "halfcheetah-medium-expert": {"normalize_reward": False}}
AWAC_YAML = {"awac_lambda": 0.3333, "gamma": 0.99, "tau": 0.005, "learning_rate": 0.0003, "hidden_dim": 256,
             "batch_size": 256, "num_train_ops": 1000000, "n_test_episodes": 10, "eval_frequency": 1000}

# -- CORL's values for what offbench implements without a field: the code does exactly this ------
CQL_BUILT_IN = {"cql_importance_sample": True, "bc_steps": 0, "target_update_period": 1,
                "use_automatic_entropy_tuning": True, "alpha_multiplier": 1.0}


def resolved(algo: str, name: str, overrides: dict[str, str] | None = None):
    return get_algorithm(algo).Config.resolve(get_spec(name), overrides or {})


def budget(y: dict, steps: str = "max_timesteps", every: str = "eval_freq", episodes: str = "n_episodes") -> dict:
    out = {"batch_size": y["batch_size"], "steps": y[steps], "eval_episodes": y[episodes]}
    if every:
        out["eval_every"] = y[every]
    return out


def assert_fields(cfg, expected: dict) -> None:
    got = {k: getattr(cfg, k) for k in expected}
    assert got == expected


@pytest.mark.parametrize("name", SAMPLE)
def test_td3bc_config_is_corls(name: str) -> None:
    y = TD3_BC_YAML
    cfg = resolved("td3bc", name)
    assert_fields(cfg, {**budget(y), "alpha": y["alpha"], "discount": y["discount"], "tau": y["tau"],
                        "policy_noise": y["policy_noise"], "noise_clip": y["noise_clip"],
                        "policy_freq": y["policy_freq"], "normalize_obs": y["normalize"],
                        # td3_bc.py: Adam(lr=3e-4) hard-coded, 2 x 256 networks, compute_mean_std(eps=1e-3)
                        "actor_lr": 3e-4, "critic_lr": 3e-4, "hidden": (256, 256), "obs_std_eps": 1e-3})
    assert y["normalize_reward"] is False and not hasattr(cfg, "normalize_reward")  # TD3+BC never rescales rewards


@pytest.mark.parametrize("name", SAMPLE)
def test_iql_config_is_corls(name: str) -> None:
    y = {**IQL_YAML_COMMON, **IQL_YAML[name]}
    cfg = resolved("iql", name)
    assert_fields(cfg, {**budget(y), "recipe": "corl", "beta": y["beta"], "expectile": y["iql_tau"],
                        "deterministic": y["iql_deterministic"], "normalize_reward": y["normalize_reward"],
                        "tau": y["tau"], "discount": y["discount"],
                        "actor_lr": y["actor_lr"], "critic_lr": y["qf_lr"], "value_lr": y["vf_lr"],
                        "actor_lr_schedule": "cosine",  # iql.py: CosineAnnealingLR(actor_optimizer, max_steps)
                        "normalize_obs": y["normalize"],
                        # iql.py: hidden_dim 256, n_hidden 2; LOG_STD_MIN -20, LOG_STD_MAX 2; EXP_ADV_MAX 100
                        "hidden": (256, 256), "log_std_min": -20.0, "log_std_max": 2.0, "exp_adv_max": 100.0,
                        "obs_std_eps": 1e-3})


@pytest.mark.parametrize("name", SAMPLE)
def test_iql_paper_recipe_is_the_iql_authors(name: str) -> None:
    """ikostrikov/implicit_q_learning: configs/mujoco_config.py (expectile 0.7, temperature 3.0,
    tau 0.005, one setting for every locomotion set), train_offline.py (rewards * 1000 / return
    range on every locomotion set, states not standardized), learner.py (log_std_min -5.0)."""
    cfg = resolved("iql", name, {"recipe": "paper"})
    assert_fields(cfg, {"recipe": "paper", "expectile": 0.7, "beta": 3.0, "tau": 0.005, "actor_lr": 3e-4,
                        "critic_lr": 3e-4, "value_lr": 3e-4, "actor_lr_schedule": "cosine",
                        "discount": 0.99, "hidden": (256, 256), "normalize_reward": True, "deterministic": False,
                        "log_std_min": -5.0, "log_std_max": 2.0, "normalize_obs": False, "exp_adv_max": 100.0})
    # other --set keys still apply over the recipe
    assert resolved("iql", name, {"recipe": "paper", "tau": "0.01"}).tau == 0.01


@pytest.mark.parametrize("name", SAMPLE)
def test_cql_config_is_corls(name: str) -> None:
    y = {**CQL_YAML_COMMON, **CQL_YAML[name]}
    cfg = resolved("cql", name)
    assert_fields(cfg, {**budget(y), "alpha": y["cql_alpha"], "n_actions": y["cql_n_actions"],
                        "temperature": y["cql_temp"], "discount": y["discount"], "tau": y["soft_target_update_rate"],
                        "actor_lr": y["policy_lr"], "critic_lr": y["qf_lr"], "normalize_reward": y["normalize_reward"],
                        "normalize_obs": y["normalize"], "corl_init": y["orthogonal_init"],
                        "hidden": (256,) * 3,  # cql.py TanhGaussianPolicy: three hidden layers, hard-coded
                        "critic_hidden": (256,) * y["q_n_hidden_layers"], "backup_entropy": y["backup_entropy"],
                        "lagrange": y["cql_lagrange"], "target_action_gap": y.get("cql_target_action_gap", -1.0),
                        "max_target_backup": y["cql_max_target_backup"], "clip_diff_min": y["cql_clip_diff_min"],
                        "clip_diff_max": y["cql_clip_diff_max"], "reward_scale": y["reward_scale"],
                        "reward_bias": y["reward_bias"],
                        # cql.py: ReparameterizedTanhGaussian(log_std_min=-20.0, log_std_max=2.0);
                        # TanhGaussianPolicy learned log_std_multiplier (1.0) and log_std_offset (-1.0)
                        "log_std_min": -20.0, "log_std_max": 2.0, "learn_log_std_scale": True,
                        "log_std_multiplier": 1.0, "log_std_offset": -1.0, "obs_std_eps": 1e-3,
                        "entropy_lr": 0.0})  # 0: the policy lr (see the mechanism test)
    assert {k: y[k] for k in CQL_BUILT_IN} == CQL_BUILT_IN


@pytest.mark.parametrize("name", SAMPLE)
def test_awac_config_is_corls(name: str) -> None:
    y = AWAC_YAML
    cfg = resolved("awac", name)
    assert_fields(cfg, {**budget(y, steps="num_train_ops", every="", episodes="n_test_episodes"),
                        "beta": y["awac_lambda"], "discount": y["gamma"], "tau": y["tau"],
                        "actor_lr": y["learning_rate"], "critic_lr": y["learning_rate"],
                        "hidden": (y["hidden_dim"],) * 3,  # awac.py Actor / Critic: three hidden layers
                        # awac.py: Actor(min_log_std=-20.0, max_log_std=2.0), exp_adv_max=100.0
                        "log_std_min": -20.0, "log_std_max": 2.0, "exp_adv_max": 100.0, "obs_std_eps": 1e-3})
    assert cfg.eval_every == y["eval_frequency"] == 1000  # AWAC's YAMLs evaluate every 1,000 steps


# -- mechanisms --------------------------------------------------------------------------------
# small networks where a test is not about their size (orthogonal init of a 256 x 256 weight is a
# QR decomposition, slow on a busy CPU)
SMALL = {"hidden": "[32, 32]"}
SMALL_CQL = {**SMALL, "critic_hidden": "[32, 32]"}


def build(algo: str, name: str, seeds: list[int], overrides: dict[str, str] | None = None, data=None):
    cls = get_algorithm(algo)
    spec = get_spec(name)
    cfg = cls.Config.resolve(spec, overrides or {})
    return cls.for_data(cfg, data if data is not None else toy_dataset(), spec, torch.device("cpu"), seeds)


def test_cql_temperature_optimizer_runs_at_the_policy_lr() -> None:
    algo = build("cql", "walker2d-medium-replay", [0], SMALL_CQL)
    assert algo.entropy_optim.param_groups[0]["lr"] == algo.actor_optim.param_groups[0]["lr"] == 3e-5
    algo = build("cql", "walker2d-medium-replay", [0], {**SMALL_CQL, "actor_lr": "1e-4"})
    assert algo.entropy_optim.param_groups[0]["lr"] == 1e-4  # follows the policy lr, as in CORL
    algo = build("cql", "walker2d-medium-replay", [0], {**SMALL_CQL, "entropy_lr": "1e-3"})
    assert algo.entropy_optim.param_groups[0]["lr"] == 1e-3  # unless set on its own


def gram(w: torch.Tensor) -> torch.Tensor:
    """The Gram matrix over the smaller side of one seed's (in, out) weight."""
    return w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w


def test_cql_initialization_is_corls_per_seed() -> None:
    data = toy_dataset()  # 3-d states, 2-d actions
    algo = build("cql", "hopper-medium-expert", [0, 1], data=data)
    alone = build("cql", "hopper-medium-expert", [1], data=data)
    for q in (algo.critic.q1, algo.critic.q2):
        layers = seed_linears(q)
        assert len(layers) == 4  # three hidden layers of 256 (q_n_hidden_layers 3)
        for k, layer in enumerate(layers):
            gain = 1e-2 if k == len(layers) - 1 else math.sqrt(2.0)
            for s in range(2):
                g = gram(layer.weight[s].detach().double())
                torch.testing.assert_close(g, gain**2 * torch.eye(len(g), dtype=torch.float64), atol=1e-5 * gain**2,
                                           rtol=0)
            assert torch.count_nonzero(layer.bias) == 0
            assert not torch.allclose(layer.weight[0], layer.weight[1])  # each seed its own draw
    actor_layers = seed_linears(algo.actor.net)
    assert len(actor_layers) == 4 and actor_layers[-1].weight.shape[1:] == (256, 4)  # 3 x 256, mean and log-std
    bound = 1e-2 * math.sqrt(6.0 / (256 + 4))  # xavier_uniform_(gain=1e-2) of nn.Linear(256, 2 * action_dim)
    assert actor_layers[-1].weight.abs().max() <= bound and torch.count_nonzero(actor_layers[-1].bias) == 0
    assert actor_layers[-1].weight.abs().max() > bound / 2
    for layer in actor_layers[:-1]:  # nn.Linear's default: uniform in +-1/sqrt(fan_in), biases too
        fan_in = layer.weight.shape[1]
        assert layer.weight.abs().max() <= 1 / math.sqrt(fan_in) and torch.count_nonzero(layer.bias) > 0
    # seed 1 of the pair starts where seed 1 alone starts
    for a, b in zip(algo.state_dict()["critic"].values(), alone.state_dict()["critic"].values()):
        torch.testing.assert_close(a[1:2], b)
    # the target critics start as copies
    for a, b in zip(algo.critic.parameters(), algo.critic_target.parameters()):
        assert torch.equal(a, b)


def test_cql_log_std_has_a_learned_multiplier_and_offset_per_seed() -> None:
    algo = build("cql", "hopper-medium-expert", [0, 1], SMALL_CQL)
    actor = algo.actor
    assert actor.log_std_multiplier.tolist() == [[1.0], [1.0]] and actor.log_std_offset.tolist() == [[-1.0], [-1.0]]
    trained = {id(p) for group in algo.actor_optim.param_groups for p in group["params"]}
    assert {id(actor.log_std_multiplier), id(actor.log_std_offset)} <= trained
    assert {"log_std_multiplier", "log_std_offset"} <= set(algo.state_dict()["actor"])  # checkpointed
    obs = torch.zeros(2, 5, 3)
    with torch.no_grad():
        head = actor.net(obs).chunk(2, dim=-1)[1]
        actor.log_std_multiplier.copy_(torch.tensor([[2.0], [0.5]]))
        actor.log_std_offset.copy_(torch.tensor([[0.1], [-0.3]]))
        _, log_std = actor.mean_log_std(obs)
        torch.testing.assert_close(log_std[0], 2.0 * head[0] + 0.1)
        torch.testing.assert_close(log_std[1], 0.5 * head[1] - 0.3)
        actor.log_std_offset.fill_(-100.0)
        assert torch.all(actor.mean_log_std(obs)[1] == -20.0)  # clamped to [-20, 2]
        actor.log_std_offset.fill_(100.0)
        assert torch.all(actor.mean_log_std(obs)[1] == 2.0)
    # one training step moves them, and SAC's class defaults (offbench generate) keep the old actor
    algo = build("cql", "hopper-medium-expert", [0], {**SMALL_CQL, "batch_size": "8", "n_actions": "2"})
    before = algo.actor.log_std_offset.detach().clone()
    algo.update({k: v[None] for k, v in algo.make_sampler(toy_dataset(), np.random.default_rng(0)).sample().items()})
    assert not torch.equal(before, algo.actor.log_std_offset.detach())
    sac = get_algorithm("cql").Config()
    assert (sac.corl_init, sac.learn_log_std_scale, sac.log_std_min) == (False, False, -5.0)


def test_rewards_are_normalized_where_corls_yamls_say_so() -> None:
    data = toy_dataset()
    r = data.episode_returns
    scaled = pytest.approx(1000.0 / (r.max() - r.min()))  # CORL modify_reward: r * 1000 / (max - min return)
    assert build("cql", "hopper-medium", [0], SMALL_CQL, data).reward_scale == scaled
    assert build("cql", "hopper-medium-replay", [0], SMALL_CQL, data).reward_scale == 1.0
    assert build("iql", "hopper-medium-replay", [0], data=data).reward_scale == scaled
    assert build("iql", "walker2d-medium-replay", [0], data=data).reward_scale == 1.0
    assert build("iql", "walker2d-medium-replay", [0], {"recipe": "paper"}, data=data).reward_scale == scaled
    # and a training batch carries the scaled rewards
    algo = build("iql", "hopper-medium", [0], data=data)
    batch = algo.make_sampler(data, np.random.default_rng(0)).sample()
    np.testing.assert_allclose(algo.tensors({k: v[None] for k, v in batch.items()})["rewards"][0].numpy(),
                               batch["rewards"] * 1000.0 / (r.max() - r.min()), rtol=1e-5)


def test_awac_policy_mean_is_unbounded_and_its_log_std_clamped_to_corls_range() -> None:
    algo = build("awac", "hopper-medium", [0])
    assert isinstance(algo.actor, GaussianActor)
    assert len(seed_linears(algo.actor.net)) == 4 and len(seed_linears(algo.critic.q1)) == 4  # 3 x 256
    last: SeedLinear = seed_linears(algo.actor.net)[-1]
    obs = torch.zeros(1, 4, 3)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(3.0)
        assert torch.all(algo.act(obs, [torch.Generator()]) == 3.0)  # no tanh: evaluated at the raw mean
        assert torch.all(algo.sample_pi(algo.actor(obs)).abs() <= 1.0)  # samples clipped to [-1, 1]
        algo.actor.log_std.fill_(-30.0)
        torch.testing.assert_close(algo.actor.std(obs[..., :2]), torch.full((1, 1, 2), math.exp(-20.0)))
        algo.actor.log_std.fill_(5.0)
        torch.testing.assert_close(algo.actor.std(obs[..., :2]), torch.full((1, 1, 2), math.exp(2.0)))


def test_iql_deterministic_actor_loss_on_a_hand_made_batch() -> None:
    algo = build("iql", "hopper-medium", [0])
    assert isinstance(algo.actor, DeterministicActor) and not hasattr(algo.actor, "log_std")
    last = seed_linears(algo.actor.net)[-1]
    with torch.no_grad():  # the policy outputs 0.5 in every dimension
        last.weight.zero_()
        last.bias.fill_(math.atanh(0.5))
    b = {"obs": torch.randn(1, 3, 3), "actions": torch.tensor([[[0.5, 0.5], [0.0, 0.5], [1.0, -0.5]]])}
    adv = torch.tensor([[0.0, math.log(2.0) / 3.0, 10.0]])
    # squared errors summed over actions: 0, 0.25, 1.25; weights exp(3 * adv) capped at 100: 1, 2, 100
    expected = (0.0 * 1 + 0.25 * 2 + 1.25 * 100) / 3
    loss = algo.actor_loss(b, adv)
    assert loss.shape == (1,) and loss.item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(algo.act(b["obs"], [torch.Generator()]), torch.full((1, 3, 2), 0.5))
    # the Gaussian actor elsewhere: negative log-likelihood, log-std clamped to [-20, 2]
    gauss = build("iql", "walker2d-medium-replay", [0])
    assert isinstance(gauss.actor, GaussianActor) and gauss.actor.tanh_mean
    with torch.no_grad():
        gauss.actor.log_std.fill_(-30.0)
    assert gauss.actor.std(b["actions"]).max().item() == pytest.approx(math.exp(-20.0))


def test_an_unknown_recipe_is_a_usage_error_naming_the_recipes(tmp_path) -> None:
    from offbench.launch import plan_runs

    with pytest.raises(UsageError, match="unknown recipe 'bogus'.*recipes: corl, paper"):
        resolved("iql", "hopper-medium", {"recipe": "bogus"})
    with pytest.raises(UsageError, match="recipes: corl, paper"):
        plan_runs(["hopper-medium"], ["iql"], 1, tmp_path, ["recipe=bogus"])
    [plan] = plan_runs(["hopper-medium"], ["iql"], 1, tmp_path, ["iql.recipe=paper"])
    assert plan.config.recipe == "paper" and plan.config.normalize_reward and not plan.config.deterministic


@pytest.mark.parametrize(("algo", "name"), [("cql", "hopper-medium"), ("iql", "hopper-medium"),
                                            ("awac", "hopper-medium"), ("cql", "antmaze-umaze"),
                                            ("iql", "pen-human")])
def test_a_seed_resumed_from_a_groups_checkpoint_continues_as_if_alone(algo: str, name: str, float64: None) -> None:
    """CORL's new parameters (CQL's log-std multiplier and offset, its Lagrange multiplier and
    max-target backup on AntMaze, IQL's deterministic actor and its actor dropout on Adroit) are
    seed-batched and checkpointed: seed 1 trained in a pair for 3 steps, then resumed alone from
    its part of the checkpoint for 3 more, ends exactly where 6 steps alone end."""
    from offbench.batches import SeedBatches
    from tests.test_seed_batching import assert_same_state, train

    data = toy_dataset()
    small = {**(SMALL_CQL if algo == "cql" else SMALL), "batch_size": "16", **({"n_actions": "3"} if algo == "cql" else {})}

    def make(seeds: list[int]):
        model = build(algo, name, seeds, small, data)
        return model, SeedBatches([model.make_sampler(data, np.random.default_rng(s)) for s in seeds])

    pair, pair_batches = make([0, 1])
    train(pair, pair_batches, 3)
    resumed, batches = make([1])
    resumed.load_seed_states([pair.seed_states()[1]])
    batches.samplers[0].rng.bit_generator.state = pair_batches.samplers[1].rng.bit_generator.state
    train(resumed, batches, 3)
    alone, alone_batches = make([1])
    train(alone, alone_batches, 6)
    assert_same_state(resumed.seed_states()[0]["algo"], alone.seed_states()[0]["algo"])
