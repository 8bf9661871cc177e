"""Supervised fine-tuning as a library: what `r1kit sft` runs, and `r1kit distill` for its student.

The loss is on the completion only (trl's SFTTrainer with completion_only_loss): chat `messages`
rows are split into the prompt (every turn but the last) and the completion (the last, assistant
turn); prompt/completion rows are used as they are. The end of training (resume, saving from
rank 0, the summary) is r1kit.training.train_and_save, shared with grpo and dpo-shorten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.options import DataOptions, ModelOptions, OfflineTrainingOptions, TrainingOptions, restate
from r1kit.progress import notice


@dataclass
class FinetuneConfig(OfflineTrainingOptions, TrainingOptions, DataOptions, ModelOptions, StageConfig):
    """The options of one SFT run (`r1kit sft`'s Config; `r1kit distill` builds one for its student).

    R1's cold start and its rejection-sampling SFT ran 2-3 epochs with a cosine schedule from 5e-5
    to 5e-6 (PAPERS.md, "R1 pipeline"): those are the defaults.
    """

    INPUTS = ("model", "data", "resume")  # checked against --output (r1kit.outputs)
    DATA_REQUIRED = "the training dataset"
    epochs: float = restate("epochs", 2.0, "(R1: 2-3)")
    batch_size: int = restate("batch_size", 16)
    warmup_ratio: float = restate("warmup_ratio", 0.03)
    messages_field: str = option("messages", "Column of chat messages (the last message is the completion).")
    prompt_field: str | None = restate(
        "prompt_field", None, "sft reads it when there is no messages column (default 'prompt')."
    )
    completion_field: str = option("completion", "Completion column, read when there is no messages column.")
    packing: bool = option(False, "Pack several examples into each sequence (padding-free).")


def to_prompt_completion(ds: Any, cfg: FinetuneConfig) -> Any:
    """A prompt/completion dataset (chat or text), so that trl puts the loss on the completion only."""
    from r1kit.data import require_columns, require_text

    if cfg.messages_field in ds.column_names:
        require_text(ds, [cfg.messages_field], cfg.data, text=False)

        def split_messages(row):
            msgs = row[cfg.messages_field]
            if not msgs or msgs[-1]["role"] != "assistant":
                raise R1kitError(
                    f"{cfg.data}: every '{cfg.messages_field}' row must end with an assistant message"
                )
            return {"prompt": msgs[:-1], "completion": [msgs[-1]]}

        return ds.map(split_messages, remove_columns=ds.column_names)
    prompt_field = cfg.prompt_field or "prompt"
    require_columns(
        ds,
        [prompt_field, cfg.completion_field],
        cfg.data,
        "give a --messages-field column of chat "
        "messages, or name the text columns with --prompt-field and --completion-field",
    )
    require_text(ds, [prompt_field, cfg.completion_field], cfg.data)
    ds = ds.select_columns([prompt_field, cfg.completion_field])
    if prompt_field != "prompt" or cfg.completion_field != "completion":
        ds = ds.rename_columns({prompt_field: "prompt", cfg.completion_field: "completion"})
    return ds


def load_training_data(cfg: FinetuneConfig) -> Any:
    """The training rows (a seeded random subset with --limit), as prompt/completion; no model loads."""
    from r1kit.data import load_dataset_any

    ds = load_dataset_any(cfg.data, split=cfg.split)
    if cfg.limit and cfg.limit < len(ds):
        ds = ds.shuffle(seed=cfg.seed, keep_in_memory=True).select(range(cfg.limit), keep_in_memory=True)
    return to_prompt_completion(ds, cfg)


def finetune(cfg: FinetuneConfig, out: Any, ds: Any) -> Any:
    """Train cfg.model on `ds` (from `load_training_data`) into the open stage output `out`."""
    import torch
    from trl import SFTConfig, SFTTrainer

    from r1kit.models import load_model_and_tokenizer
    from r1kit.training import make_metrics_callback, train_and_save, trainer_args

    torch.manual_seed(cfg.seed)
    model, tokenizer = load_model_and_tokenizer(cfg.model, dtype=cfg.dtype, seed=cfg.seed)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    args = trainer_args(
        SFTConfig,
        cfg,
        str(out.checkpoints_dir),
        max_length=cfg.max_length,
        packing=cfg.packing,
        completion_only_loss=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        processing_class=tokenizer,
        peft_config=cfg.lora_config(model),
        callbacks=[make_metrics_callback(out, title="sft")],
    )
    kept = len(trainer.train_dataset)
    if not cfg.packing and kept < len(
        ds
    ):  # trl drops the rows that truncation to max_length left no completion
        if kept == 0:
            raise R1kitError(
                f"every one of the {len(ds)} rows of {cfg.data} has its prompt fill --max-length "
                f"({cfg.max_length} tokens), leaving no completion to train on; raise --max-length"
            )
        out.log({"event": "dropped_overlong", "rows": len(ds) - kept, "kept": kept})
        notice(
            f"{len(ds) - kept} of {len(ds)} rows dropped: their prompt fills --max-length ({cfg.max_length} tokens)"
        )
    result = train_and_save(trainer, cfg, out, tokenizer, summary={"train_rows": len(ds)})
    out.extra["train_rows"] = len(ds)
    return result
