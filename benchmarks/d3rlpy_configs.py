"""d3rlpy's BC, TD3+BC, IQL, CQL, AWAC and DT configured like offbench's, and D4RL-layout data as
a d3rlpy dataset: shared by ``d3rlpy_throughput.py`` and ``d3rlpy_parity_worker.py``.

Runs in the separate virtual environment that has d3rlpy (see ``d3rlpy_throughput.py``); it never
imports offbench. :func:`make_config` takes an offbench config as a plain dict (the fields of the
algorithm's ``AlgoConfig``, as ``AlgoConfig.to_dict()`` gives them); without one it uses offbench's
MuJoCo defaults, copied in :data:`OFFBENCH_MUJOCO_DEFAULTS`.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import numpy as np
import structlog

with contextlib.redirect_stdout(sys.stderr):  # keep import-time notices (gym's) off stdout
    from d3rlpy.algos import (
        AWACConfig,
        BCConfig,
        BCQConfig,
        BEARConfig,
        CQLConfig,
        DecisionTransformerConfig,
        IQLConfig,
        TD3PlusBCConfig,
    )
    from d3rlpy.base import LearnableConfig
    from d3rlpy.dataset import MDPDataset
    from d3rlpy.models import VectorEncoderFactory
    from d3rlpy.optimizers import (
        AdamFactory,
        AdamWFactory,
        CosineAnnealingLRFactory,
        WarmupSchedulerFactory,
    )
    from d3rlpy.preprocessing import (
        MultiplyRewardScaler,
        ReturnBasedRewardScaler,
        StandardObservationScaler,
    )

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # d3rlpy logs to stdout by default


def log(msg: str) -> None:
    """A progress line on stderr (stdout carries the JSON results)."""
    print(msg, file=sys.stderr, flush=True)


ALGOS = ("bc", "td3bc", "iql", "cql", "awac", "dt", "bcq", "bear")
TRAJECTORY_ALGOS = ("dt",)

#: offbench's MuJoCo defaults (its ``AlgoConfig`` fields) where no resolved config is given.
OFFBENCH_MUJOCO_DEFAULTS: dict[str, dict[str, Any]] = {
    "bc": {"steps": 1_000_000, "batch_size": 256, "hidden": [256, 256], "lr": 3e-4, "normalize_obs": True},
    "td3bc": {"steps": 1_000_000, "batch_size": 256, "alpha": 2.5, "discount": 0.99, "tau": 0.005,
              "policy_noise": 0.2, "noise_clip": 0.5, "policy_freq": 2, "actor_lr": 3e-4, "critic_lr": 3e-4,
              "hidden": [256, 256], "normalize_obs": True},
    "iql": {"steps": 1_000_000, "batch_size": 256, "expectile": 0.7, "beta": 3.0, "discount": 0.99,
            "tau": 0.005, "actor_lr": 3e-4, "critic_lr": 3e-4, "value_lr": 3e-4, "actor_lr_schedule": "cosine",
            "hidden": [256, 256], "normalize_obs": True, "normalize_reward": True, "deterministic": False},
    "cql": {"steps": 1_000_000, "batch_size": 256, "alpha": 10.0, "n_actions": 10, "temperature": 1.0,
            "discount": 0.99, "tau": 0.005, "actor_lr": 3e-5, "critic_lr": 3e-4, "entropy_lr": 3e-4,
            "hidden": [256, 256, 256], "normalize_obs": True, "backup_entropy": False, "target_update_every": 0},
    "awac": {"steps": 1_000_000, "batch_size": 256, "beta": 1.0 / 3.0, "discount": 0.99, "tau": 0.005,
             "actor_lr": 3e-4, "critic_lr": 3e-4, "hidden": [256, 256], "normalize_obs": True},
    "bcq": {"steps": 1_000_000, "batch_size": 100, "discount": 0.99, "tau": 0.005, "lmbda": 0.75, "phi": 0.05,
            "actor_lr": 1e-3, "critic_lr": 1e-3, "vae_lr": 1e-3, "actor_hidden": [400, 300],
            "critic_hidden": [400, 300], "vae_hidden": [750, 750], "target_samples": 10, "eval_samples": 100,
            "normalize_obs": False},
    "bear": {"steps": 1_000_000, "batch_size": 100, "discount": 0.99, "tau": 0.005, "actor_lr": 1e-3,
             "critic_lr": 1e-3, "vae_lr": 1e-3, "alpha_lr": 1e-3, "num_critics": 2, "hidden": [400, 300],
             "vae_hidden": [750, 750], "kernel": "laplacian", "mmd_sigma": 10.0, "mmd_samples": 5, "epsilon": 0.05,
             "warmup_steps": 20_000, "lmbda": 0.75, "target_samples": 10, "eval_samples": 10,
             "normalize_obs": False},
    "dt": {"steps": 100_000, "batch_size": 64, "context": 20, "embed_dim": 128, "n_layers": 3, "n_heads": 1,
           "dropout": 0.1, "activation": "relu", "lr": 1e-4, "weight_decay": 1e-4, "warmup_steps": 10_000,
           "lr_schedule": "constant", "grad_clip": 0.25, "rtg_scale": 1000.0, "normalize_obs": True,
           "sample_actions": True, "betas": [0.9, 0.999], "preset": "paper"},
}

#: offbench's observation standardization: ``(s - mean) / (std + eps)`` (CORL's eps for transition
#: algorithms unless the config says ``obs_std_eps``; the Decision Transformer's 1e-6).
TRANSITION_OBS_EPS, DT_OBS_EPS = 1e-3, 1e-6
#: offbench's cap on the exponentiated advantage weights of IQL and AWAC (a constant, not a field).
EXP_ADV_MAX = 100.0
#: Fields that set the budget and the evaluation, not the learner (the caller runs them).
BUDGET_KEYS = {"steps", "eval_every", "eval_episodes"}


def load_dataset(path: str) -> tuple[MDPDataset, dict[str, Any]]:
    """An MDPDataset from a D4RL-layout .npz; the last transition closes an episode if nothing does."""
    data = np.load(path)
    obs = np.asarray(data["observations"], dtype=np.float32)
    act = np.asarray(data["actions"], dtype=np.float32)
    terminals = np.asarray(data["terminals"], dtype=np.float32).reshape(-1)
    timeouts = np.asarray(data["timeouts"], dtype=np.float32).reshape(-1).copy()
    timeouts[terminals > 0] = 0.0  # d3rlpy rejects a step flagged as both
    if terminals[-1] == 0:
        timeouts[-1] = 1.0
    dataset = MDPDataset(observations=obs, actions=act,
                         rewards=np.asarray(data["rewards"], dtype=np.float32).reshape(-1),
                         terminals=terminals, timeouts=timeouts)
    info = {"path": path, "transitions": int(obs.shape[0]), "episodes": len(dataset.episodes),
            "obs_dim": int(obs.shape[1]), "act_dim": int(act.shape[1])}
    return dataset, info


def _mlp(hidden: Any) -> VectorEncoderFactory:
    return VectorEncoderFactory([int(h) for h in hidden])


def _obs_scaler(c: dict[str, Any], eps: float) -> StandardObservationScaler | None:
    return StandardObservationScaler(eps=eps) if c.get("normalize_obs", True) else None


#: offbench fields that d3rlpy cannot set, with the value d3rlpy's implementation has (as offbench
#: would write it) and what d3rlpy does; an offbench config with another value is reported.
FIXED: dict[str, dict[str, tuple[Any, str]]] = {
    "bc": {"context": (1, "d3rlpy's BC sees the current state only"),
           "dropout": (0.0, "d3rlpy's BC has no dropout"),
           "warmup_steps": (0, "d3rlpy's BC has no learning-rate warmup")},
    "iql": {"deterministic": (False, "d3rlpy's IQL trains a Gaussian policy by weighted log-likelihood"),
            "log_std_min": (-5.0, "d3rlpy's IQL policy log-std lies in [-5, 2]"),
            "log_std_max": (2.0, "d3rlpy's IQL policy log-std lies in [-5, 2]")},
    "cql": {"temperature": (1.0, "d3rlpy's log-sum-exp has no temperature (it is 1)"),
            "corl_init": (False, "d3rlpy initializes its networks with PyTorch's defaults"),
            "learn_log_std_scale": (False, "d3rlpy's policy has no learned log-std multiplier and offset"),
            "log_std_min": (-20.0, "d3rlpy's CQL policy log-std lies in [-20, 2]"),
            "log_std_max": (2.0, "d3rlpy's CQL policy log-std lies in [-20, 2]")},
    "awac": {"log_std_min": (-6.0, "d3rlpy's AWAC policy log-std lies in [-6, 0]"),
             "log_std_max": (0.0, "d3rlpy's AWAC policy log-std lies in [-6, 0]")},
    "dt": {"lr_schedule": ("constant", "d3rlpy's continuous DT has a warmup, then a constant rate"),
           "init": ("normal-all", "d3rlpy's DT initializes every Linear and Embedding N(0, 0.02)"),
           "embed_tanh": (False, "d3rlpy's DT has no tanh on its embeddings"),
           "embed_ln": (True, "d3rlpy's DT layer-normalizes the token embeddings"),
           "positions": ("timestep", "d3rlpy's DT adds a per-step timestep embedding (SIMPLE)"),
           "head_bias": (True, "d3rlpy's action head has a bias"),
           "decay_weights_only": (False, "d3rlpy's AdamW decays every parameter"),
           "windows": ("end-uniform", "d3rlpy's windows end at a uniformly drawn step, left-padded near an "
                                      "episode's start")},
}
#: Fields that do not change the learner on continuous actions or only choose other fields' values.
IGNORED = {"recipe", "preset", "sample_actions", "target_update_every"}


def make_config(name: str, cfg: dict[str, Any] | None = None, *, compile_graph: bool = False,
                total_steps: int | None = None,
                max_timestep: int = 1000) -> tuple[LearnableConfig, dict[str, Any], list[str]]:
    """d3rlpy's config for algorithm ``name`` set like offbench's config ``cfg`` (default: offbench's
    MuJoCo defaults); returns it, a short description of what was set, and the offbench settings
    d3rlpy could not take (``key=value: what d3rlpy does``). ``total_steps`` (default
    ``cfg["steps"]``) is the length of IQL's cosine schedule; ``max_timestep`` sizes DT's timestep
    embedding."""
    if name not in OFFBENCH_MUJOCO_DEFAULTS:
        raise ValueError(f"unknown algorithm '{name}'")
    c = {**OFFBENCH_MUJOCO_DEFAULTS[name], **(cfg or {})}
    used = BUDGET_KEYS | IGNORED | {"batch_size", "hidden", "normalize_obs", "obs_std_eps"} | set(FIXED.get(name, {}))
    unmatched = [f"{key}={c[key]}: {why}" for key, (value, why) in FIXED.get(name, {}).items()
                 if key in c and c[key] != value]
    eps = float(c.get("obs_std_eps", DT_OBS_EPS if name == "dt" else TRANSITION_OBS_EPS))
    common: dict[str, Any] = {"batch_size": int(c["batch_size"]), "compile_graph": compile_graph,
                              "observation_scaler": _obs_scaler(c, eps)}
    obs_note = f"StandardObservationScaler(eps={eps:g})" if c.get("normalize_obs", True) else "none"
    hidden = [int(h) for h in c["hidden"]] if "hidden" in c else None
    reward_scaler = ReturnBasedRewardScaler(multiplier=1000.0) if c.get("normalize_reward") else None
    reward_note = "ReturnBasedRewardScaler(x1000)" if c.get("normalize_reward") else "none"
    config: LearnableConfig
    if name == "bc":
        used |= {"lr", "weight_decay"}
        wd = float(c.get("weight_decay", 0.0))
        optim = AdamWFactory(weight_decay=wd) if wd > 0 else AdamFactory()
        config = BCConfig(learning_rate=c["lr"], policy_type="deterministic", encoder_factory=_mlp(hidden),
                          optim_factory=optim, **common)
        described = {"batch": c["batch_size"], "lr": c["lr"], "policy": "deterministic (MSE loss)", "mlp": hidden,
                     "optimizer": f"AdamW (weight decay {wd:g})" if wd > 0 else "Adam", "obs": obs_note}
    elif name == "td3bc":
        used |= {"alpha", "discount", "tau", "policy_noise", "noise_clip", "policy_freq", "actor_lr", "critic_lr"}
        config = TD3PlusBCConfig(actor_learning_rate=c["actor_lr"], critic_learning_rate=c["critic_lr"],
                                 actor_encoder_factory=_mlp(hidden), critic_encoder_factory=_mlp(hidden),
                                 alpha=c["alpha"], gamma=c["discount"], tau=c["tau"],
                                 target_smoothing_sigma=c["policy_noise"], target_smoothing_clip=c["noise_clip"],
                                 update_actor_interval=int(c["policy_freq"]), **common)
        described = {"batch": c["batch_size"], "actor_lr": c["actor_lr"], "critic_lr": c["critic_lr"], "mlp": hidden,
                     "alpha": c["alpha"], "gamma": c["discount"], "tau": c["tau"], "policy_noise": c["policy_noise"],
                     "noise_clip": c["noise_clip"], "update_actor_interval": c["policy_freq"], "obs": obs_note}
    elif name == "iql":
        used |= {"expectile", "beta", "discount", "tau", "actor_lr", "critic_lr", "value_lr", "actor_lr_schedule",
                 "normalize_reward", "exp_adv_max"}
        if c["value_lr"] != c["critic_lr"]:
            unmatched.append(f"value_lr={c['value_lr']}: d3rlpy's IQL trains Q and V with one optimizer at the "
                             f"critic's rate ({c['critic_lr']})")
        t_max = max(1, int(total_steps if total_steps is not None else c["steps"]))
        cosine = c.get("actor_lr_schedule", "cosine") == "cosine"
        max_weight = float(c.get("exp_adv_max", EXP_ADV_MAX))
        config = IQLConfig(actor_learning_rate=c["actor_lr"], critic_learning_rate=c["critic_lr"],
                           actor_encoder_factory=_mlp(hidden), critic_encoder_factory=_mlp(hidden),
                           value_encoder_factory=_mlp(hidden), expectile=c["expectile"], weight_temp=c["beta"],
                           max_weight=max_weight, gamma=c["discount"], tau=c["tau"],
                           actor_optim_factory=AdamFactory(lr_scheduler_factory=CosineAnnealingLRFactory(T_max=t_max))
                           if cosine else AdamFactory(), reward_scaler=reward_scaler, **common)
        described = {"batch": c["batch_size"], "actor_lr": c["actor_lr"], "critic_lr": c["critic_lr"], "mlp": hidden,
                     "expectile": c["expectile"], "weight_temp": c["beta"], "max_weight": max_weight,
                     "gamma": c["discount"], "tau": c["tau"],
                     "actor_lr_schedule": f"cosine (T_max {t_max})" if cosine else "constant", "reward": reward_note,
                     "obs": obs_note}
    elif name == "cql":
        used |= {"alpha", "n_actions", "discount", "tau", "actor_lr", "critic_lr", "entropy_lr", "backup_entropy",
                 "normalize_reward", "log_std_multiplier", "log_std_offset"}  # the last two: with learn_log_std_scale
        temp_lr = float(c["entropy_lr"]) or float(c["actor_lr"])  # offbench: 0 means the actor's lr
        config = CQLConfig(actor_learning_rate=c["actor_lr"], critic_learning_rate=c["critic_lr"],
                           temp_learning_rate=temp_lr, alpha_learning_rate=0.0, initial_alpha=1.0,
                           initial_temperature=1.0, conservative_weight=c["alpha"],
                           n_action_samples=int(c["n_actions"]), gamma=c["discount"], tau=c["tau"],
                           soft_q_backup=bool(c["backup_entropy"]), reward_scaler=reward_scaler,
                           actor_encoder_factory=_mlp(hidden), critic_encoder_factory=_mlp(hidden), **common)
        described = {"batch": c["batch_size"], "actor_lr": c["actor_lr"], "critic_lr": c["critic_lr"],
                     "temp_lr": temp_lr, "mlp": hidden, "conservative_weight": c["alpha"], "lagrange": False,
                     "n_action_samples": c["n_actions"], "auto_entropy": True, "gamma": c["discount"], "tau": c["tau"],
                     "soft_q_backup": bool(c["backup_entropy"]), "reward": reward_note, "obs": obs_note}
    elif name == "awac":
        used |= {"beta", "discount", "tau", "actor_lr", "critic_lr", "exp_adv_max"}  # no cap in d3rlpy
        config = AWACConfig(actor_learning_rate=c["actor_lr"], critic_learning_rate=c["critic_lr"],
                            actor_encoder_factory=_mlp(hidden), critic_encoder_factory=_mlp(hidden),
                            lam=c["beta"], gamma=c["discount"], tau=c["tau"], n_action_samples=1, **common)
        described = {"batch": c["batch_size"], "actor_lr": c["actor_lr"], "critic_lr": c["critic_lr"], "mlp": hidden,
                     "lam": round(float(c["beta"]), 4), "gamma": c["discount"], "tau": c["tau"],
                     "n_action_samples": 1, "obs": obs_note}
    elif name == "bcq":
        used |= {"discount", "tau", "lmbda", "phi", "actor_lr", "critic_lr", "vae_lr", "actor_hidden", "critic_hidden",
                 "vae_hidden", "eval_samples", "target_samples", "kl_weight", "latent_clip"}
        unmatched.append(f"eval_samples={c['eval_samples']}: d3rlpy's BCQ uses one n_action_samples for the target "
                         f"and for acting; set to the target's {c['target_samples']} (the step timed here)")
        config = BCQConfig(actor_learning_rate=c["actor_lr"], critic_learning_rate=c["critic_lr"],
                           imitator_learning_rate=c["vae_lr"], actor_encoder_factory=_mlp(c["actor_hidden"]),
                           critic_encoder_factory=_mlp(c["critic_hidden"]),
                           imitator_encoder_factory=_mlp(c["vae_hidden"]), gamma=c["discount"], tau=c["tau"],
                           lam=c["lmbda"], action_flexibility=c["phi"], n_action_samples=int(c["target_samples"]),
                           n_critics=2, **common)
        described = {"batch": c["batch_size"], "lr": [c["actor_lr"], c["critic_lr"], c["vae_lr"]],
                     "mlp": [c["actor_hidden"], c["critic_hidden"], c["vae_hidden"]], "lam": c["lmbda"],
                     "action_flexibility": c["phi"], "n_action_samples": c["target_samples"], "obs": obs_note}
    elif name == "bear":
        used |= {"discount", "tau", "actor_lr", "critic_lr", "vae_lr", "alpha_lr", "num_critics", "vae_hidden",
                 "kernel", "mmd_sigma", "mmd_samples", "epsilon", "warmup_steps", "lmbda", "target_samples",
                 "eval_samples", "log_alpha_max", "mode", "manual_alpha"}
        unmatched.append("entropy: d3rlpy's BEAR actor carries a SAC temperature (kept at its initial 1.0 with "
                         "temp_learning_rate 0 here); the authors' BEAR has none")
        config = BEARConfig(actor_learning_rate=c["actor_lr"], critic_learning_rate=c["critic_lr"],
                            imitator_learning_rate=c["vae_lr"], alpha_learning_rate=c["alpha_lr"],
                            temp_learning_rate=0.0, actor_encoder_factory=_mlp(hidden),
                            critic_encoder_factory=_mlp(hidden), imitator_encoder_factory=_mlp(c["vae_hidden"]),
                            gamma=c["discount"], tau=c["tau"], n_critics=int(c["num_critics"]),
                            alpha_threshold=c["epsilon"], lam=c["lmbda"], n_action_samples=int(c["eval_samples"]),
                            n_target_samples=int(c["target_samples"]), n_mmd_action_samples=int(c["mmd_samples"]),
                            mmd_kernel=c["kernel"], mmd_sigma=c["mmd_sigma"], vae_kl_weight=0.5,
                            warmup_steps=int(c["warmup_steps"]), **common)
        described = {"batch": c["batch_size"], "lr": [c["actor_lr"], c["critic_lr"], c["vae_lr"], c["alpha_lr"]],
                     "mlp": [hidden, c["vae_hidden"]], "kernel": c["kernel"], "mmd_sigma": c["mmd_sigma"],
                     "n_mmd_action_samples": c["mmd_samples"], "alpha_threshold": c["epsilon"],
                     "warmup_steps": c["warmup_steps"], "obs": obs_note}
    else:  # dt
        used |= {"context", "embed_dim", "n_layers", "n_heads", "dropout", "activation", "lr", "weight_decay",
                 "warmup_steps", "grad_clip", "rtg_scale", "betas"}
        optim = AdamWFactory(weight_decay=c["weight_decay"], betas=tuple(float(b) for b in c["betas"]),
                             clip_grad_norm=c["grad_clip"],
                             lr_scheduler_factory=WarmupSchedulerFactory(warmup_steps=int(c["warmup_steps"])))
        config = DecisionTransformerConfig(
            learning_rate=c["lr"], context_size=int(c["context"]), max_timestep=max_timestep,
            num_heads=int(c["n_heads"]), num_layers=int(c["n_layers"]), attn_dropout=c["dropout"],
            resid_dropout=c["dropout"], embed_dropout=c["dropout"], activation_type=c["activation"],
            encoder_factory=VectorEncoderFactory([int(c["embed_dim"])], exclude_last_activation=True),
            optim_factory=optim, reward_scaler=MultiplyRewardScaler(1.0 / float(c["rtg_scale"])), **common)
        described = {"batch": c["batch_size"], "context": c["context"], "embed": c["embed_dim"],
                     "layers": c["n_layers"], "heads": c["n_heads"], "lr": c["lr"], "weight_decay": c["weight_decay"],
                     "betas": list(c["betas"]), "optimizer": "AdamW (all parameters)",
                     "warmup_steps": c["warmup_steps"], "grad_clip": c["grad_clip"], "dropout": c["dropout"],
                     "activation": c["activation"], "max_timestep": max_timestep, "rtg_scale": c["rtg_scale"],
                     "obs": obs_note}
    for key in sorted(set(c) - used):  # a field offbench has and this mapping does not know
        unmatched.append(f"{key}={c[key]}: not mapped to d3rlpy")
    return config, described, unmatched
