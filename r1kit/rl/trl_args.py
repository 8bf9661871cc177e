"""From `r1kit grpo`'s options to trl's GRPOConfig, and the set-up trl needs around it.

`grpo_args` is the switch table: which r1kit option becomes which trl setting. trl computes the
paper parts it names itself (r1kit/rl/trainer.py says which and why); r1kit's own additions go
to `R1GRPOTrainer` through `R1Options`. `cfg` is `r1kit.stages.grpo.Config`.
"""

from __future__ import annotations

import os

from r1kit.errors import R1kitError

# r1kit's options that are GRPOConfig settings of the same name and meaning: passed as they are
TRL_NAMED = (
    "num_generations",
    "max_completion_length",
    "temperature",
    "top_p",
    "top_k",
    "num_iterations",
    "beta",
    "epsilon",
    "epsilon_high",
    "scale_rewards",
)


def use_vllm(cfg) -> bool:
    """Colocated vLLM rollouts: --use-vllm on, or auto with vllm installed and a GPU present."""
    import importlib.util

    import torch

    available = torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None
    if cfg.use_vllm == "on" and not available:
        raise R1kitError("--use-vllm on needs a CUDA GPU and the vllm package (pip install 'r1kit[vllm]')")
    return cfg.use_vllm == "on" or (cfg.use_vllm == "auto" and available)


def grpo_args(cfg, output_dir: str, use_vllm: bool, reward_weights: list[float]):
    """trl's GRPOConfig for this run: batch layout, optimiser, hardware, and the paper switches trl
    computes itself (r1kit/rl/trainer.py says which): loss_type, epsilon / epsilon_high,
    scale_rewards, mask_truncated_completions, beta and the reference reset."""
    import torch
    from trl import GRPOConfig

    from r1kit.training import trainer_args

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = cfg.completions_per_step
    micro = cfg.batch_size or per_step // world
    accum = per_step // (micro * world)
    # R1 / DeepSeekMath minibatches: one rollout batch of N optimizer steps' worth of completions,
    # sampled once; trl splits it into N × accum micro-batches and, since steps_per_generation >
    # gradient_accumulation_steps, keeps the sampling policy's log-probs as π_old for all of them.
    extra = {}
    if cfg.vllm_server:
        extra = {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": cfg.vllm_server}
    elif use_vllm:
        extra = {
            "use_vllm": True,
            "vllm_mode": "colocate",
            "vllm_gpu_memory_utilization": cfg.vllm_gpu_memory,
        }
    elif torch.cuda.is_available():
        extra = {"cache_implementation": "static"}  # static KV cache: the fast transformers rollout path
    # the options every training stage shares (schedule, checkpoints, logging, hardware) come from
    # r1kit.training.trainer_args; what follows is GRPO's
    return trainer_args(
        GRPOConfig,
        cfg,
        output_dir,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        steps_per_generation=accum * cfg.updates_per_rollout,
        **{name: getattr(cfg, name) for name in TRL_NAMED},
        # DeepSeekMath eq. 3-4: β·KL_k3 is added to the loss as is. trl 1.16 defaults to weighting it by
        # the importance ratio (DeepSeek-V3.2's unbiased KL), which changes its gradient even on-policy.
        use_bias_correction_kl=False,
        loss_type=cfg.loss if cfg.loss != "kimi" else "grpo",  # kimi: R1GRPOTrainer computes the loss
        # the papers' choices, spelled out so that a changed trl default cannot move the maths:
        # per-token ratios (DeepSeekMath eq. 3), advantages of the weighted reward sum, every token
        importance_sampling_level="token",
        multi_objective_aggregation="sum_then_normalize",
        top_entropy_quantile=1.0,
        mask_truncated_completions=cfg.mask_truncated,
        sync_ref_model=cfg.ref_reset_steps > 0,
        ref_model_sync_steps=cfg.ref_reset_steps or 512,
        ref_model_mixup_alpha=1.0,  # a reset: the reference becomes a copy of the policy (R1)
        reward_weights=reward_weights,
        log_completions=False,
        **extra,
    )


def reference_snapshot(cfg, model, tokenizer) -> str | None:
    """trl builds the β > 0 reference model by loading `model.config._name_or_path` again. For
    policies that do not come from a plain folder or hub id ('tiny', a .gguf file, a LoRA adapter
    merged at load) that path is missing or wrong, so the initial policy is saved to a temporary
    folder for trl to load, and removed once the trainer holds the reference."""
    import tempfile

    from r1kit.models import resolve_checkpoint, save_model

    if cfg.beta == 0 or cfg.lora or resolve_checkpoint(cfg.model).kind not in ("tiny", "gguf", "adapter"):
        return None
    path = tempfile.mkdtemp(prefix="r1kit-reference-")
    save_model(model, tokenizer, path)
    model.config._name_or_path = path
    return path
