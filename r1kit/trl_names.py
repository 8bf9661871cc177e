"""trl's and open-r1's names for r1kit's options: their YAML files and flags work as they are.

An open-r1 recipe is a YAML file of trl's ScriptArguments, ModelConfig and GRPOConfig / SFTConfig
fields (open-r1: recipes/Qwen2.5-1.5B-Instruct/grpo/config_demo.yaml). r1kit reads those keys in a
`--config` file and as flags (`--learning_rate 1e-5`, `--per_device_train_batch_size 4`; every flag
takes underscores as well as dashes). Where a key goes is decided here, in this order:

1. Same name, same meaning, nothing to do: learning_rate, warmup_ratio, weight_decay, max_grad_norm,
   max_steps, seed, logging_steps, save_steps, gradient_checkpointing, report_to, dtype, packing,
   max_length, lora_r, lora_alpha, lora_dropout, num_generations, generation_batch_size,
   num_iterations, max_completion_length, beta, epsilon, epsilon_high, scale_rewards, use_vllm,
   temperature, top_p, top_k, system_prompt, push_to_hub.
2. ALIASES: another name of one r1kit option (num_train_epochs -> epochs). VALUE_FORMS turn trl's
   form of a value into r1kit's (use_vllm: true -> on, scale_rewards: false -> none, report_to:
   [wandb] -> wandb, lora_target_modules: [q_proj, v_proj] -> q_proj,v_proj, push_to_hub: true ->
   the repo named by hub_model_id, else by the output folder, as trl names it).
3. RULES: keys r1kit spells differently, translated by `translate` and `finish`:
   reward_funcs + reward_weights -> --reward NAME=WEIGHT (open-r1's reward names mapped to r1kit's
   by OPEN_R1_REWARDS); lr_scheduler_type cosine -> --lr-scheduler cosine --min-lr-ratio 0 (trl's
   cosine decays to 0, r1kit's to --min-lr-ratio), cosine_with_min_lr + lr_scheduler_kwargs
   {min_lr_rate: r} -> --min-lr-ratio r; GRPO's gradient_accumulation_steps and
   steps_per_generation -> the completions of a step (per_device_train_batch_size x processes x
   gradient_accumulation_steps, trl's arithmetic) and of a rollout batch; dataset_train_split ->
   --split (evaluate: dataset_test_split); hub_model_id -> --push-to-hub's repo.
4. IGNORED: keys that change nothing r1kit computes (evaluation during training, log verbosity,
   checkpoint retention, mixed precision, kernels, the launcher's process count): accepted with
   one notice line that names them. IGNORED_AT: keys ignored at their default value and refused
   at any other, with what to do instead (model_revision: main). REFUSED: keys r1kit cannot
   honour (a Jinja chat_template), refused in one line with what to do instead.

Anything else stays an unknown key, with did-you-mean. A stage's own option always wins over a
trl name that is the same word (sft's max_length). This module is data and small functions, no
torch: the CLI reads it to build `--help`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from r1kit.errors import R1kitError
from r1kit.progress import notice

# r1kit option -> its trl / open-r1 names (for the stages that have the option).
ALIASES: dict[str, tuple[str, ...]] = {
    "output": ("output_dir",),
    "model": ("model_name_or_path",),
    "dtype": ("torch_dtype",),
    "data": ("dataset_name",),
    "prompt_field": ("dataset_prompt_column",),
    "epochs": ("num_train_epochs",),
    "batch_size": ("per_device_train_batch_size",),
    "grad_accum": ("gradient_accumulation_steps",),
    "max_length": ("max_seq_length",),
    "lora": ("use_peft",),
    "lora_target": ("lora_target_modules",),
    "resume": ("resume_from_checkpoint",),
    "loss": ("loss_type",),
    "mask_truncated": ("mask_truncated_completions",),
    "vllm_gpu_memory": ("vllm_gpu_memory_utilization",),
    "vllm_server": ("vllm_server_base_url",),
    "hub_private": ("hub_private_repo",),
}

# trl key -> the r1kit options a stage must have for the key to apply there (else it is unknown).
RULES: dict[str, tuple[str, ...]] = {
    "reward_funcs": ("reward",),
    "reward_weights": ("reward",),
    "lr_scheduler_type": ("lr_scheduler",),
    "lr_scheduler_kwargs": ("lr_scheduler",),
    "hub_model_id": ("push_to_hub",),
    "gradient_accumulation_steps": ("generation_batch_size", "updates_per_rollout"),  # grpo; sft...: ALIASES
    "steps_per_generation": ("generation_batch_size", "updates_per_rollout"),
    "dataset_train_split": ("split",),
    "dataset_test_split": ("split",),
    "dataset_config": ("data",),
    "dataset_configs": ("data",),
}
# The RULES keys that are also (hidden) flags, with their types; the others are YAML only.
FLAG_TYPES: dict[str, Any] = {
    "reward_funcs": list[str],
    "reward_weights": list[float],
    "lr_scheduler_type": str,
    "hub_model_id": str,
    "gradient_accumulation_steps": int,
    "steps_per_generation": int,
    "dataset_train_split": str,
    "dataset_test_split": str,
    "dataset_config": str,
}

# open-r1's reward names -> r1kit's (names not listed are r1kit's own or a dotted path); None: no counterpart.
OPEN_R1_REWARDS: dict[str, str | None] = {
    "repetition_penalty": "repetition",
    "soft_overlong_punishment": "overlong",
    "code": "code_pass_rate",  # open-r1's code reward is the share of tests passed
    "binary_code": "code",
    "reasoning_steps": None,
    "cosine": None,
    "ioi_code": None,
    "cf_code": None,
    "code_format": None,
    "soft_format": None,
}

_EVAL = "evaluation during training: evaluate the output with `r1kit evaluate`"
_LOG = "log verbosity: r1kit prints one progress line per logging step and keeps every log in metrics.jsonl"
_SAVE = "checkpoint retention: r1kit saves the final model once; trainer checkpoints follow save_steps and keep_checkpoints"
_FAST = "speed and memory only, not the result"
# key -> why r1kit ignores it (the notice names the keys; this table says why)
IGNORED: dict[str, str] = {
    **dict.fromkeys(
        (
            "do_eval",
            "eval_strategy",
            "eval_steps",
            "per_device_eval_batch_size",
            "eval_on_start",
            "benchmarks",
            "num_generations_eval",
        ),
        _EVAL,
    ),
    **dict.fromkeys(
        (
            "log_level",
            "log_level_replica",
            "logging_strategy",
            "logging_first_step",
            "log_completions",
            "num_completions_to_print",
            "log_unique_prompts",
            "wandb_log_unique_prompts",
            "disable_tqdm",
        ),
        _LOG,
    ),
    **dict.fromkeys(("save_strategy", "save_total_limit", "save_only_model"), _SAVE),
    "overwrite_output_dir": "an existing output is replaced only with --overwrite (r1kit's outputs are never "
    "replaced by a config file)",
    **dict.fromkeys(
        ("hub_strategy", "callbacks", "push_to_hub_revision", "overwrite_hub_revision"),
        "r1kit pushes the final model folder once, at the end (push_to_hub)",
    ),
    **dict.fromkeys(
        ("bf16", "fp16", "tf32"),
        "precision follows the hardware: bf16 on a GPU that has it, float32 on a CPU",
    ),
    **dict.fromkeys(
        (
            "attn_implementation",
            "use_liger_kernel",
            "use_liger",
            "gradient_checkpointing_kwargs",
            "dataset_num_proc",
            "dataloader_num_workers",
            "ddp_timeout",
            "vllm_device",
            "ds3_gather_for_generation",
            "vllm_enable_sleep_mode",
        ),
        _FAST,
    ),
    "num_processes": "the process count is the launcher's (accelerate launch's num_processes)",
    "max_prompt_length": "r1kit keeps prompts whole (trl 1.x has no max_prompt_length either)",
    **dict.fromkeys(
        ("run_name", "wandb_entity", "wandb_project", "wandb_run_group"),
        "tracker names: set WANDB_PROJECT, WANDB_ENTITY, WANDB_NAME in the environment",
    ),
}
# key -> (values ignored like IGNORED's keys, why any other value is refused and what to do instead)
IGNORED_AT: dict[str, tuple[tuple[Any, ...], str]] = {
    "model_revision": (
        ("main", None),
        (
            "r1kit loads a hub model's main revision; download the revision "
            "(huggingface_hub.snapshot_download(REPO, revision=...)) and pass its folder as the model"
        ),
    ),
    "hub_model_revision": (("main", None), "r1kit pushes to the repo's main branch"),
    "trust_remote_code": ((False, None), "r1kit loads models with transformers' own classes only"),
    "completion_only_loss": ((True, None), "r1kit's SFT always puts the loss on the completions only"),
    "sync_ref_model": (
        (False, None),
        (
            "r1kit's grpo replaces the reference model by the policy every N steps "
            "instead: ref_reset_steps: N (R1: 400; trl's sync with mixup alpha 1)"
        ),
    ),
    "vllm_mode": (
        ("colocate", None),
        ("for trl's server mode give vllm_server_base_url: http://HOST:PORT (r1kit's grpo: vllm_server)"),
    ),
}
REFUSED: dict[str, str] = {
    "chat_template": "r1kit renders prompts with the tokenizer's own chat template (or r1kit's templates); set "
    "tokenizer.chat_template, save the model and tokenizer with save_pretrained, and pass that "
    "folder as the model",
}

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0", "none", "")


class _PushToOutputName:
    """push_to_hub: true without hub_model_id: trl names the repo after the output folder (`finish`)."""

    def __repr__(self) -> str:
        return "push_to_hub: true"


PUSH_TO_OUTPUT_NAME = _PushToOutputName()


def _truth(value: Any) -> bool | None:
    """True / False for trl's booleans (YAML booleans, or the words of a flag), None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    return None


def _joined(value: Any) -> Any:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def _use_vllm(value: Any) -> Any:
    truth = _truth(value)
    return value if truth is None else ("on" if truth else "off")


def _scale_rewards(value: Any) -> Any:
    truth = _truth(value)  # trl's older boolean form: true = the group's std, false = none (Dr. GRPO)
    return value if truth is None else ("group" if truth else "none")


def _report_to(value: Any) -> Any:
    if value is None or value == []:
        return "none"
    return _joined(value)


def _resume(value: Any) -> Any:
    truth = _truth(value)
    return value if truth is None else ("auto" if truth else "")


def _push_to_hub(value: Any) -> Any:
    truth = _truth(value)
    return value if truth is None else (PUSH_TO_OUTPUT_NAME if truth else "")


# r1kit option -> the function that turns trl's form of its value into r1kit's (r1kit's own forms pass).
VALUE_FORMS = {
    "use_vllm": _use_vllm,
    "scale_rewards": _scale_rewards,
    "report_to": _report_to,
    "lora_target": _joined,
    "resume": _resume,
    "push_to_hub": _push_to_hub,
}


def value_form(option: str, value: Any) -> Any:
    """`value` of `option` in r1kit's form (trl's booleans and lists turned into r1kit's words)."""
    form = VALUE_FORMS.get(option)
    return value if form is None else form(value)


def aliases(fields: set[str]) -> dict[str, str]:
    """trl name -> r1kit option, for a stage whose options are `fields` (a name that is itself one of
    the stage's options stays that option)."""
    return {
        alias: option
        for option, names in ALIASES.items()
        if option in fields
        for alias in names
        if alias not in fields
    }


def rule_keys(fields: set[str]) -> set[str]:
    """The RULES keys that apply to a stage whose options are `fields`."""
    return {key for key, needs in RULES.items() if key not in fields and all(n in fields for n in needs)}


def flag_types(fields: set[str]) -> dict[str, Any]:
    """The RULES keys a stage takes as (hidden) flags, with their types."""
    return {key: FLAG_TYPES[key] for key in sorted(rule_keys(fields)) if key in FLAG_TYPES}


def known_names(fields: set[str]) -> set[str]:
    """Every trl / open-r1 name this module places for such a stage (for did-you-mean)."""
    return set(aliases(fields)) | rule_keys(fields) | set(IGNORED) | set(IGNORED_AT) | set(REFUSED)


def translate(cls: type, given: dict[str, Any], fields: set[str], layer: set[str]):
    """The keys of one layer (a YAML file or the flags) that are not r1kit names nor ALIASES.

    `layer`: the options this layer set under r1kit's names. Returns (values, extras, ignored,
    unknown): values as (option, value, key given) triples, extras (keys `finish` reads once every
    layer is merged), the ignored keys and the unknown ones. Raises R1kitError for a REFUSED key,
    an IGNORED_AT key at another value, and rewards or schedules r1kit cannot express.
    """
    rules = rule_keys(fields)
    values: list[tuple[str, Any, str]] = []
    extras: dict[str, Any] = {}
    ignored, unknown = [], []
    for key, value in given.items():
        if key in rules:
            continue
        if key in IGNORED:
            ignored.append(key)
        elif key in IGNORED_AT:
            allowed, why = IGNORED_AT[key]
            if value not in allowed:
                raise R1kitError(f"{key}: {value!r} is not supported: {why}")
            ignored.append(key)
        elif key in REFUSED:
            raise R1kitError(f"{key} is not supported: {REFUSED[key]}")
        else:
            unknown.append(key)
    ours = {k: v for k, v in given.items() if k in rules}
    values += _rewards(ours)
    values += _scheduler(ours, layer)
    split_key = getattr(cls, "TRL_SPLIT", "dataset_train_split")
    for key in ("dataset_train_split", "dataset_test_split"):
        if key in ours:
            if key == split_key:
                values.append(("split", ours[key], key))
            else:
                ignored.append(key)  # the other split: r1kit reads one split per stage
    for key in (
        "hub_model_id",
        "gradient_accumulation_steps",
        "steps_per_generation",
        "dataset_config",
        "dataset_configs",
    ):
        if key in ours:
            extras[key] = ours[key]
    return values, extras, ignored, unknown


def _rewards(given: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """open-r1's reward_funcs and reward_weights (trl's GRPOConfig) -> r1kit's NAME=WEIGHT specs."""
    if "reward_funcs" not in given:
        if "reward_weights" in given:
            raise R1kitError(
                "reward_weights needs reward_funcs beside it (one weight per reward); or give "
                "--reward NAME=WEIGHT"
            )
        return []
    funcs = given["reward_funcs"]
    funcs = [funcs] if isinstance(funcs, str) else list(funcs or [])
    weights = given.get("reward_weights")
    weights = (
        [1.0] * len(funcs)
        if weights is None
        else ([weights] if isinstance(weights, (int, float)) else list(weights))
    )
    if len(weights) != len(funcs):
        raise R1kitError(
            f"number of reward_weights ({len(weights)}) must match number of reward_funcs "
            f"({len(funcs)}: {', '.join(map(str, funcs))})"
        )
    specs = []
    for name, weight in zip(funcs, weights):
        name = str(name)
        if name in OPEN_R1_REWARDS and OPEN_R1_REWARDS[name] is None:
            from r1kit.rewards.registry import REWARDS

            raise R1kitError(
                f"reward_funcs: open-r1's {name!r} reward has no r1kit counterpart; r1kit's rewards: "
                f"{', '.join(REWARDS)} (or pkg.mod:fn, a function with trl's reward signature)"
            )
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise R1kitError(f"reward_weights: {weight!r} is not a number") from None
        specs.append(f"{OPEN_R1_REWARDS.get(name) or name}={weight:g}")
    return [("reward", specs, "reward_funcs")]


def _scheduler(given: dict[str, Any], layer: set[str]) -> list[tuple[str, Any, str]]:
    """trl's lr_scheduler_type (+ lr_scheduler_kwargs) -> r1kit's --lr-scheduler and --min-lr-ratio.

    trl's "cosine" decays to 0 where r1kit's decays to --min-lr-ratio of the peak, so it becomes
    cosine with ratio 0; "cosine_with_min_lr" takes its min_lr_rate as the ratio. The ratio is left
    alone when the same layer sets min_lr_ratio itself."""
    kind = given.get("lr_scheduler_type")
    kwargs = given.get("lr_scheduler_kwargs") or {}
    if kind is None:
        if kwargs:
            raise R1kitError("lr_scheduler_kwargs needs lr_scheduler_type: cosine_with_min_lr beside it")
        return []
    if not isinstance(kwargs, dict) or set(kwargs) - {"min_lr_rate"}:
        raise R1kitError(
            f"lr_scheduler_kwargs {kwargs!r}: r1kit takes only min_lr_rate (with cosine_with_min_lr); "
            "for a floor in absolute terms give --min-lr-ratio (floor / peak)"
        )
    kind = str(kind)
    out = [("lr_scheduler", "cosine" if kind == "cosine_with_min_lr" else kind, "lr_scheduler_type")]
    if kind == "cosine_with_min_lr" and "min_lr_rate" not in kwargs and "min_lr_ratio" not in layer:
        raise R1kitError(
            "lr_scheduler_type cosine_with_min_lr needs lr_scheduler_kwargs: {min_lr_rate: R} (or "
            "--min-lr-ratio R)"
        )
    if kind in ("cosine", "cosine_with_min_lr") and "min_lr_ratio" not in layer:
        out.append(("min_lr_ratio", float(kwargs.get("min_lr_rate", 0.0)), "lr_scheduler_type"))
    elif kwargs:
        raise R1kitError(f"lr_scheduler_kwargs {kwargs!r} apply to cosine_with_min_lr only, not {kind!r}")
    return out


def finish(cls: type, values: dict[str, Any], extras: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    """The merged options (every layer) with the RULES that need all of them applied: the repo of
    push_to_hub: true, GRPO's batch arithmetic from trl's keys, and dataset_config."""
    values = dict(values)
    if "push_to_hub" in fields:
        _hub_repo(values, extras)
    if "gradient_accumulation_steps" in extras or "steps_per_generation" in extras:
        _grpo_batches(values, extras, fields)
    _dataset_config(values, extras)
    return values


def _hub_repo(values: dict[str, Any], extras: dict[str, Any]) -> None:
    """push_to_hub: true names the repo by hub_model_id, else by the output folder (trl's default)."""
    hub_id = extras.get("hub_model_id")
    if values.get("push_to_hub") is PUSH_TO_OUTPUT_NAME:
        values["push_to_hub"] = str(hub_id or Path(str(values.get("output") or "")).name)
    elif hub_id and values.get("push_to_hub") and values["push_to_hub"] != hub_id:
        raise R1kitError(
            f"hub_model_id {hub_id!r} and --push-to-hub {values['push_to_hub']!r} name two repos; keep one"
        )
    elif hub_id and "push_to_hub" not in values:  # (push_to_hub: false says it already)
        notice(
            f"hub_model_id {hub_id!r} is set without push_to_hub: nothing is pushed (add --push-to-hub "
            f"{hub_id}, or push_to_hub: true)"
        )


def _int(key: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise R1kitError(f"{key}: cannot read {value!r} as int") from None
    if number < 1:
        raise R1kitError(f"{key} ({number}) must be >= 1")
    return number


def _grpo_batches(values: dict[str, Any], extras: dict[str, Any], fields: set[str]) -> None:
    """trl's GRPO batch keys -> r1kit's: a step is per_device_train_batch_size x processes x
    gradient_accumulation_steps completions, a rollout (generation) batch per_device_train_batch_size
    x processes x steps_per_generation (or generation_batch_size), trained in rollout / step
    optimizer steps: r1kit's --updates-per-rollout."""
    if "prompts_per_step" in values:
        raise R1kitError(
            "gradient_accumulation_steps / steps_per_generation (trl's) and --prompts-per-step both size "
            "GRPO's step; keep one"
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_device = values.get("batch_size") or 8  # trl's per_device_train_batch_size default
    values["batch_size"] = per_device
    gas = _int("gradient_accumulation_steps", extras.get("gradient_accumulation_steps", 1))
    step = per_device * world * gas
    if "steps_per_generation" in extras:
        rollout = per_device * world * _int("steps_per_generation", extras["steps_per_generation"])
    else:
        rollout = values.get("generation_batch_size") or step
    sizes = (
        f"per_device_train_batch_size ({per_device}) x {world} processes (WORLD_SIZE) x "
        f"gradient_accumulation_steps ({gas}) = {step}"
    )
    if rollout % step:
        raise R1kitError(
            f"a generation batch of {rollout} completions is not a whole number of optimizer steps of "
            f"{sizes} completions"
        )
    updates = rollout // step
    if values.setdefault("updates_per_rollout", updates) != updates:
        raise R1kitError(
            f"--updates-per-rollout ({values['updates_per_rollout']}) disagrees with trl's batch keys "
            f"({rollout} completions per generation / {step} per step = {updates}); keep one"
        )
    G = values.get("num_generations", 8)
    if rollout % G:
        raise R1kitError(
            f"a generation batch of {rollout} completions (from {sizes}) must be divisible by "
            f"num_generations ({G}) so that every prompt's group is complete"
        )
    values["generation_batch_size"] = rollout


def _dataset_config(values: dict[str, Any], extras: dict[str, Any]) -> None:
    """dataset_config(s): a local dataset has none (ignored); a hub dataset is read in its default one."""
    config = extras.get("dataset_config", extras.get("dataset_configs"))
    if isinstance(config, (list, tuple)):
        config = config[0] if len(config) == 1 else list(config)
    if config in (None, "default"):
        return
    data = str(values.get("data") or "")
    if data and Path(data).expanduser().exists():
        notice(f"dataset_config {config!r} ignored: {data} is a local dataset (it has no configurations)")
        return
    raise R1kitError(
        f"dataset_config {config!r}: r1kit reads a hub dataset's default configuration; save this one "
        f"(datasets.load_dataset({data or 'NAME'!r}, {config!r}).save_to_disk(DIR)) and pass --data DIR"
    )
