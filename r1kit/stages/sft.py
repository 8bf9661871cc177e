"""Supervised fine-tuning: the R1 cold start, rejection-sampling SFT and the distillation student.

Wraps trl's SFTTrainer. The loss is on the completion only: chat `messages`
rows are split into prompt (every turn but the last) and completion (the last,
assistant turn), and prompt/completion rows are used as they are. R1's cold
start and its rejection-sampling SFT ran 2-3 epochs with a cosine schedule
from 5e-5 to 5e-6 (PAPERS.md, "R1 pipeline"); distillation used 2-3 epochs at
1e-4 (small students) to 2e-5 (70B). r1kit's defaults follow the cold start;
on the built-in tiny model larger rates learn faster and the recipes set them.

Differences from the paper: the cold-start data format
`|special_token|<reasoning>|special_token|<summary>` is whatever the dataset
holds; r1kit's built-in task uses `<think>...</think><answer>...</answer>`.

Example:

    r1kit sft --model tiny --data runs/data --output runs/sft --epochs 2 --learning-rate 1e-3
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError


@dataclass
class Config(StageConfig):
    INPUTS = ("model", "data", "resume")  # checked against --output (r1kit.outputs)
    model: str = option("tiny", "Model: 'tiny', 'tiny-llama', a checkpoint folder, an r1kit stage output, a .gguf file or a hub id.")
    data: str = option("", "Training data: a save_to_disk folder, an r1kit stage output, a .jsonl/.json/.parquet/.csv file or a hub id.")
    split: str = option("train", "Split to train on when the data has several.")
    messages_field: str = option("messages", "Column of chat messages (the last message is the completion).")
    prompt_field: str = option("prompt", "Prompt column, used when there is no messages column.")
    completion_field: str = option("completion", "Completion column, used when there is no messages column.")
    limit: int = option(0, "Train on the first N rows only (0 = all).")
    max_length: int = option(1024, "Longest tokenized example; longer ones are truncated.")
    packing: bool = option(False, "Pack several examples into each sequence (padding-free).")
    epochs: float = option(2.0, "Training epochs (R1: 2-3).")
    max_steps: int = option(-1, "Stop after this many optimizer steps (-1 = run all epochs).")
    batch_size: int = option(16, "Examples per device per step.")
    grad_accum: int = option(1, "Gradient accumulation steps.")
    learning_rate: float = option(5e-5, "Peak learning rate (R1 cold start 5e-5).")
    lr_scheduler: str = option("cosine", "Learning-rate schedule (transformers name).")
    min_lr_ratio: float = option(0.1, "Cosine floor as a fraction of the peak (R1: 5e-5 -> 5e-6 = 0.1).")
    warmup_ratio: float = option(0.03, "Fraction of steps for linear warm-up.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    lora: bool = option(False, "Train LoRA adapters (peft) instead of all weights.")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA alpha.")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_target: str = option("all-linear", "LoRA target modules: 'all-linear' or comma-separated names.")
    merge_lora: bool = option(True, "Merge LoRA adapters into the saved checkpoint so the next stage loads a plain model.")
    gradient_checkpointing: bool = option(False, "Recompute activations to save memory.")
    dtype: str = option("auto", "Weights dtype.", choices=("auto", "float32", "bfloat16", "float16"))
    logging_steps: int = option(10, "Log every N steps.")
    save_steps: int = option(0, "Save a trainer checkpoint every N steps (0 = only at the end).")
    keep_checkpoints: bool = option(False, "Keep trainer checkpoints in OUT/checkpoints after a successful run.")
    resume: str = option("", "Resume: 'auto' (from this output's interrupted run) or a checkpoint folder.")
    report_to: str = option("none", "Passed to trl/transformers report_to (e.g. wandb, tensorboard).")

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise R1kitError("--data is required: the training dataset")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise R1kitError(f"--batch-size ({self.batch_size}) and --grad-accum ({self.grad_accum}) must be >= 1")
        if self.max_length < 8:
            raise R1kitError(f"--max-length ({self.max_length}) is too small")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise R1kitError("set --epochs > 0 or --max-steps > 0")
        if self.learning_rate <= 0:
            raise R1kitError(f"--learning-rate ({self.learning_rate}) must be > 0")
        from r1kit.training import require_extras

        require_extras(self.report_to)  # a missing tracker package: one line now, not a traceback after loading


def to_prompt_completion(ds, cfg: Config):
    """Return a prompt/completion dataset (chat or text) so trl puts the loss on the completion only."""
    from r1kit.data import require_columns, require_text

    if cfg.messages_field in ds.column_names:
        require_text(ds, [cfg.messages_field], cfg.data, text=False)
        def split_messages(row):
            msgs = row[cfg.messages_field]
            if not msgs or msgs[-1]["role"] != "assistant":
                raise R1kitError(f"{cfg.data}: every '{cfg.messages_field}' row must end with an assistant message")
            return {"prompt": msgs[:-1], "completion": [msgs[-1]]}

        return ds.map(split_messages, remove_columns=ds.column_names)
    require_columns(ds, [cfg.prompt_field, cfg.completion_field], cfg.data)
    require_text(ds, [cfg.prompt_field, cfg.completion_field], cfg.data)
    ds = ds.select_columns([cfg.prompt_field, cfg.completion_field])
    if cfg.prompt_field != "prompt" or cfg.completion_field != "completion":
        ds = ds.rename_columns({cfg.prompt_field: "prompt", cfg.completion_field: "completion"})
    return ds


def run(cfg: Config):
    from r1kit.data import load_dataset_any
    from r1kit.models import load_model_and_tokenizer, resolve_checkpoint_dir, save_model
    from r1kit.outputs import check_output_free, is_main_process, stage_output

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.model)
    ds = load_dataset_any(cfg.data, split=cfg.split)
    if cfg.limit:
        ds = ds.select(range(min(cfg.limit, len(ds))))
    ds = to_prompt_completion(ds, cfg)

    import torch
    from trl import SFTConfig, SFTTrainer

    from r1kit.training import hardware_args, lora_config, make_metrics_callback, resolve_resume, training_args

    torch.manual_seed(cfg.seed)
    with stage_output(cfg, "sft", {"model": cfg.model, "data": cfg.data}, keep_checkpoints=cfg.keep_checkpoints,
                      resume=bool(cfg.resume)) as out:
        model, tokenizer = load_model_and_tokenizer(cfg.model, dtype=cfg.dtype, seed=cfg.seed)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        args = training_args(
            SFTConfig,
            output_dir=str(out.checkpoints_dir),
            num_train_epochs=cfg.epochs,
            max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type="cosine_with_min_lr" if cfg.lr_scheduler == "cosine" else cfg.lr_scheduler,
            lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_ratio} if cfg.lr_scheduler == "cosine" else {},
            warmup_steps=cfg.warmup_ratio,  # transformers 5 reads a float < 1 as a ratio
            weight_decay=cfg.weight_decay,
            max_length=cfg.max_length,
            packing=cfg.packing,
            completion_only_loss=True,
            gradient_checkpointing=cfg.gradient_checkpointing,
            logging_steps=cfg.logging_steps,
            save_strategy="steps" if cfg.save_steps else "no",
            save_steps=cfg.save_steps or 500,
            report_to=cfg.report_to,
            seed=cfg.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
            **hardware_args(),
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=ds,
            processing_class=tokenizer,
            peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target, model) if cfg.lora else None,
            callbacks=[make_metrics_callback(out, title="sft")],
        )
        kept = len(trainer.train_dataset)
        if not cfg.packing and kept < len(ds):
            # trl drops rows whose completion truncation to --max-length removed entirely
            if kept == 0:
                raise R1kitError(f"every one of the {len(ds)} rows of {cfg.data} has its prompt fill --max-length "
                                 f"({cfg.max_length} tokens), leaving no completion to train on; raise --max-length")
            out.log({"event": "dropped_overlong", "rows": len(ds) - kept, "kept": kept})
            print(f"r1kit: {len(ds) - kept} of {len(ds)} rows dropped: their prompt fills --max-length "
                  f"({cfg.max_length} tokens)", file=sys.stderr)
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # r1kit's progress line and metrics.jsonl replace its prints
        with out.timed("train"):
            result = trainer.train(resume_from_checkpoint=resolve_resume(cfg.resume, out.checkpoints_dir))
        if cfg.lora and cfg.merge_lora:
            if is_main_process():
                save_model(trainer.model.merge_and_unload(), tokenizer, out.model_dir)
        else:
            # Trainer.save_model gathers sharded (ZeRO-3 / FSDP) weights and writes on rank 0 only.
            trainer.save_model(str(out.model_dir))
        out.log({"event": "summary", **result.metrics, "train_rows": len(ds)})
        out.extra["train_rows"] = len(ds)
        out.extra["global_step"] = trainer.state.global_step
    if is_main_process():
        print(f"wrote {out.final}")
    return out.final
