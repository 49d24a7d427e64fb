"""Decision Transformer: causality, padding invariance, and evaluation-time behaviour."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from offbench.algos.dt import DecisionTransformer, DTConfig

# The equalities below are mathematical (a masked token cannot reach an earlier output; the
# shortcut computes a subset of the same sums), so they are checked in float64 (``float64``
# fixture) where only the order of operations can differ: a forward pass of this size sums at
# most a few hundred products per output, a relative error of ~100 * 2**-53 ~ 1e-14 per layer.
# RTOL/ATOL leave a hundredfold margin over that for three layers and are ~1e6 below a change that
# leaks information (a later token moving an earlier output changes it by O(1e-2) or more).
RTOL, ATOL = 1e-10, 1e-12


def model(discrete: bool = True) -> Callable[..., torch.Tensor]:
    """A one-seed model called on (B, K, ...) inputs (its seed axis added and removed)."""
    torch.manual_seed(0)
    cfg = DTConfig(embed_dim=32, n_layers=2, n_heads=2, dropout=0.1)
    net = DecisionTransformer(obs_shape=(5,), action_dim=4 if discrete else 3, discrete=discrete, max_timestep=30, cfg=cfg)
    return lambda *xs: net(*(x[None] for x in xs))[0]


def inputs(b: int = 3, k: int = 6, discrete: bool = True) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    states = torch.randn(b, k, 5, generator=g)
    actions = torch.randint(4, (b, k), generator=g) if discrete else torch.rand(b, k, 3, generator=g) * 2 - 1
    rtg = torch.rand(b, k, generator=g)
    timesteps = torch.arange(k).expand(b, k).clone()
    return states, actions, rtg, timesteps, torch.ones(b, k)


def test_later_tokens_do_not_change_earlier_predictions(float64: None) -> None:
    for discrete in (True, False):
        m = model(discrete)
        s, a, r, t, mask = inputs(discrete=discrete)
        base = m(s, a, r, t, mask)
        for pos in range(1, 6):
            s2, a2, r2 = s.clone(), a.clone(), r.clone()
            s2[:, pos] += 3.0
            r2[:, pos] += 5.0
            a2[:, pos - 1] = (a2[:, pos - 1] + 1) % 4 if discrete else -a2[:, pos - 1]
            out = m(s2, a2, r2, t, mask)
            # predictions before step pos-1 are untouched; the action at pos-1 itself is not an input
            # to its own prediction, so step pos-1 is untouched too
            torch.testing.assert_close(out[:, : pos], base[:, : pos], rtol=RTOL, atol=ATOL)
            assert not torch.allclose(out[:, pos], base[:, pos], atol=1e-4)


def test_left_padding_does_not_change_predictions(float64: None) -> None:
    m = model()
    s, a, r, t, mask = inputs(b=2, k=4)
    short = m(s, a, r, t, mask)
    pad = 3
    padded = m(torch.cat([torch.randn(2, pad, 5), s], 1), torch.cat([torch.randint(4, (2, pad)), a], 1),
               torch.cat([torch.rand(2, pad), r], 1), torch.cat([torch.zeros(2, pad, dtype=torch.long), t], 1),
               torch.cat([torch.zeros(2, pad), mask], 1))
    torch.testing.assert_close(padded[:, pad:], short, rtol=RTOL, atol=ATOL)


def test_outputs_are_finite_and_bounded() -> None:
    out = model(discrete=False)(*inputs(discrete=False))
    assert torch.isfinite(out).all() and (out.abs() <= 1).all()
    assert np.isfinite(model()(*inputs()).detach().numpy()).all()


def test_last_only_prediction_equals_the_full_forward_pass(float64: None) -> None:
    """Evaluation's shortcut (no last action token, final block for one token) changes no number."""
    for discrete in (True, False):
        torch.manual_seed(0)
        cfg = DTConfig(embed_dim=32, n_layers=3, n_heads=2, dropout=0.1)
        net = DecisionTransformer(obs_shape=(5,), action_dim=4 if discrete else 3, discrete=discrete,
                                  max_timestep=30, cfg=cfg)
        s, a, r, t, mask = inputs(b=4, k=6, discrete=discrete)
        mask[0, :3] = 0  # a left-padded window
        xs = [x[None] for x in (s, a, r, t, mask)]
        full = net(*xs)[:, :, -1]
        last = net(*xs, last_only=True)
        assert last.shape == full.shape
        torch.testing.assert_close(last, full, rtol=RTOL, atol=ATOL)


def test_a_block_computed_for_some_rows_equals_those_rows_of_the_full_block(float64: None) -> None:
    """The final block computes only the state tokens (training) or the last one (evaluation)."""
    from offbench.algos.dt import Block
    from offbench.algos.seeded import seeded_init

    with seeded_init([0, 1]):
        block = Block(16, 2, 0.0, "relu")
    x = torch.randn(2, 3, 9, 16, generator=torch.Generator().manual_seed(2))
    attn_mask = torch.ones(9, 9, dtype=torch.bool).tril().expand(6, 1, 9, 9)
    full = block(x, attn_mask, None)
    for rows in (slice(1, None, 3), slice(8, 9), slice(0, 9)):
        torch.testing.assert_close(block(x, attn_mask, None, rows=rows), full[:, :, rows], rtol=RTOL, atol=ATOL)


def test_gptbc_is_dts_gpt_without_returns() -> None:
    """minGPT's naive model: (s, a) tokens only, so the returns change nothing; the action at step
    t is predicted from s_t's token, which sees s_1, a_1, ..., s_t but not a_t."""
    import torch

    from offbench.algos.dt import DecisionTransformer
    from offbench.algos.gpt_bc import GPTBCConfig

    torch.manual_seed(0)
    cfg = GPTBCConfig(embed_dim=16, n_layers=2, n_heads=2, context=4, dropout=0.0)
    model = DecisionTransformer((3,), 5, True, 50, cfg).eval()
    states = torch.randn(1, 2, 4, 3)
    actions = torch.randint(0, 5, (1, 2, 4))
    t = torch.arange(4).expand(1, 2, 4)
    mask = torch.ones(1, 2, 4)
    out = model(states, actions, torch.randn(1, 2, 4), t, mask)
    assert torch.equal(out, model(states, actions, torch.randn(1, 2, 4) * 100, t, mask))  # no return token
    changed = actions.clone()
    changed[..., 2] = (changed[..., 2] + 1) % 5
    again = model(states, changed, torch.zeros(1, 2, 4), t, mask)
    assert torch.allclose(out[..., :3, :], again[..., :3, :]) and not torch.allclose(out[..., 3, :], again[..., 3, :])
    last = model(states, actions, torch.zeros(1, 2, 4), t, mask, last_only=True)
    assert torch.allclose(last, out[..., -1, :], atol=1e-6)
