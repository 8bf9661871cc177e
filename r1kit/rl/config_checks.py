"""What a `r1kit grpo` configuration may not combine: the one-line refusals `Config.validate` and
`Config.reward_specs` raise before any model loads (batch shapes over the processes, optimiser and
reference-model settings, samplers and stop strings, policy iterations and partial rollouts, and
what the resolved rewards ask of the run)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from r1kit.errors import R1kitError


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_batch(cfg: Any) -> None:
    """Groups of G completions, and a step's batch that splits into micro-batches on every process
    (trl: generation_batch_size divisible by per_device_train_batch_size × num_processes)."""
    G, world = cfg.num_generations, _world()
    if G < 2:
        raise R1kitError(
            f"--num-generations (G={G}) must be >= 2: GRPO's advantage compares the G completions of a prompt"
        )
    if cfg.generation_batch_size and cfg.generation_batch_size % G:
        raise R1kitError(
            f"--generation-batch-size ({cfg.generation_batch_size}) must be divisible by "
            f"--num-generations ({G}) so that every prompt's group is complete"
        )
    if cfg.generation_batch_size % cfg.updates_per_rollout:
        raise R1kitError(
            f"--generation-batch-size ({cfg.generation_batch_size}) must be divisible by "
            f"--updates-per-rollout ({cfg.updates_per_rollout}): the rollout batch splits into that many steps"
        )
    per_step = cfg.completions_per_step
    micro = cfg.batch_size or per_step // world
    if micro < 1 or per_step % (micro * world):
        given = (
            f"--batch-size ({micro})"
            if cfg.batch_size
            else f"the per-device batch ({per_step} // {world} processes = {micro}, from --batch-size 0)"
        )
        raise R1kitError(
            f"a step's batch of {per_step} completions ({per_step // G} prompts × G={G}) must be divisible by "
            f"{given} × {world} processes (WORLD_SIZE) = {micro * world} "
            f"(trl: generation_batch_size ({per_step}) must be divisible by per_device_train_batch_size × num_processes); "
            f"change --prompts-per-step or --batch-size"
        )


def check_optimiser(cfg: Any) -> None:
    """Step count (ranges.py checks the rates and coefficients: --learning-rate, --epsilon, --tau, ...)."""
    if cfg.max_steps == 0 or (cfg.max_steps < 0 and cfg.epochs <= 0):
        raise R1kitError(f"set --max-steps > 0 (got {cfg.max_steps}) or --epochs > 0 (got {cfg.epochs})")


def check_reference(cfg: Any) -> None:
    """The KL term needs a reference model, and R1's reference reset needs one it can overwrite."""
    if cfg.loss == "kimi" and cfg.beta != 0:
        raise R1kitError(f"--loss kimi carries its own KL term (--tau); set --beta 0 (got {cfg.beta})")
    if cfg.ref_reset_steps and cfg.beta == 0:
        raise R1kitError(
            f"--ref-reset-steps {cfg.ref_reset_steps} needs --beta > 0 (with β = 0 there is no reference model)"
        )
    if cfg.ref_reset_steps and cfg.lora:
        raise R1kitError(
            "--ref-reset-steps needs full fine-tuning: with --lora the reference is the base model "
            "(adapters off); set --ref-reset-steps 0"
        )


def check_sampling(cfg: Any) -> None:
    """DAPO dynamic sampling, the Kimi prompt samplers, the vLLM server client and rollout stop strings."""
    if cfg.vllm_server and importlib.util.find_spec("vllm") is None:  # trl's client needs vllm too
        raise R1kitError(
            f"--vllm-server {cfg.vllm_server} needs the vllm package here too (pip install 'r1kit[vllm]')"
        )
    if cfg.dynamic_sampling == "refill" and _world() > 1:
        raise R1kitError(
            f"--dynamic-sampling refill runs on one process (found {_world()}); use --dynamic-sampling mask"
        )
    if cfg.dynamic_sampling == "refill" and cfg.refill_tries < 1:
        raise R1kitError(f"--refill-tries ({cfg.refill_tries}) must be >= 1")
    if any(not s for s in cfg.stop):
        raise R1kitError("--stop needs a non-empty string")
    if cfg.stop and cfg.mask_truncated:
        # trl counts a completion without a final EOS as truncated, and one ended by a stop string has none
        raise R1kitError(
            "--mask-truncated would leave every completion ended by a --stop string out of the loss "
            "(trl sees no EOS at its end); drop one of them"
        )


def check_iterations(cfg: Any) -> None:
    """Minibatch updates, the optimizer reset, partial rollouts and repeat detection."""
    if cfg.repeat_stop == 1:
        raise R1kitError(
            "--repeat-stop 1 cannot see a repeat: give a window of N >= 2 tokens (e.g. 64) or 0 (off)"
        )
    if cfg.rollout_max_age and not cfg.rollout_token_budget:
        raise R1kitError(
            f"--rollout-max-age {cfg.rollout_max_age} limits partial rollouts: set --rollout-token-budget too"
        )
    if (cfg.rollout_token_budget or cfg.repeat_stop) and cfg.dynamic_sampling == "refill":
        raise R1kitError(
            "partial rollouts and --repeat-stop keep the rollout batch's shape: "
            "use --dynamic-sampling mask with them, not refill"
        )
    if (cfg.rollout_token_budget or cfg.repeat_stop) and (cfg.vllm_server or cfg.use_vllm == "on"):
        raise R1kitError(
            "partial rollouts and --repeat-stop run on r1kit's decode loop or transformers' generate, "
            "not on vLLM: set --use-vllm off"
        )
    if (cfg.rollout_token_budget or cfg.repeat_stop) and cfg.stop:
        raise R1kitError(
            "--stop strings and partial rollouts / --repeat-stop do not combine yet (stop strings are "
            "looked for in each new segment, so one split across two segments would go unseen and its "
            "trajectory continue): drop --stop or the partial-rollout options"
        )
    world, G = _world(), cfg.num_generations
    if (cfg.rollout_token_budget or cfg.repeat_stop) and (cfg.completions_per_rollout // world) % G:
        raise R1kitError(
            f"partial rollouts need whole groups on each process: {cfg.completions_per_rollout} "
            f"completions / {world} processes is not a multiple of G={G}; "
            f"make --prompts-per-step a multiple of {world}"
        )


def check_rewards(cfg: Any, names: list[str]) -> None:
    """What the resolved rewards ask of the run."""
    if len(set(names)) != len(names):
        raise R1kitError(f"a reward is given twice in --reward {' '.join(cfg.reward)}")
    per_step, world, G = cfg.completions_per_rollout, _world(), cfg.num_generations
    if "length" in names and world > 1 and (per_step // world) % G:
        # trl scores each process's slice of the rollout batch; the length reward needs whole groups there
        raise R1kitError(
            f"--reward length needs each process to hold whole groups: {per_step} completions / {world} processes "
            f"= {per_step // world} per process is not a multiple of G={G}; make --prompts-per-step a multiple of {world}"
        )
    if cfg.sampler == "prioritized" and cfg.success_reward not in names:
        raise R1kitError(
            f"--sampler prioritized reads success from --success-reward {cfg.success_reward!r}, "
            f"which is not among the rewards ({', '.join(names)})"
        )


def check_config(cfg: Any) -> None:
    """Every check that needs only the configuration (the rewards' come later)."""
    for check in (check_batch, check_optimiser, check_reference, check_sampling, check_iterations):
        check(cfg)
