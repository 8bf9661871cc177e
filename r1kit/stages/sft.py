"""Supervised fine-tuning: the R1 cold start, rejection-sampling SFT and the distillation student.

Wraps trl's SFTTrainer. The loss is on the completion only: chat `messages`
rows are split into prompt (every turn but the last) and completion (the last,
assistant turn), and prompt/completion rows are used as they are. R1's cold
start and its rejection-sampling SFT ran 2-3 epochs with a cosine schedule
from 5e-5 to 5e-6 (PAPERS.md, "R1 pipeline"); distillation used 2-3 epochs at
1e-4 (small students) to 2e-5 (70B). r1kit's defaults follow the cold start;
on the built-in tiny model larger rates learn faster and the recipes set them. The library
under this stage is r1kit/finetuning.py (`r1kit distill` trains its student with it too).

Differences from the paper: the cold-start data format
`|special_token|<reasoning>|special_token|<summary>` is whatever the dataset
holds; r1kit's built-in task uses `<think>...</think><answer>...</answer>`.

Example:

    r1kit sft --model tiny --data runs/data --output runs/sft --epochs 2 --learning-rate 1e-3
"""

from __future__ import annotations

from dataclasses import dataclass

from r1kit.finetuning import FinetuneConfig


@dataclass
class Config(FinetuneConfig):
    """`r1kit sft`'s options: r1kit.finetuning.FinetuneConfig (model, data, trainer, LoRA groups)."""


def run(cfg: Config):
    from r1kit.finetuning import finetune, load_training_data
    from r1kit.models import resolve_checkpoint_dir
    from r1kit.outputs import check_output_free, is_main_process, stage_output

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.model)
    ds = load_training_data(cfg)
    with stage_output(
        cfg,
        "sft",
        {"model": cfg.model, "data": cfg.data},
        keep_checkpoints=cfg.keep_checkpoints,
        resume=bool(cfg.resume),
    ) as out:
        finetune(cfg, out, ds)
    if is_main_process():
        print(f"wrote {out.final}")
    return out.final
