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
--sft-weight adds an NLL term on the chosen answers (trl's "sft" loss, as in RPO; off by
default); on the tiny model plain DPO at lr 2e-4 shortened answers but wrecked accuracy, while
lr 5e-5 with --sft-weight 1 shortened them and kept accuracy (tests/test_dpo_shorten.py).

Example:

    r1kit dpo-shorten --model runs/sft --data runs/data --template chat --num-samples 8 --epochs 2 --batch-size 16 --learning-rate 5e-5 --sft-weight 1 --output runs/dpo
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError

SAMPLE_COLUMNS = ("prompt", "completion", "correct", "num_tokens")


@dataclass
class Config(StageConfig):
    INPUTS = ("model", "samples", "data", "resume")  # checked against --output (r1kit.outputs)
    model: str = option("tiny", "Model to shorten (the policy and the DPO reference): 'tiny', a checkpoint "
                        "folder, an r1kit stage output, a .gguf file or a hub id.")
    samples: str = option("", "Existing samples dataset (columns prompt, completion, correct, num_tokens), e.g. "
                          "a `rejection-sample --keep all` output; when empty, sample --data here.")
    samples_split: str = option("train", "Split of --samples when it has several.")
    data: str = option("", "Prompts to sample when --samples is not given.")
    split: str = option("train", "Split of --data.")
    task: str | None = option(None, "Task adapter (gsm8k, math500, ...) for --data.")
    prompt_field: str | None = option(None, "Column holding the question (default: the task's, else 'prompt').")
    answer_field: str | None = option(None, "Column holding the gold answer (default: the task's, else 'answer').")
    template: str = option("chat", "Prompt template: chat, chat-think, r1-zero, raw, or a dotted path.")
    system_prompt: str | None = option(None, "System prompt added to every prompt.")
    prefill: str | None = option(None, "Text forced at the start of every reply (default: the template's).")
    limit: int = option(0, "Use a seeded random subset of N prompts (0 = all).")
    num_samples: int = option(8, "k: samples per prompt for the own generation.")
    temperature: float = option(1.0, "Sampling temperature.")
    top_p: float = option(0.95, "Nucleus sampling top-p (1.0 = off).")
    top_k: int = option(0, "Top-k sampling (0 = off).")
    max_new_tokens: int = option(1024, "Most tokens generated per sample.")
    sample_batch_size: int = option(64, "Sequences generated together.")
    backend: str = option("auto", "Generation backend for the own samples: auto (fast on a CUDA GPU for a supported "
                          "model, else hf), fast, hf, vllm.", choices=("auto", "fast", "hf", "vllm"))
    reward: list[str] = option(["accuracy"], "Rewards scored per sample; correctness comes from accuracy (code: code).")
    length_ratio: float = option(1.5, "A correct answer longer than this x the chosen's tokens is rejected (Kimi: 1.5).")
    max_pairs_per_prompt: int = option(0, "Most pairs per prompt (0 = no cap).")
    wrong_longer_only: bool = option(False, "Reject only wrong answers longer than the chosen (the paper's wording).")
    beta: float = option(0.1, "DPO beta: higher stays closer to the reference model.")
    loss_type: str = option("sigmoid", "trl DPO loss type (sigmoid = the DPO paper's).")
    sft_weight: float = option(0.0, "Weight of an added NLL loss on the chosen answers (trl loss 'sft', as in RPO); "
                               "keeps the shortest correct answers likely while the pairs push the rest down.")
    epochs: float = option(1.0, "Training epochs over the pairs.")
    max_steps: int = option(-1, "Stop after this many optimizer steps (-1 = run all epochs).")
    batch_size: int = option(8, "Pairs per device per step.")
    grad_accum: int = option(1, "Gradient accumulation steps.")
    learning_rate: float = option(1e-6, "Peak learning rate (trl's DPO default 1e-6).")
    lr_scheduler: str = option("cosine", "Learning-rate schedule (transformers name).")
    warmup_ratio: float = option(0.0, "Fraction of steps for linear warm-up.")
    max_length: int = option(1024, "Longest tokenized prompt + answer; longer ones are truncated.")
    precompute_ref_log_probs: bool = option(False, "Compute the reference log-probs once before training "
                                            "(frees the reference model's memory).")
    lora: bool = option(False, "Train LoRA adapters (peft); the reference is the adapter-free base.")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA alpha.")
    lora_dropout: float = option(0.0, "LoRA dropout.")
    lora_target: str = option("all-linear", "LoRA target modules: 'all-linear' or comma-separated names.")
    merge_lora: bool = option(True, "Merge LoRA adapters into the saved checkpoint.")
    dtype: str = option("auto", "Weights dtype.", choices=("auto", "float32", "bfloat16", "float16"))
    logging_steps: int = option(10, "Log every N steps.")
    save_steps: int = option(0, "Save a trainer checkpoint every N steps (0 = only at the end).")
    keep_checkpoints: bool = option(False, "Keep trainer checkpoints in OUT/checkpoints after a successful run.")
    resume: str = option("", "Resume: 'auto' (from this output's interrupted run) or a checkpoint folder.")
    report_to: str = option("none", "Passed to trl/transformers report_to (e.g. wandb, tensorboard).")

    def validate(self) -> None:
        super().validate()
        if not self.samples and not self.data:
            raise R1kitError("give --data (prompts to sample here) or --samples (an existing samples dataset)")
        if self.samples and self.data:
            raise R1kitError("give either --samples or --data, not both")
        if self.num_samples < 2 and not self.samples:
            raise R1kitError(f"--num-samples ({self.num_samples}) must be >= 2 to compare answers of one prompt")
        if self.length_ratio < 1:
            raise R1kitError(f"--length-ratio ({self.length_ratio}) must be >= 1")
        if self.max_pairs_per_prompt < 0:
            raise R1kitError(f"--max-pairs-per-prompt ({self.max_pairs_per_prompt}) must be >= 0 (0 = no cap)")
        if self.sft_weight < 0:
            raise R1kitError(f"--sft-weight ({self.sft_weight}) must be >= 0")
        if self.beta <= 0:
            raise R1kitError(f"--beta ({self.beta}) must be > 0")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise R1kitError(f"--batch-size ({self.batch_size}) and --grad-accum ({self.grad_accum}) must be >= 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise R1kitError("set --epochs > 0 or --max-steps > 0")
        if self.learning_rate <= 0:
            raise R1kitError(f"--learning-rate ({self.learning_rate}) must be > 0")
        if self.temperature <= 0:
            raise R1kitError(f"--temperature ({self.temperature}) must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise R1kitError(f"--warmup-ratio ({self.warmup_ratio}) must be in [0, 1)")
        from r1kit.training import require_extras

        require_extras(self.report_to, vllm="--backend vllm" if self.backend == "vllm" and not self.samples else "")
        if self.backend == "vllm" and not self.samples and self.model in ("tiny", "tiny-llama"):
            raise R1kitError(f"the vllm backend needs a checkpoint folder; save {self.model!r} first or use --backend hf")


def load_samples(cfg: Config) -> list[dict]:
    """Rows of an existing samples dataset (mixed-in non-reasoning rows left out)."""
    from r1kit.data import load_dataset_any, require_columns, require_text

    ds = load_dataset_any(cfg.samples, split=cfg.samples_split)
    require_columns(ds, list(SAMPLE_COLUMNS), cfg.samples)
    require_text(ds, ["prompt"], cfg.samples)
    require_text(ds, ["completion"], cfg.samples, messages=False)
    rows = [r for r in ds if r.get("source") != "mix"]
    for i, r in enumerate(rows):
        # bool("no") is True: only real booleans (or 0/1) may say whether a sample is correct
        if r["correct"] not in (None, True, False) or isinstance(r["correct"], float):
            raise R1kitError(f"{cfg.samples} row {i}: 'correct' must be true, false or null, got {r['correct']!r}")
        if r["correct"] is not None:
            r["correct"] = bool(r["correct"])
        if isinstance(r["num_tokens"], bool) or not isinstance(r["num_tokens"], int) or r["num_tokens"] < 0:
            raise R1kitError(f"{cfg.samples} row {i}: 'num_tokens' must be a token count (an integer >= 0), "
                             f"got {r['num_tokens']!r}")
    return rows


def to_trl_pairs(pairs: list[dict]):
    """prompt/chosen/rejected for trl: conversational (assistant turns) when the prompt is chat messages."""
    from datasets import Dataset

    def turn(text):
        return [{"role": "assistant", "content": text}]

    conversational = not isinstance(pairs[0]["prompt"], str)
    return Dataset.from_dict({
        "prompt": [p["prompt"] for p in pairs],
        "chosen": [turn(p["chosen"]) if conversational else p["chosen"] for p in pairs],
        "rejected": [turn(p["rejected"]) if conversational else p["rejected"] for p in pairs],
    })


def run(cfg: Config):
    from r1kit.models import load_model, load_tokenizer, resolve_checkpoint_dir, save_model
    from r1kit.outputs import check_output_free, stage_output
    from r1kit.sampling import build_pairs, records_to_dataset, unscorable_prompts
    from r1kit.stages.rejection_sample import check_chat_template, load_prompts

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    if cfg.samples:
        rows, dataset = load_samples(cfg), None
        if rows and not isinstance(rows[0]["prompt"], str) and tokenizer.chat_template is None:
            raise R1kitError(f"the samples' prompts are chat messages but the tokenizer of --model {cfg.model} has "
                             "no chat template; use samples with text prompts or a model with a chat template")
    else:
        rows, dataset = None, load_prompts(cfg)
        check_chat_template(tokenizer, dataset, cfg.model)

    import torch

    from r1kit.training import hardware_args, lora_config, make_metrics_callback, resolve_resume, training_args

    torch.manual_seed(cfg.seed)
    inputs = {"model": cfg.model, "data": cfg.data, "samples": cfg.samples}
    with stage_output(cfg, "dpo-shorten", inputs, keep_checkpoints=cfg.keep_checkpoints,
                      resume=bool(cfg.resume)) as out:
        model = load_model(cfg.model, dtype=None if cfg.dtype == "auto" else cfg.dtype, seed=cfg.seed)
        if rows is None:
            rows = _sample(cfg, model, tokenizer, dataset, out)
        pairs, stats = build_pairs(rows, length_ratio=cfg.length_ratio, max_pairs_per_prompt=cfg.max_pairs_per_prompt,
                                   wrong_longer_only=cfg.wrong_longer_only)
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
        out.log({"event": "unscorable_gold", "count": excluded["unscorable_gold"],
                 "ids": excluded["unscorable_gold_ids"]})
        (out.path / "report.json").write_text(json.dumps({**stats, **excluded}, indent=2) + "\n")
        _print_stats(stats)

        from trl import DPOConfig, DPOTrainer

        args = training_args(
            DPOConfig,
            output_dir=str(out.checkpoints_dir),
            num_train_epochs=cfg.epochs,
            max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type=cfg.lr_scheduler,
            warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a share of the steps
            beta=cfg.beta,
            loss_type=[cfg.loss_type, "sft"] if cfg.sft_weight > 0 else [cfg.loss_type],
            loss_weights=[1.0, cfg.sft_weight] if cfg.sft_weight > 0 else None,
            max_length=cfg.max_length,
            precompute_ref_log_probs=cfg.precompute_ref_log_probs,
            gradient_checkpointing=False,
            logging_steps=cfg.logging_steps,
            save_strategy="steps" if cfg.save_steps else "no",
            save_steps=cfg.save_steps or 500,
            report_to=cfg.report_to,
            seed=cfg.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
            **hardware_args(),
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
            peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target, model) if cfg.lora else None,
            callbacks=[make_metrics_callback(out, title="dpo-shorten")],
        )
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # r1kit's progress line and metrics.jsonl replace its prints
        with out.timed("train"):
            result = trainer.train(resume_from_checkpoint=resolve_resume(cfg.resume, out.checkpoints_dir))
        model = trainer.model
        if cfg.lora and cfg.merge_lora:
            model = model.merge_and_unload()
        save_model(model, tokenizer, out.model_dir)
        out.log({"event": "summary", **result.metrics, **stats})
        out.extra.update({"pairs": stats["pairs"], "global_step": trainer.state.global_step,
                          "skipped_no_correct": stats["skipped_no_correct"], **excluded})
    print(f"wrote {out.final}")
    return out.final


def _sample(cfg: Config, model, tokenizer, dataset, out) -> list[dict]:
    """k samples per prompt from the model being trained, scored; saved to OUT/samples."""
    from r1kit.data.templates import template_prefill
    from r1kit.generation import SamplingParams, get_backend
    from r1kit.judge import stage_prefill
    from r1kit.sampling import generate_samples, records_to_dataset, reward_params, score_samples

    gen = model.generation_config
    if gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
    if gen is not None and gen.eos_token_id is None:
        gen.eos_token_id = tokenizer.eos_token_id
    params = SamplingParams(n=cfg.num_samples, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, batch_size=cfg.sample_batch_size)
    prefill = template_prefill(cfg.template) if cfg.prefill is None else cfg.prefill
    with out.timed("generate"):
        if cfg.backend == "vllm":
            from r1kit.models import resolve_checkpoint_dir

            backend = get_backend("vllm", str(resolve_checkpoint_dir(cfg.model) or cfg.model), tokenizer,
                                  dtype=cfg.dtype, seed=cfg.seed)
        else:
            backend = get_backend(cfg.backend, model, tokenizer, progress=True)
        rows = generate_samples(backend, dataset, params, prefill)
        del backend
        chat = len(dataset) > 0 and not isinstance(dataset[0]["prompt"], str)
        score_samples(rows, cfg.reward, reward_params(cfg, stage_prefill(tokenizer, prefill, chat)))
    records_to_dataset(rows).save_to_disk(str(out.path / "samples"))
    correct = [r for r in rows if r["correct"]]
    out.log({"event": "samples", "samples": len(rows), "correct": len(correct),
             "mean_tokens": sum(r["num_tokens"] for r in rows) / len(rows)})
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
