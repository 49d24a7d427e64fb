"""BEAR and BRAC-v default to the code behind D4RL's published scores (the ones the DT paper's
Table 2 quotes), and keep their authors' own settings as ``recipe=authors``.

Values written out from rail-berkeley/d4rl_evaluations: ``bear/examples/bear_hdf5_d4rl.py``
(argparse defaults and ``variant``), ``bear/rlkit/torch/sac/bear.py`` (``BEARTrainer``),
``bear/rlkit/torch/sac/policies.py`` (LOG_SIG_MIN -5, LOG_SIG_MAX 2), ``bear/rlkit/core/
batch_rl_algorithm.py`` (``policy_fn``: ``num_actions_sample`` actions, the first critic's best);
``brac/scripts/train_brac.py`` and ``brac/.../brac/bc_agent.py``, ``brac_primal_agent.py``,
``train_eval_offline.py``. The authors' values: aviralkumar2907/BEAR's README and ``algos.py``,
google-research brac ``run_bc.sh`` and ``run_primal.sh``.
"""

from __future__ import annotations

import pytest

from tests.test_fidelity_corl import resolved

BEAR_D4RL = {
    # variant: num_epochs 3000 x num_trains_per_train_loop 1000; evaluation every epoch, 5000 steps
    "steps": 3000 * 1000, "eval_every": 1000, "eval_episodes": 5000 // 1000,
    "batch_size": 256, "discount": 0.99, "tau": 5e-3,  # algorithm_kwargs / trainer_kwargs
    "actor_lr": 1e-4, "critic_lr": 3e-4,  # argparse --policy_lr, --qf_lr
    "vae_lr": 3e-4, "alpha_lr": 1e-3,  # BEARTrainer: Adam(vae, lr=3e-4), Adam([log_alpha], lr=1e-3)
    "hidden": (256, 256), "vae_hidden": (750, 750), "num_critics": 2,  # layer_size 256; VAEPolicy [750, 750]
    "kernel": "gaussian", "mmd_sigma": 50.0, "epsilon": 0.05,  # --kernel_type, --mmd_sigma, --target_mmd_thresh
    "mmd_samples": 4, "warmup_steps": 40_000, "mode": "auto",  # num_samples_mmd_match=4; >= 40000; mode 'auto'
    "log_alpha_max": 10.0, "log_alpha_init": "zero",  # clamp_(min=-5.0, max=10.0); ptu.zeros(1)
    "lmbda": 0.75, "target_samples": 10, "eval_samples": 100,  # 0.75 min + 0.25 max; repeat 10; --num_samples
    "target_actor": False, "actor_q": "first", "clip_actor_noise": False,  # self.policy(state_rep); [:, 0, :]
    "log_std_min": -5.0, "log_std_max": 2.0, "normalize_obs": False,
}
BEAR_AUTHORS = {"batch_size": 100, "actor_lr": 1e-3, "critic_lr": 1e-3, "vae_lr": 1e-3, "hidden": (400, 300),
                "kernel": "laplacian", "mmd_sigma": 10.0, "mmd_samples": 5, "warmup_steps": 20_000,
                "eval_samples": 10, "target_actor": True, "actor_q": "mean", "clip_actor_noise": True,
                "log_alpha_init": "normal"}
BRAC_D4RL = {
    "behavior_steps": 1_000_000, "steps": 1_000_000 + 1_000_000,  # bc_train_steps, total_train_steps
    "critic_lr": 1e-3, "actor_lr": 3e-5,  # optimizers (('adam', 1e-3), ('adam', 3e-5), ...)
    "behavior_lr": 5e-4, "actor_hidden": (200, 200), "critic_hidden": (300, 300), "num_critics": 2,
    "alpha": 1.0, "value_penalty": True, "eval_episodes": 20, "eval_every": 5000, "batch_size": 256,
    "warmup_steps": 20_000, "div_samples": 4, "tau": 0.005, "discount": 0.99, "behavior_entropy": True,
}
BRAC_AUTHORS = {"behavior_steps": 300_000, "steps": 300_000 + 500_000, "actor_lr": 3e-4, "alpha": 0.1,
                "behavior_entropy": True}


@pytest.mark.parametrize("name", ["hopper-medium", "walker2d-medium-replay", "halfcheetah-medium-expert"])
def test_bear_and_brac_default_to_the_d4rl_code(name: str) -> None:
    for algo, expected in (("bear", BEAR_D4RL), ("brac", BRAC_D4RL)):
        cfg = resolved(algo, name)
        assert cfg.recipe == "d4rl"
        assert {k: getattr(cfg, k) for k in expected} == expected


def test_the_authors_recipes_keep_their_settings() -> None:
    for algo, expected in (("bear", BEAR_AUTHORS), ("brac", BRAC_AUTHORS)):
        cfg = resolved(algo, "hopper-medium", {"recipe": "authors"})
        assert {k: getattr(cfg, k) for k in expected} == expected
