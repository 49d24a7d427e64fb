"""The defining mechanisms of the policy-constrained offline methods: BCQ, BEAR, BRAC-v."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offbench.algos import get_algorithm
from offbench.data.dataset import Dataset
from tests.test_algorithms import SPEC, one_seed
from tests.test_discrete_q import SPEC as DISCRETE


def clustered(n: int = 2000, centre: float = 0.5, spread: float = 0.05, seed: int = 0) -> Dataset:
    """Actions clustered at ``centre`` in every dimension; the reward grows towards -1, where the
    data never go, so an unconstrained greedy policy leaves the data's support."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    actions = np.clip(rng.normal(centre, spread, (n, 2)), -1, 1).astype(np.float32)
    rewards = (-actions.sum(1)).astype(np.float32)
    terminals = np.zeros(n, bool)
    terminals[9::10] = True
    return Dataset(observations=obs, actions=actions, rewards=rewards, terminals=terminals,
                   timeouts=np.zeros(n, bool), episode_starts=np.arange(0, n, 10))


def make(name: str, data: Dataset, spec=SPEC, **overrides: object):
    cls = get_algorithm(name)
    cfg = cls.Config.resolve(spec, {k: str(v) for k, v in overrides.items()})
    return cls.create(cfg, cls.describe(cfg, data, spec), torch.device("cpu"), [0])


def train(algo, data: Dataset, steps: int) -> None:
    sampler = algo.make_sampler(data, np.random.default_rng(1))
    for _ in range(steps):
        algo.update(one_seed(sampler.sample()))


def bcq_actions(data: Dataset, phi: float) -> np.ndarray:
    algo = make("bcq", data, vae_hidden="[64, 64]", actor_hidden="[64, 64]", critic_hidden="[64, 64]",
                eval_samples=20, phi=phi)
    train(algo, data, 400)
    with torch.no_grad():
        obs = algo.norm(torch.as_tensor(data.observations[:200]))[None]
        return algo.act(obs, [torch.Generator().manual_seed(0)])[0].numpy()


def test_bcq_actions_stay_near_the_data_support() -> None:
    data = clustered()
    actions = bcq_actions(data, phi=0.05)
    # the VAE decodes near the cluster (centre 0.5, std 0.05) and the perturbation adds at most
    # phi = 0.05: the actions stay within the cluster's +-3 std plus phi (and a margin for the
    # VAE's fit), though Q prefers -1
    assert np.abs(actions - 0.5).max() < 0.15 + 0.05 + 0.05, actions.min()
    assert actions.mean() < 0.5  # the perturbation moves them the way Q prefers, within its bound
    # the constraint is what keeps them there: a perturbation allowed to span [-1, 1] leaves the support
    assert bcq_actions(data, phi=2.0).min() < 0.0


def test_discrete_bcq_only_bootstraps_from_actions_the_data_take() -> None:
    n = 400
    rng = np.random.default_rng(0)
    data = Dataset(observations=rng.normal(size=(n, 2)).astype(np.float32), actions=np.zeros(n, np.int64),
                   rewards=np.zeros(n, np.float32), terminals=np.zeros(n, bool), timeouts=np.zeros(n, bool),
                   episode_starts=np.array([0]), attrs={"num_actions": 3})
    algo = make("bcq", data, DISCRETE, lr=1e-2)
    train(algo, data, 200)
    with torch.no_grad():
        # the data take action 0 only: the behaviour head allows it alone, so neither the target's
        # next action nor the policy's action is ever 1 or 2, whatever their Q-values
        obs = torch.as_tensor(data.observations[:50])[None]
        _, logits = algo.q(obs)
        allowed = algo.allowed(logits)
        values = algo.action_values(obs)
    assert allowed[..., 0].all() and not allowed[..., 1:].any()
    assert (values.argmax(-1) == 0).all()


def test_bear_mmd_is_zero_for_one_sample_set_and_grows_apart() -> None:
    from offbench.algos.bear import mmd

    x = torch.randn(4, 5, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(mmd(x, x, "laplacian", 10.0), torch.full((4,), 1e-3), atol=1e-6)  # sqrt(1e-6)
    near, far = (mmd(x, x + shift, "laplacian", 10.0).mean() for shift in (0.1, 3.0))
    assert far > near > 1e-3
    assert mmd(x, x + 3.0, "gaussian", 20.0).mean() > mmd(x, x + 0.1, "gaussian", 20.0).mean()


def test_bear_mmd_falls_as_the_penalty_rises() -> None:
    data = clustered()

    def final_mmd(alpha: float) -> float:
        algo = make("bear", data, mode="manual", manual_alpha=alpha, warmup_steps=0, hidden="[64, 64]",
                    vae_hidden="[64, 64]", actor_lr=1e-3)
        sampler = algo.make_sampler(data, np.random.default_rng(1))
        values = [float(algo.update(one_seed(sampler.sample()))["mmd"]) for _ in range(300)]
        return float(np.mean(values[-50:]))

    weak, strong = final_mmd(0.0), final_mmd(100.0)
    assert strong < weak, (strong, weak)


def test_bear_auto_alpha_rises_while_the_mmd_exceeds_epsilon() -> None:
    data = clustered()
    algo = make("bear", data, epsilon=1e-6, warmup_steps=0, hidden="[32]", vae_hidden="[32]")
    start = float(algo.log_alpha.detach()[0])
    train(algo, data, 50)
    assert float(algo.log_alpha.detach()[0]) > start  # every MMD estimate exceeds 1e-6: ascent raises alpha


def test_brac_kl_estimate_is_the_kl_of_the_two_gaussians() -> None:
    """Both policies made state-independent Gaussians (before the tanh, which leaves the KL as it
    is): the sampled estimate converges to the closed form, within 4 of its standard errors."""
    data = clustered(n=64)
    algo = make("brac", data, actor_hidden="[8]")
    with torch.no_grad():
        for net, mean, log_std in ((algo.actor, 0.3, -1.0), (algo.behavior, -0.2, -0.5)):
            last = net.net[-1]
            last.weight.zero_()
            last.bias[..., :2] = mean
            last.bias[..., 2:] = float(np.arctanh((log_std + 5) / 2.5 - 1))  # log_std = -5 + 2.5 (tanh(h) + 1)
        obs = torch.zeros(1, 1, 3)
        n = 200_000
        estimate = float(algo.divergence(obs, torch.randn(1, 1, n, 2, generator=torch.Generator().manual_seed(0))))
    sp, sb, mp, mb = np.exp(-1.0), np.exp(-0.5), 0.3, -0.2
    exact = 2 * (np.log(sb / sp) + (sp**2 + (mp - mb) ** 2) / (2 * sb**2) - 0.5)  # two dimensions
    # the per-sample log-ratio has a standard deviation below 1 here: 4 / sqrt(n) bounds the error;
    # the clip of actions 1e-3 inside [-1, 1] touches none (|pre-tanh| < 3.8 for these Gaussians)
    assert abs(estimate - exact) < 4 / np.sqrt(n) + 1e-3, (estimate, exact)


def test_brac_value_penalty_is_alpha_times_the_divergence() -> None:
    data = clustered(n=64)
    b = {"rewards": torch.tensor([[1.0, 0.5]]), "dones": torch.tensor([[0.0, 1.0]])}
    q, div = torch.tensor([[2.0, 3.0]]), torch.tensor([[0.4, 0.7]])
    with_penalty = make("brac", data, alpha=0.3).td_target(b, q, div)
    without = make("brac", data, alpha=0.3, value_penalty="false").td_target(b, q, div)
    # r + gamma (1 - done) (Q - alpha D): the penalty reaches only a state that is not terminal
    assert torch.allclose(without - with_penalty, torch.tensor([[0.99 * 0.3 * 0.4, 0.0]]))


def test_brac_fits_the_behaviour_policy_first_then_the_actor_critic() -> None:
    data = clustered()
    algo = make("brac", data, behavior_steps=50, warmup_steps=10, actor_hidden="[32]", critic_hidden="[32]")
    sampler = algo.make_sampler(data, np.random.default_rng(0))
    first = [algo.update(one_seed(sampler.sample())) for _ in range(50)]
    assert all(set(m) == {"behavior_nll", "behavior_entropy_alpha"} for m in first)
    assert float(first[-1]["behavior_nll"]) < float(first[0]["behavior_nll"])  # the likelihood rises
    after = algo.update(one_seed(sampler.sample()))
    assert {"critic_loss", "actor_loss", "kl"} <= set(after)


def test_brac_relu_v2_lets_a_zero_weight_recover() -> None:
    """``utils.relu_v2``: relu forward; backward blocks only a step that would push a non-positive
    input further down (an upstream gradient > 0 there); elsewhere the gradient passes."""
    from offbench.algos.brac import relu_v2

    x = torch.tensor([-1.0, 0.0, 2.0, -1.0], requires_grad=True)
    y = relu_v2(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.0, 2.0, 0.0]))
    y.backward(torch.tensor([1.0, 1.0, 1.0, -1.0]))
    assert torch.equal(x.grad, torch.tensor([0.0, 0.0, 1.0, -1.0]))


def test_brac_behaviour_entropy_weight_tracks_its_target() -> None:
    """bc_agent's entropy weight descends ``alpha_e * (-log b(a) - target)``: with the behaviour's
    entropy below the target (-action_dim) it rises, so the loss's ``alpha_e * log b(a~b)`` pushes
    the entropy up."""
    data = clustered()
    algo = make("brac", data, behavior_steps=100, actor_hidden="[32]", critic_hidden="[32]")
    assert algo.target_entropy == -2.0 and torch.equal(algo.alpha_entropy.detach(), torch.ones(1))
    sampler = algo.make_sampler(data, np.random.default_rng(0))
    logs = algo.update(one_seed(sampler.sample()))
    # a fresh network's log-std is about -2.5 (tanh(h) ~ 0 in [-5, 0]): the Gaussian's entropy is
    # 2 * (0.5 log(2 pi e) - 2.5) = -2.16 and the tanh only lowers it, below the target -2; so
    # alpha_e's first Adam step (its size the behaviour lr, 5e-4) raises it
    assert float(logs["behavior_entropy_alpha"]) == pytest.approx(1.0 + 5e-4, rel=1e-5)
    off = make("brac", data, behavior_steps=100, behavior_entropy="false", actor_hidden="[32]",
               critic_hidden="[32]")
    assert set(off.update(one_seed(sampler.sample()))) == {"behavior_nll"}


def test_bear_d4rl_recipe_draws_targets_from_the_current_policy_and_scores_its_first_sample() -> None:
    """rlkit's BEAR: the critics' targets come from the current policy (the target actor unused),
    the actor's Q term from the first of its MMD samples; log alpha starts at 0."""
    data = clustered(n=200)
    algo = make("bear", data, hidden="[16]", vae_hidden="[16]", warmup_steps=0)
    c = algo.config
    assert (c.recipe, c.target_actor, c.actor_q, c.clip_actor_noise, c.log_alpha_init) == (
        "d4rl", False, "first", False, "zero")
    assert torch.equal(algo.log_alpha.detach(), torch.zeros(1))
    with torch.no_grad():  # a target actor far off would change every target, were it used
        for p in algo.actor_target.parameters():
            p.add_(10.0)
    b = one_seed(algo.make_sampler(data, np.random.default_rng(0)).sample())
    state = algo.noise.get_state(0)
    algo.update(b)
    after_far = [p.detach().clone() for p in algo.critic.parameters()]
    fresh = make("bear", data, hidden="[16]", vae_hidden="[16]", warmup_steps=0)
    fresh.noise.set_state(0, state)
    fresh.update(b)
    for a, f in zip(after_far, fresh.critic.parameters()):
        torch.testing.assert_close(a, f.detach(), rtol=0, atol=0)
    authors = make("bear", data, recipe="authors", hidden="[16]", vae_hidden="[16]")
    assert (authors.config.target_actor, authors.config.actor_q, authors.config.batch_size) == (True, "mean", 100)
