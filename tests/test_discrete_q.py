"""The defining mechanisms of the discrete-action Q-learners: QR-DQN's quantiles, REM's mixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import brentq

from offbench.algos import get_algorithm
from offbench.data.dataset import Dataset
from offbench.data.spec import DatasetSpec
from tests.test_algorithms import one_seed

SPEC = DatasetSpec(name="toy-discrete", domain="keytodoor", source="test", env="CartPole-v1", max_episode_steps=50,
                   ref_min_return=0.0, ref_max_return=1.0, target_returns=(1.0,))


def bandit(rewards: np.ndarray, n_actions: int = 2) -> Dataset:
    """One-step episodes from one state: action 0 pays ``rewards``, action 1 pays 2."""
    n = len(rewards)
    actions = np.arange(n) % n_actions
    r = np.where(actions == 0, rewards, 2.0).astype(np.float32)
    return Dataset(observations=np.zeros((n, 2), np.float32), actions=actions.astype(np.int64), rewards=r,
                   terminals=np.ones(n, bool), timeouts=np.zeros(n, bool), episode_starts=np.arange(n),
                   next_observations=np.zeros((n, 2), np.float32))


def make(name: str, data: Dataset, **overrides: object):
    cls = get_algorithm(name)
    cfg = cls.Config.for_dataset(SPEC).with_overrides({k: str(v) for k, v in overrides.items()})
    return cls.create(cfg, cls.describe(cfg, data, SPEC), torch.device("cpu"), [0])


def huber_quantile(x: np.ndarray, tau: float, kappa: float) -> float:
    """The minimizer q of E[|tau - 1{x < q}| huber_kappa(x - q)]: the root of its derivative."""
    return brentq(lambda q: np.mean(np.abs(tau - (x < q)) * np.clip(x - q, -kappa, kappa)), x.min() - 1, x.max() + 1)


def test_qrdqn_recovers_the_quantiles_of_a_known_return_distribution() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.uniform(0, 10, 4000)  # the return of action 0: one step, uniform on [0, 10]
    data = bandit(rewards)
    algo = make("qrdqn", data, num_quantiles=16, lr=3e-3, batch_size=512, hidden="[32]", normalize_obs="false")
    sampler = algo.make_sampler(data, np.random.default_rng(1))
    for _ in range(1500):
        algo.update(one_seed(sampler.sample()))
    with torch.no_grad():
        z = algo.quantiles(torch.zeros(1, 1, 2))[0, 0].numpy()  # (actions, quantiles)
    seen = data.rewards[data.actions == 0].astype(np.float64)
    exact = np.array([huber_quantile(seen, t, 1.0) for t in algo.tau_hat.numpy()])
    # terminal steps: the target is the reward itself, so the fixed point is the reward sample's
    # kappa-Huber quantiles; what is left is Adam's jitter at lr 3e-3 on a 512-sample batch whose
    # quantile estimate has a standard error of about sqrt(tau (1 - tau) / 256) / density (0.1)
    # = 0.31 at the median: 0.5 bounds each quantile, 0.2 their mean error
    assert np.abs(z[0] - exact).max() < 0.5 and np.abs(z[0] - exact).mean() < 0.2, (z[0], exact)
    assert np.all(np.diff(z[0]) > -0.2)  # ordered, as quantiles are
    assert np.abs(z[1] - 2.0).max() < 0.2  # a constant return: every quantile at it
    assert z[0].mean() == pytest.approx(5.0, abs=0.3)


def test_qrdqn_kappa_zero_is_the_pinball_loss() -> None:
    from offbench.algos.qrdqn import quantile_huber_loss

    z = torch.tensor([[[1.0, 3.0]]])
    target = torch.tensor([[[0.0, 2.0, 4.0]]])
    tau = torch.tensor([0.25, 0.75])
    u = target[..., None, :] - z[..., :, None]
    pinball = ((tau[:, None] - (u < 0).float()).abs() * u.abs()).mean(-1).sum(-1)
    assert quantile_huber_loss(z, target, tau, 0.0) == pytest.approx(pinball.item())


def test_rem_with_one_head_is_dqn() -> None:
    rng = np.random.default_rng(0)
    n = 64
    data = Dataset(observations=rng.normal(size=(n, 3)).astype(np.float32), actions=rng.integers(0, 3, n),
                   rewards=rng.normal(size=n).astype(np.float32), terminals=rng.random(n) < 0.2,
                   timeouts=np.zeros(n, bool), episode_starts=np.array([0]))
    algo = make("rem", data, num_heads=1, hidden="[16]", target_update_every=0, tau=0.5)
    b = algo.tensors(one_seed(algo.make_sampler(data, np.random.default_rng(0)).sample()))
    loss, _ = algo.loss(b)
    with torch.no_grad():  # DQN: Huber TD error to r + gamma (1 - done) max_a' Q_target(s', a')
        target = b["rewards"] + 0.99 * (1 - b["dones"]) * algo.q_target(b["next_obs"]).max(-1).values
    q = algo.q(b["obs"]).gather(-1, b["actions"][..., None]).squeeze(-1)
    dqn = F.smooth_l1_loss(q, target)
    assert loss.item() == pytest.approx(dqn.item(), rel=1e-6)


def test_rem_mixes_its_heads_with_random_convex_weights() -> None:
    data = bandit(np.ones(32))
    algo = make("rem", data, num_heads=5)
    w1, w2 = algo.mixture(), algo.mixture()
    assert w1.shape == (1, 5) and torch.all(w1 >= 0) and w1.sum().item() == pytest.approx(1.0)
    assert not torch.allclose(w1, w2)  # a new combination per minibatch


@pytest.mark.parametrize("name", ["qrdqn", "rem"])
def test_discrete_q_learners_refuse_continuous_actions(name: str) -> None:
    from offbench.errors import UsageError
    from tests.test_algorithms import SPEC as CONTINUOUS, toy_dataset

    cls = get_algorithm(name)
    data = toy_dataset()
    cfg = cls.Config.for_dataset(CONTINUOUS)
    with pytest.raises(UsageError, match="needs discrete actions"):
        cls.create(cfg, cls.describe(cfg, data, CONTINUOUS), torch.device("cpu"), [0])
