"""Pieces every training stage shares: device choice, trainer arguments, resume, metrics.

r1kit trains with trl's trainers. This module holds what would otherwise be
repeated in each stage: the trainer arguments every stage sets alike
(`trainer_args`, from r1kit.options.TrainerOptions; those that depend on the
hardware: CPU runs need `use_cpu=True, bf16=False`), where trainer checkpoints
live, how `--resume` finds one, the end of training (`train_and_save`: train,
save once from rank 0, log the summary) and the callback that mirrors trainer
logs into the stage's `metrics.jsonl` and a progress line (r1kit/progress.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from r1kit.errors import R1kitError
from r1kit.progress import fmt_duration, notice


def hardware_args() -> dict[str, Any]:
    """Trainer arguments that depend on the machine: bf16 on a GPU that has it, plain fp32 on a CPU."""
    import torch

    if torch.cuda.is_available():
        return {"use_cpu": False, "bf16": torch.cuda.is_bf16_supported(), "fp16": False}
    return {"use_cpu": True, "bf16": False, "fp16": False}


def resolve_resume(resume: str, checkpoints_dir: Path) -> str | None:
    """`--resume` value -> a trainer checkpoint folder, or None to start fresh.

    "" starts fresh; "auto" takes the newest checkpoint-N in the run's own
    checkpoint folder (kept from an interrupted run) and starts fresh when
    there is none; any other value is a checkpoint-N folder or a folder
    holding them.
    """
    if not resume:
        return None
    if resume == "auto":
        return latest_checkpoint(checkpoints_dir)
    path = Path(resume)
    if not path.exists():
        raise R1kitError(
            f"--resume {resume}: no such folder (give a checkpoint-N folder, a folder holding them, or 'auto')"
        )
    if (path / "trainer_state.json").is_file():
        return str(path)
    for candidate in (path, path / "checkpoints"):
        found = latest_checkpoint(candidate)
        if found:
            return found
    raise R1kitError(
        f"--resume {resume}: no trainer checkpoint (checkpoint-N with trainer_state.json) found there"
    )


def latest_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint-N in `folder` (see checkpoint_step), or None."""
    if not folder.is_dir():
        return None
    steps = [(step, p) for p in folder.iterdir() if (step := checkpoint_step(p)) is not None]
    return str(max(steps)[1]) if steps else None


def checkpoint_step(path: Path) -> int | None:
    """N for a complete trainer checkpoint folder checkpoint-N, else None.

    transformers writes trainer_state.json last (after weights, optimizer and RNG states), so a
    checkpoint whose state file is missing or cut short was interrupted while saving and cannot
    be resumed from.
    """
    m = re.fullmatch(r"checkpoint-(\d+)", path.name)
    if not m:
        return None
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None
    return int(m.group(1))


def lora_config(r: int, alpha: int, dropout: float, target: str, model=None):
    """peft's LoraConfig; with `model`, comma-separated target names are checked against its modules
    first, so a typo is one line before training rather than peft's error inside the trainer."""
    from peft import LoraConfig

    targets: Any = (
        "all-linear" if target == "all-linear" else [t.strip() for t in target.split(",") if t.strip()]
    )
    if model is not None and targets != "all-linear":
        names = [name for name, _ in model.named_modules()]
        # peft's rule: a target matches a module named exactly so or ending in "." + target
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if missing or not targets:
            linear = sorted(
                {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"}
            )
            raise R1kitError(
                f"--lora-target {target!r}: no module named {', '.join(missing) or '(empty)'} in the model; "
                f"its linear modules are {', '.join(linear)} (or use all-linear)"
            )
    return LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
    )


# Optional packages behind an option: name in --report-to (or "vllm") -> (module to find, what to install).
# The r1kit extras are declared in pyproject.toml; the other trackers transformers knows install as themselves.
EXTRAS = {
    "tensorboard": (("tensorboard", "tensorboardX"), "'r1kit[tensorboard]'"),
    "wandb": (("wandb",), "'r1kit[wandb]'"),
    "trackio": (("trackio",), "'r1kit[trackio]'"),
    "vllm": (("vllm",), "'r1kit[vllm]'"),
    "mlflow": (("mlflow",), "mlflow"),
    "comet_ml": (("comet_ml",), "comet_ml"),
    "clearml": (("clearml",), "clearml"),
    "swanlab": (("swanlab",), "swanlab"),
}


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (a finder that refuses it counts as missing)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extras(report_to: str = "none", *, vllm: str = "") -> None:
    """One line naming the extra to install when an option needs a package that is missing.

    Called from the stages' Config.validate, so it runs before any model loads (without it,
    transformers fails with a long traceback once the model is loaded and the Trainer built).
    report_to: the --report-to value (comma-separated; "none" and "all" need nothing).
    vllm: the option that asks for vLLM (e.g. "--backend vllm", "--use-vllm on"), "" when none does.
    """
    wanted = [
        (f"--report-to {name}", name)
        for name in (n.strip() for n in str(report_to or "").split(","))
        if name and name not in ("none", "all")
    ]
    if vllm:
        wanted.append((vllm, "vllm"))
    for flag, name in wanted:
        if name not in EXTRAS:
            continue  # an unknown tracker is refused by training_args, with transformers' list
        modules, extra = EXTRAS[name]
        if not any(installed(m) for m in modules):
            raise R1kitError(
                f"{flag} needs the {modules[0]} package, which is not installed: pip install {extra}"
            )


def training_args(cls, **kwargs):
    """A transformers/trl TrainingArguments subclass built from r1kit's options.

    Those classes check their values in __post_init__ and raise ValueError for one they refuse
    (an unknown --lr-scheduler); the Trainer refuses an unknown --report-to the same way, checked here
    too. Both are the user's values: one line and exit 2.
    """
    from transformers.integrations import get_reporting_integration_callbacks

    try:
        args = cls(**kwargs)
        get_reporting_integration_callbacks(
            args.report_to
        )  # what the Trainer checks later, after the model loads
        return args
    except ValueError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise R1kitError(f"trainer arguments refused by {cls.__name__}: {first}") from err


def trainer_args(cls, cfg: Any, output_dir: str, **specific: Any):
    """trl's `cls` (SFTConfig, DPOConfig, GRPOConfig) from the options of r1kit.options.TrainerOptions
    (and OfflineTrainingOptions' grad_accum where the stage has it), plus the stage's own `specific`
    arguments, which win. One place for what every training stage sets alike: the schedule ("cosine"
    decays to --min-lr-ratio of the peak), checkpoints (every --save-steps, else only the final one
    with --keep-checkpoints, so a later --resume can continue), logging and the hardware."""
    cosine_floor = cfg.lr_scheduler == "cosine" and cfg.min_lr_ratio > 0
    common = dict(
        output_dir=output_dir,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=getattr(cfg, "grad_accum", 1),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine_with_min_lr" if cosine_floor else cfg.lr_scheduler,
        lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_ratio} if cosine_floor else {},
        warmup_steps=cfg.warmup_ratio,  # transformers 5 reads a float < 1 as a share of the steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        gradient_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps,
        # transformers saves the last step under the "steps" strategy: with --keep-checkpoints and no
        # --save-steps, that final checkpoint is the only one
        save_strategy="steps" if cfg.save_steps or cfg.keep_checkpoints else "no",
        save_steps=cfg.save_steps or 10**9,
        report_to=cfg.report_to,
        seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **hardware_args(),
    )
    return training_args(cls, **{**common, **specific})


def save_trained(trainer: Any, tokenizer: Any, path: Path, *, lora: bool, merge: bool) -> None:
    """Write the trained model to `path` once, from rank 0: LoRA merged into the base (the next
    stage loads a plain model) or the adapter alone, sharded weights (ZeRO-3, FSDP) gathered by
    trl's save_model, which writes on rank 0 only."""
    from r1kit.models import save_model
    from r1kit.outputs import is_main_process

    if lora and merge:
        if is_main_process():
            save_model(trainer.model.merge_and_unload(), tokenizer, path)
    elif lora or trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        trainer.save_model(str(path))
    elif is_main_process():
        save_model(trainer.accelerator.unwrap_model(trainer.model), tokenizer, path)


def train_and_save(
    trainer: Any,
    cfg: Any,
    out: Any,
    tokenizer: Any,
    *,
    summary: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
):
    """The end every training stage shares (sft, grpo, dpo-shorten): train, resuming per --resume;
    save from rank 0 (`save_trained`); log the summary (trainer metrics + `summary`, called after
    training when it is a function: e.g. the warnings raised during it) to metrics.jsonl and the
    step count to the manifest. Interruptions keep the checkpoints (r1kit.outputs.stage_output).
    Returns trl's TrainOutput."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # r1kit's progress lines and metrics.jsonl replace its prints
    warn_lost_updates(trainer, out)
    with out.timed("train"):
        result = trainer.train(resume_from_checkpoint=resolve_resume(cfg.resume, out.checkpoints_dir))
    save_trained(trainer, tokenizer, out.model_dir, lora=cfg.lora, merge=cfg.merge_lora)
    extra = summary() if callable(summary) else summary
    out.log({"event": "summary", **result.metrics, **(extra or {})})
    out.extra["global_step"] = trainer.state.global_step
    return result


def lost_update_fraction(params, learning_rate: float) -> tuple[float, str | None]:
    """Share of the trainable half-precision weights that a step of size `learning_rate` leaves
    unchanged, and their dtype (None when no trainable weight is bf16 / fp16).

    Adam moves each weight by about the learning rate per step. A bf16 weight w holds 8 significant
    bits, so its spacing is 2^(floor(log2|w|) - 7) (fp16: - 10), and adding less than half of it
    rounds back to w: the update is lost. Trained directly in bf16 (a bf16 checkpoint loaded with
    --dtype auto, no fp32 master copy), RL's small learning rates (R1: 3e-6) can leave most weights
    frozen. Estimated on up to ~200k weights taken at even strides.
    """
    import torch

    mantissa = {torch.bfloat16: 7, torch.float16: 10}
    half = [p for p in params if p.requires_grad and p.dtype in mantissa]
    if not half:
        return 0.0, None
    total = sum(p.numel() for p in half)
    stride = max(1, total // 200_000)
    lost = seen = 0
    for p in half:
        w = p.detach().flatten()[::stride].float().abs()
        w = w[w > 0]
        spacing = torch.exp2(torch.floor(torch.log2(w)) - mantissa[p.dtype])
        lost += int((learning_rate < spacing / 2).sum())
        seen += w.numel()
    return lost / max(seen, 1), str(half[0].dtype).removeprefix("torch.")


def warn_lost_updates(trainer: Any, out: Any) -> None:
    """One warning line (rank 0) and a metrics.jsonl event when most trainable weights are half
    precision values the learning rate cannot move (`lost_update_fraction`). Not under DeepSpeed
    or FSDP, which keep fp32 master weights, nor with LoRA, whose adapters peft keeps in fp32."""
    if getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False):
        return
    lr = float(trainer.args.learning_rate)
    fraction, dtype = lost_update_fraction(trainer.model.parameters(), lr)
    if dtype is None or fraction < 0.5:
        return
    out.log({"event": "lost_updates", "fraction": round(fraction, 4), "dtype": dtype, "learning_rate": lr})
    notice(
        f"warning: {fraction:.0%} of the trainable weights are {dtype} values that a step of "
        f"--learning-rate {lr:g} cannot change (less than half of their {dtype} spacing); train them in "
        "float32 with --dtype float32 (mixed precision stays on), or use --lora, FSDP or DeepSpeed "
        "(fp32 master weights)"
    )


def make_metrics_callback(out, *, total_steps: int | None = None, title: str = "training"):
    """A TrainerCallback that appends every trainer log to metrics.jsonl (with `tokens_per_s` added)
    and prints one progress line per log (r1kit.progress: step/total, elapsed, ETA, the SHOWN_KEYS
    at 4 significant digits), the same on a terminal and in a log file. Used by sft (also
    distill's student) and dpo-shorten; grpo has its own (r1kit.rl.callbacks)."""
    from transformers import TrainerCallback

    from r1kit.progress import Clock, TokenRate, emit, metrics_text, step_line

    class _MetricsCallback(TrainerCallback):
        def __init__(self):
            self.clock: Clock | None = None
            self.rate = TokenRate()

        def on_train_begin(self, args, state, control, **kwargs):
            out.training_started(state.global_step)  # after a resume: each step once in metrics.jsonl
            self.clock = Clock(state.max_steps or total_steps, start=state.global_step)
            self.rate.start(getattr(state, "num_input_tokens_seen", 0) or 0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            record = {"step": state.global_step, **{k: _finite(v) for k, v in logs.items()}}
            rate = self.rate.update(logs.get("num_tokens"))
            if rate is not None:
                record["tokens_per_s"] = rate
            out.log(record)
            clock = self.clock or Clock(state.max_steps or total_steps)
            total = state.max_steps or total_steps
            if "train_runtime" in record:  # the trainer's closing summary
                finals = [
                    (k, record.get(k)) for k in ("train_loss", "train_runtime", "train_steps_per_second")
                ]
                emit(
                    f"{title} done: step {state.global_step}/{total or '?'} | elapsed "
                    f"{fmt_duration(clock.elapsed())} | {metrics_text(finals)}"
                )
                return
            emit(
                step_line(
                    title,
                    state.global_step,
                    total,
                    clock,
                    [(label, record.get(key)) for key, label in SHOWN_KEYS],
                )
            )

    return _MetricsCallback()


# (metrics.jsonl key, label on the progress line), in the order shown
SHOWN_KEYS = (
    ("loss", "loss"),
    ("learning_rate", "lr"),
    ("grad_norm", "grad_norm"),
    ("mean_token_accuracy", "token_acc"),
    ("entropy", "entropy"),
    ("rewards/accuracies", "pref_acc"),
    ("rewards/margins", "margin"),
    ("rewards/chosen", "chosen"),
    ("rewards/rejected", "rejected"),
    ("tokens_per_s", "tok/s"),
)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
