"""The deadly triad in offline RL, runnable: function approximation + bootstrapping + off-policy
(here: offline) data make naive Q-learning diverge; constraining the backup to the data's actions
(BCQ's idea) or penalizing unsupported actions (CQL's) keeps it bounded. Two small problems:

1. **Linear Q-learning on a two-state offline MDP** (the construction of Tsitsiklis & Van Roy 1997,
   with an action the data never take). States s0, s1; actions ``seen`` (in the data) and
   ``unseen``. Data: (s0, seen, r=0, s1) and (s1, seen, r=0, terminal); every true Q-value is 0.
   Q(s, a) = theta . phi(s, a) with phi(s0, seen) = (1, 0), phi(s1, seen) = (0, 1),
   phi(s0, unseen) = (0, 0), phi(s1, unseen) = (2, 0): the unseen action at s1 shares the first
   weight, doubled. The backup of (s0, seen) is ``gamma * max(theta_2, 2 theta_1)``: as soon as
   2 theta_1 > theta_2 the step is ``theta_1 += lr * (2 gamma - 1) * theta_1``, growing without
   bound for gamma > 1/2 though no data ever say so. *Constrained*: the max runs over the data's
   actions at s' only (``theta_2``), and everything decays to 0. *CQL*: the penalty
   ``alpha * (logsumexp_a Q(s, a) - Q(s, a_data))`` pushes the unseen action down; bounded.
2. **Tabular offline Q-learning on a gridworld** (the same effect with the table's missing
   entries). A 5x5 grid, reward -1 per step until the goal corner; the behaviour policy only
   moves up or right, so the table's left/down entries are never updated and keep their initial
   0, above every true value (all negative). Naive Q-learning bootstraps from them: the seen
   entries converge to -1 everywhere (the unseen 0 one step away), and the greedy policy picks
   actions the data never took. Restricting the max to the data's actions recovers the true
   values exactly.

:func:`run` returns both experiments' trajectories; :func:`figure` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GAMMA = 0.99
PHI = {("s0", "seen"): (1.0, 0.0), ("s1", "seen"): (0.0, 1.0), ("s0", "unseen"): (0.0, 0.0), ("s1", "unseen"): (2.0, 0.0)}
DATA = (("s0", "seen", 0.0, "s1"), ("s1", "seen", 0.0, None))  # (s, a, r, s'), s' None: terminal
ACTIONS = ("seen", "unseen")


@dataclass
class Triad:
    """Q(s1, unseen) and Q(s0, seen) after each iteration, per method."""

    iterations: int
    q_unseen: dict[str, list[float]] = field(default_factory=dict)
    q_seen: dict[str, list[float]] = field(default_factory=dict)


def linear_q(method: str, iterations: int = 400, lr: float = 0.2, gamma: float = GAMMA,
             cql_alpha: float = 1.0, theta0: tuple[float, float] = (0.1, 0.1)) -> tuple[np.ndarray, np.ndarray]:
    """Semi-gradient Q-learning over the whole dataset each iteration: ``method`` naive
    (max over all actions), constrained (max over the data's actions) or cql (naive + penalty).
    Returns (Q(s1, unseen), Q(s0, seen)) per iteration."""
    theta = np.array(theta0, dtype=np.float64)
    phi = {k: np.array(v) for k, v in PHI.items()}
    q_unseen, q_seen = [], []
    for _ in range(iterations):
        grad = np.zeros(2)
        for s, a, r, s2 in DATA:
            q = theta @ phi[(s, a)]
            if s2 is None:
                y = r
            elif method == "constrained":  # the max over the actions the data take at s'
                y = r + gamma * max(theta @ phi[(s2, b)] for b in {b for s_, b, *_ in DATA if s_ == s2})
            else:
                y = r + gamma * max(theta @ phi[(s2, b)] for b in ACTIONS)
            grad += (y - q) * phi[(s, a)]
            if method == "cql":  # minus the gradient of logsumexp_b Q(s, b) - Q(s, a)
                qs = np.array([theta @ phi[(s, b)] for b in ACTIONS])
                p = np.exp(qs - qs.max())
                p /= p.sum()
                grad -= cql_alpha * (sum(pb * phi[(s, b)] for pb, b in zip(p, ACTIONS)) - phi[(s, a)])
        theta = theta + lr * grad / len(DATA)
        q_unseen.append(float(theta @ phi[("s1", "unseen")]))
        q_seen.append(float(theta @ phi[("s0", "seen")]))
    return np.array(q_unseen), np.array(q_seen)


# -- the tabular gridworld -----------------------------------------------------------------------
SIZE = 5
MOVES = {"up": (0, 1), "right": (1, 0), "left": (-1, 0), "down": (0, -1)}
GRID_GAMMA = 0.95


def _step(cell: tuple[int, int], move: str) -> tuple[int, int]:
    dx, dy = MOVES[move]
    return min(max(cell[0] + dx, 0), SIZE - 1), min(max(cell[1] + dy, 0), SIZE - 1)


def grid_dataset(episodes: int = 200, seed: int = 0) -> list[tuple[tuple[int, int], str, float, tuple[int, int], bool]]:
    """Episodes of a behaviour policy that moves up or right at random, from random cells to the
    goal (SIZE-1, SIZE-1): (cell, move, reward -1, next cell, reached the goal)."""
    rng = np.random.default_rng(seed)
    goal, out = (SIZE - 1, SIZE - 1), []
    for _ in range(episodes):
        cell = (int(rng.integers(SIZE)), int(rng.integers(SIZE)))
        while cell != goal:
            move = ("up", "right")[int(rng.integers(2))]
            nxt = _step(cell, move)
            out.append((cell, move, -1.0, nxt, nxt == goal))
            cell = nxt
    return out


def tabular_q(constrained: bool, sweeps: int = 60, lr: float = 0.5) -> tuple[np.ndarray, dict, dict]:
    """Offline Q-learning sweeps over the gridworld data (Q initialized to 0). Returns the largest
    error of the seen entries against the true values after each sweep, the final table and the
    true values (the data's actions are optimal here, so Q* restricted to them is the truth)."""
    data = grid_dataset()
    seen: dict[tuple[int, int], set[str]] = {}
    for cell, move, *_ in data:
        seen.setdefault(cell, set()).add(move)
    q = {(x, y, m): 0.0 for x in range(SIZE) for y in range(SIZE) for m in MOVES}
    goal = (SIZE - 1, SIZE - 1)
    true = {}
    for (x, y, m) in q:  # steps to the goal after this move, all of them -1
        nx, ny = _step((x, y), m)
        k = (SIZE - 1 - nx) + (SIZE - 1 - ny)
        true[(x, y, m)] = -1.0 if (nx, ny) == goal else -1.0 - GRID_GAMMA * (1 - GRID_GAMMA**k) / (1 - GRID_GAMMA)
    errors = []
    for _ in range(sweeps):
        for cell, move, r, nxt, done in data:
            allowed = seen.get(nxt, set()) if constrained else set(MOVES)
            best = max((q[(*nxt, m)] for m in allowed), default=0.0)
            target = r + (0.0 if done else GRID_GAMMA * best)
            q[(*cell, move)] += lr * (target - q[(*cell, move)])
        errors.append(max(abs(q[(*c, m)] - true[(*c, m)]) for c, ms in seen.items() for m in ms))
    return np.array(errors), q, true


def greedy_moves_outside_data(q: dict, constrained: bool) -> float:
    """The fraction of the data's cells where the greedy action is one the data never take there."""
    data = grid_dataset()
    seen: dict[tuple[int, int], set[str]] = {}
    for cell, move, *_ in data:
        seen.setdefault(cell, set()).add(move)
    outside = 0
    for cell, moves in seen.items():
        options = moves if constrained else MOVES
        best = max(options, key=lambda m: q[(*cell, m)])
        outside += best not in moves
    return outside / len(seen)


def run(iterations: int = 400) -> dict[str, Any]:
    """Both experiments; JSON-ready."""
    out: dict[str, Any] = {"linear": {}, "tabular": {}}
    for method in ("naive", "constrained", "cql"):
        unseen, seen_q = linear_q(method, iterations)
        out["linear"][method] = {"q_unseen": unseen.tolist(), "q_seen": seen_q.tolist(),
                                 "max_abs_q": float(np.abs(np.concatenate([unseen, seen_q])).max())}
    for constrained in (False, True):
        errors, q, _ = tabular_q(constrained)
        out["tabular"]["constrained" if constrained else "naive"] = {
            "max_error": errors.tolist(), "final_error": float(errors[-1]),
            "greedy_outside_data": greedy_moves_outside_data(q, constrained)}
    return out


def figure(result: dict[str, Any], path: Path) -> Path:
    """Two panels: |Q| of the unseen action over iterations (log scale), per method; the tabular
    value error over sweeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, style in (("naive", "-"), ("constrained", "--"), ("cql", ":")):
        values = np.abs(np.asarray(result["linear"][method]["q_unseen"])) + 1e-12
        left.semilogy(values, style, label=method)
    left.set(title="Linear Q: |Q(s1, unseen action)|", xlabel="iteration", ylabel="|Q| (true value 0)")
    left.legend()
    for method, style in (("naive", "-"), ("constrained", "--")):
        right.plot(result["tabular"][method]["max_error"], style, label=method)
    right.set(title="Tabular Q, gridworld: error of the data's entries", xlabel="sweep", ylabel="max |Q - Q*|")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
