"""Long2short DPO: prefer the shortest correct answer over wrong and over-long ones (Kimi k1.5 §2.4).

Kimi k1.5 §2.4 (long2short, DPO): sample several answers per problem with the long-CoT model;
the shortest correct answer is the positive sample; negatives are the longer wrong answers and
the correct answers more than 1.5 times the positive's length (PAPERS.md). The pairs are trained
with DPO (trl's DPOTrainer, sigmoid loss, beta = --beta; LoRA with --lora).

Pairs per prompt (r1kit.sampling.build_pairs): chosen = the shortest correct sample (in tokens;
ties go to the earlier sample); rejected = every wrong sample and every correct sample longer
than --length-ratio (1.5) x the chosen's tokens, capped at --max-pairs-per-prompt. Prompts with
no correct sample, or with nothing to reject, are skipped and counted in the report.

Samples come from this stage's own generation (k = --num-samples per prompt of --data, judged
by r1kit/judge.py as the accuracy reward and `evaluate` judge them) or from an existing samples
dataset (--samples PATH) with columns prompt, completion, correct, num_tokens, e.g.
`r1kit rejection-sample --keep all` output.

Outputs: OUT/pairs (prompt, chosen, rejected, chosen_tokens, rejected_tokens, reason "wrong" |
"long"), OUT/samples (own generation only), OUT/model (the trained checkpoint, LoRA merged
unless --no-merge-lora), OUT/report.json (pair counts and skips; unscorable_gold and
unscorable_gold_ids name the prompts left out because their gold could not be scored), metrics.jsonl.

Differences from the paper: by default every wrong sample is a negative, not only the wrong
samples longer than the chosen one (--wrong-longer-only gives the paper's stricter reading).
The end of training (resume, saving from rank 0 only, the summary) is r1kit.training.train_and_save,
shared with sft and grpo; the samples come from r1kit.sampling.sample_and_score, as in rejection-sample.

--sft-weight adds an NLL term on the chosen answers (trl's "sft" loss, as in RPO; off by
default); on the tiny model plain DPO at lr 2e-4 shortened answers but wrecked accuracy, while
lr 5e-5 with --sft-weight 1 shortened them and kept accuracy (tests/test_dpo_shorten.py).

Example:

\b
    r1kit dpo-shorten --model runs/sft --data runs/data --num-samples 8 --epochs 2 --batch-size 16 \\
        --learning-rate 5e-5 --sft-weight 1 --output runs/dpo
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.options import (
    ModelOptions,
    OfflineTrainingOptions,
    ScoredSamplingOptions,
    TrainingOptions,
    restate,
)

SAMPLE_COLUMNS = ("prompt", "completion", "correct", "num_tokens")


@dataclass
class Config(OfflineTrainingOptions, TrainingOptions, ScoredSamplingOptions, ModelOptions, StageConfig):
    INPUTS = ("model", "samples", "data", "resume")  # checked against --output (r1kit.outputs)
    DATA_REQUIRED = "the prompts to sample here (or --samples: an existing samples dataset)"
    model: str = restate("model", note="The policy to shorten and the DPO reference.")
    samples: str = option(
        "",
        "Existing samples dataset (columns prompt, completion, correct, num_tokens), e.g. "
        "a `rejection-sample --keep all` output; when empty, --data is sampled here.",
    )
    samples_split: str = option("train", "Split of --samples when it has several.")
    data: str = restate("data", note="The prompts to sample when --samples is not given.")
    length_ratio: float = option(
        1.5, "A correct answer longer than this x the chosen's tokens is rejected (Kimi: 1.5)."
    )
    max_pairs_per_prompt: int = option(0, "Most pairs per prompt (0 = no cap).")
    wrong_longer_only: bool = option(
        False, "Reject only wrong answers longer than the chosen (the paper's wording)."
    )
    beta: float = option(
        0.1, "DPO beta: the KL coefficient to the reference model (higher stays closer to it)."
    )
    loss: str = option("sigmoid", "trl's DPO loss type (sigmoid = the DPO paper's).")
    sft_weight: float = option(
        0.0,
        "Weight of an added NLL loss on the chosen answers (trl loss 'sft', as in RPO); "
        "keeps the shortest correct answers likely while the pairs push the rest down.",
    )
    learning_rate: float = restate("learning_rate", 1e-6, "(trl's DPO default 1e-6)")
    min_lr_ratio: float = restate("min_lr_ratio", 0.0, "dpo-shorten: trl's cosine, down to 0.")
    precompute_ref_log_probs: bool = option(
        False, "Compute the reference log-probs once before training (frees the reference model's memory)."
    )

    def validate(self) -> None:
        super().validate()
        if self.samples and self.data:
            raise R1kitError("give either --samples or --data, not both")
        if self.num_samples < 2 and not self.samples:
            raise R1kitError(
                f"--num-samples ({self.num_samples}) must be >= 2 to compare answers of one prompt"
            )
        if self.beta <= 0:
            raise R1kitError(f"--beta ({self.beta}) must be > 0")
        if self.backend == "vllm" and not self.samples and self.model in ("tiny", "tiny-llama"):
            raise R1kitError(
                f"the vllm backend needs a checkpoint folder; save {self.model!r} first or use --backend hf"
            )


def load_samples(cfg: Config) -> list[dict]:
    """Rows of an existing samples dataset (mixed-in non-reasoning rows left out)."""
    from r1kit.data import load_dataset_any, require_columns, require_text

    ds = load_dataset_any(cfg.samples, split=cfg.samples_split)
    require_columns(
        ds,
        list(SAMPLE_COLUMNS),
        cfg.samples,
        "--samples takes a samples table, e.g. the output of rejection-sample with keep all",
    )
    require_text(ds, ["prompt"], cfg.samples)
    require_text(ds, ["completion"], cfg.samples, messages=False)
    rows = [r for r in ds if r.get("source") != "mix"]
    for i, r in enumerate(rows):
        # bool("no") is True: only real booleans (or 0/1) may say whether a sample is correct
        if r["correct"] not in (None, True, False) or isinstance(r["correct"], float):
            raise R1kitError(
                f"{cfg.samples} row {i}: 'correct' must be true, false or null, got {r['correct']!r}"
            )
        if r["correct"] is not None:
            r["correct"] = bool(r["correct"])
        if isinstance(r["num_tokens"], bool) or not isinstance(r["num_tokens"], int) or r["num_tokens"] < 0:
            raise R1kitError(
                f"{cfg.samples} row {i}: 'num_tokens' must be a token count (an integer >= 0), "
                f"got {r['num_tokens']!r}"
            )
    return rows


def to_trl_pairs(pairs: list[dict]):
    """prompt/chosen/rejected for trl: conversational (assistant turns) when the prompt is chat messages."""
    from datasets import Dataset

    def turn(text):
        return [{"role": "assistant", "content": text}]

    conversational = not isinstance(pairs[0]["prompt"], str)
    return Dataset.from_dict(
        {
            "prompt": [p["prompt"] for p in pairs],
            "chosen": [turn(p["chosen"]) if conversational else p["chosen"] for p in pairs],
            "rejected": [turn(p["rejected"]) if conversational else p["rejected"] for p in pairs],
        }
    )


def run(cfg: Config):
    from r1kit.data.prompts import check_chat_prompts, load_prompts, resolve_template
    from r1kit.models import load_model, load_tokenizer, resolve_checkpoint_dir
    from r1kit.outputs import check_output_free, is_main_process, stage_output
    from r1kit.sampling import build_pairs, records_to_dataset, unscorable_prompts

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    if cfg.samples:
        rows, dataset, template = load_samples(cfg), None, ""
        if rows and not isinstance(rows[0]["prompt"], str) and tokenizer.chat_template is None:
            raise R1kitError(
                f"the samples' prompts are chat messages but the tokenizer of --model {cfg.model} has "
                "no chat template; use samples with text prompts or a model with a chat template"
            )
    else:
        template = resolve_template(cfg.template, tokenizer, cfg.model, "--model")
        rows, dataset = None, load_prompts(cfg, template)
        check_chat_prompts(tokenizer, dataset, cfg.model, "--model")

    import torch

    from r1kit.training import make_metrics_callback, train_and_save, trainer_args

    torch.manual_seed(cfg.seed)
    inputs = {"model": cfg.model, "data": cfg.data, "samples": cfg.samples}
    with stage_output(
        cfg, "dpo-shorten", inputs, keep_checkpoints=cfg.keep_checkpoints, resume=bool(cfg.resume)
    ) as out:
        model = load_model(cfg.model, dtype=None if cfg.dtype == "auto" else cfg.dtype, seed=cfg.seed)
        if rows is None:
            rows = _sample(cfg, model, tokenizer, dataset, template, out)
        pairs, stats = build_pairs(
            rows,
            length_ratio=cfg.length_ratio,
            max_pairs_per_prompt=cfg.max_pairs_per_prompt,
            wrong_longer_only=cfg.wrong_longer_only,
        )
        out.log({"event": "pairs", **stats})
        if not pairs:
            raise R1kitError(
                f"no preference pairs: of {stats['prompts']} prompts, {stats['skipped_no_correct']} had no correct "
                f"sample, {stats['skipped_no_rejected']} had nothing to reject (no wrong answer and none longer than "
                f"{cfg.length_ratio}x the shortest correct) and {stats['skipped_unscorable']} were unscorable; "
                "sample more (--num-samples), at a higher --temperature, or lower --length-ratio"
            )
        records_to_dataset(pairs).save_to_disk(str(out.path / "pairs"))
        excluded = unscorable_prompts(rows)
        out.log(
            {
                "event": "unscorable_gold",
                "count": excluded["unscorable_gold"],
                "ids": excluded["unscorable_gold_ids"],
            }
        )
        (out.path / "report.json").write_text(json.dumps({**stats, **excluded}, indent=2) + "\n")
        _print_stats(stats)

        from trl import DPOConfig, DPOTrainer

        args = trainer_args(
            DPOConfig,
            cfg,
            str(out.checkpoints_dir),
            beta=cfg.beta,
            loss_type=[cfg.loss, "sft"] if cfg.sft_weight > 0 else [cfg.loss],
            loss_weights=[1.0, cfg.sft_weight] if cfg.sft_weight > 0 else None,
            max_length=cfg.max_length,
            precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # trl would rebuild the reference from the checkpoint's name, which "tiny" or a stage output is
        # not; a frozen copy of the starting weights is the same thing. LoRA needs none (the base is
        # the reference) and precomputed reference log-probs are taken from the untrained model.
        ref_model = None if cfg.lora or cfg.precompute_ref_log_probs else copy.deepcopy(model)
        trainer = DPOTrainer(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=to_trl_pairs(pairs),
            processing_class=tokenizer,
            peft_config=cfg.lora_config(model),
            callbacks=[make_metrics_callback(out, title="dpo-shorten")],
        )
        train_and_save(trainer, cfg, out, tokenizer, summary=stats)
        out.extra.update(
            {"pairs": stats["pairs"], "skipped_no_correct": stats["skipped_no_correct"], **excluded}
        )
    if is_main_process():
        print(f"wrote {out.final}")
    return out.final


def _sample(cfg: Config, model, tokenizer, dataset, template: str, out) -> list[dict]:
    """k samples per prompt from the model being trained, scored; saved to OUT/samples."""
    from r1kit.sampling import records_to_dataset, sample_and_score

    rows = sample_and_score(cfg, dataset, tokenizer, template, model=model, out=out)
    records_to_dataset(rows).save_to_disk(str(out.path / "samples"))
    correct = [r for r in rows if r["correct"]]
    out.log(
        {
            "event": "samples",
            "samples": len(rows),
            "correct": len(correct),
            "mean_tokens": sum(r["num_tokens"] for r in rows) / len(rows),
        }
    )
    return rows


def _print_stats(stats: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="long2short DPO pairs")
    table.add_column("count")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key.replace("_", " "), str(value))
    Console().print(table)
