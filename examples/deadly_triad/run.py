"""The deadly triad of offline Q-learning, as the lectures show it, in well under a minute:

    python examples/deadly_triad/run.py [OUT_DIR]      # same as: offbench reproduce deadly-triad

Naive Q-learning with a linear Q-function on a two-state offline dataset (function
approximation + bootstrapping + offline data) drives the value of an action the data never take
to infinity; restricting the backup to the data's actions (BCQ's idea) or penalizing unsupported
actions (CQL's) keeps it bounded. A tabular gridworld shows the same effect with the table's
missing entries. See offbench/reproduce/deadly_triad.py for both problems.
"""

from __future__ import annotations

import sys
from pathlib import Path

from offbench.reproduce import deadly_triad


def main(out: Path) -> None:
    result = deadly_triad.run()
    for method, r in result["linear"].items():
        print(f"linear Q-learning, {method:11s}: largest |Q| {r['max_abs_q']:.3g} (every true value is 0)")
    for method, r in result["tabular"].items():
        print(f"tabular Q-learning, {method:11s}: largest error {r['final_error']:.3g}, greedy action outside the "
              f"data in {100 * r['greedy_outside_data']:.0f}% of the cells")
    print("figure:", deadly_triad.figure(result, out / "deadly_triad.png"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("deadly_triad_out"))
