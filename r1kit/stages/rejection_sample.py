"""Rejection sampling: k samples per prompt, keep the correct ones, filter them, write SFT data.

DeepSeek-R1 §2.3.3 (stage 3): sample the RL checkpoint on reasoning prompts, "retain only the
correct ones", drop chains of thought with mixed languages, long paragraphs and code blocks
(r1kit/filters.py; repetition too, as for the cold start), and mix in non-reasoning SFT data
(~600k reasoning + ~200k non-reasoning samples, i.e. --mix-ratio 0.25). Kimi k1.5 §2.4
"shortest rejection sampling" samples n = 8 times and keeps the shortest correct answer
(--keep shortest-correct). Correctness is the judge's verdict (r1kit/judge.py: the accuracy and
code rewards and `r1kit evaluate` ask the same judge); prompts whose gold cannot be scored are
excluded and reported in report.json (unscorable_gold, unscorable_gold_ids).

Order of the filters, each reported with the prompts and samples that survive it:
generated -> correct -> language -> paragraph -> code_block -> repetition -> keep policy.
`--keep all` skips the correctness step and keeps every sample (wrong ones too), which is what
`r1kit dpo-shorten --samples` wants.

Outputs:
  OUT/data         the SFT-ready dataset: messages (user prompt + assistant completion), prompt,
                   completion, answer, num_tokens, reward_<name> per reward, reward, correct,
                   pass_rate, sample_index, prompt_index, source ("sample" | "mix"); feed it to
                   `r1kit sft --data OUT`
  OUT/samples      every generated sample with its scores, `dropped_by` (the first step that
                   removed it; "" when kept) and `kept`
  OUT/pass_rates   per prompt: prompt, question, answer, pass_rate (correct / k), num_correct, k;
                   for curriculum / prioritized sampling in `r1kit grpo`
  OUT/report.json  the survival counts per step, mean pass rate, mix rows

Differences from the papers: thresholds of the filters are r1kit's (the papers give none); mixed
rows are drawn with the seed, with repetition when the mix dataset is smaller than needed.

Example:

    r1kit rejection-sample --model runs/sft --data runs/data --template chat --num-samples 8 --keep shortest-correct --output runs/rs
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.sampling import KEEP_POLICIES, reward_params

BACKENDS = ("auto", "fast", "hf", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class Config(StageConfig):
    INPUTS = ("model", "data", "mix_data")  # checked against --output (r1kit.outputs)
    model: str = option("tiny", "Model that samples: 'tiny', a checkpoint folder, an r1kit stage output, a .gguf "
                        "file or a hub id.")
    data: str = option("", "Prompts: a save_to_disk folder, an r1kit stage output, a .jsonl/.json/.parquet/.csv "
                       "file or a hub id (required).")
    split: str = option("train", "Split of the prompt dataset.")
    task: str | None = option(None, "Task adapter (gsm8k, math500, mgsm, humaneval, ...) that maps the columns.")
    prompt_field: str | None = option(None, "Column holding the question (default: the task's, else 'prompt').")
    answer_field: str | None = option(None, "Column holding the gold answer (default: the task's, else 'answer').")
    template: str = option("chat", "Prompt template: chat, chat-think, r1-zero, raw, or a dotted path.")
    system_prompt: str | None = option(None, "System prompt added to every prompt.")
    prefill: str | None = option(None, "Text forced at the start of every reply (default: the template's).")
    limit: int = option(0, "Use a seeded random subset of N prompts (0 = all).")
    num_samples: int = option(8, "k: samples per prompt (Kimi shortest rejection sampling: 8).")
    temperature: float = option(1.0, "Sampling temperature.")
    top_p: float = option(0.95, "Nucleus sampling top-p (1.0 = off).")
    top_k: int = option(0, "Top-k sampling (0 = off).")
    max_new_tokens: int = option(1024, "Most tokens generated per sample.")
    batch_size: int = option(64, "Sequences (prompts x samples) generated together.")
    backend: str = option("auto", "Generation backend: auto (fast on a CUDA GPU for a supported model, else hf), "
                          "fast (r1kit's decode loop), hf (transformers), vllm.", choices=BACKENDS)
    dtype: str = option("auto", "Weights dtype.", choices=DTYPES)
    reward: list[str] = option(["accuracy"], "Rewards scored per sample (name[=weight]); each gives a "
                               "reward_<name> column. Correctness always comes from accuracy (code rows: code).")
    keep: str = option("all-correct", "Keep policy: all-correct (R1), shortest-correct (Kimi), first-correct, "
                       "or all (every sample, for dpo-shorten).", choices=KEEP_POLICIES)
    lang: str = option("", "Target language of the chains of thought for rows without a 'lang' column (e.g. en).")
    filter_language: bool = option(True, "Drop mixed-language chains of thought (needs a target language).")
    min_language_share: float = option(0.9, "Language filter: least share of target-language words (R1 reward).")
    filter_paragraphs: bool = option(True, "Drop samples with an over-long paragraph.")
    max_paragraph: int = option(4000, "Paragraph filter: longest paragraph allowed, in --paragraph-unit.")
    paragraph_unit: str = option("chars", "Unit of --max-paragraph.", choices=("chars", "words"))
    filter_code_blocks: bool = option(True, "Drop samples with ``` code blocks in non-code tasks.")
    filter_repetition: bool = option(True, "Drop repetitive samples.")
    min_repetition_reward: float = option(-0.5, "Repetition filter: least repetition reward (a penalty in [-1, 0]).")
    mix_data: str = option("", "Non-reasoning SFT data (a 'messages' column) to mix in.")
    mix_split: str = option("train", "Split of --mix-data.")
    mix_ratio: float = option(0.25, "Share of the output that --mix-data makes up (R1: ~200k of ~800k = 0.25).")
    static_cache: bool = option(True, "On CUDA, generate with a compiled static KV cache (hf backend).")

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise R1kitError("--data is required: the prompts to sample")
        if self.num_samples < 1:
            raise R1kitError(f"--num-samples ({self.num_samples}) must be >= 1")
        if self.limit < 0:
            raise R1kitError(f"--limit ({self.limit}) must be >= 0 (0 = all)")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise R1kitError(f"--max-new-tokens ({self.max_new_tokens}) and --batch-size ({self.batch_size}) must be >= 1")
        if self.temperature <= 0:
            raise R1kitError(f"--temperature ({self.temperature}) must be > 0")
        if not 0 < self.top_p <= 1:
            raise R1kitError(f"--top-p ({self.top_p}) must be in (0, 1]")
        if not self.reward:
            raise R1kitError("--reward needs at least one reward (e.g. --reward accuracy)")
        if not 0 <= self.mix_ratio < 1:
            raise R1kitError(f"--mix-ratio ({self.mix_ratio}) must be in [0, 1): the share of mixed-in rows")
        self.filters().validate()
        from r1kit.training import require_extras

        require_extras(vllm="--backend vllm" if self.backend == "vllm" else "")

    def filters(self):
        from r1kit.filters import FilterSettings

        return FilterSettings(
            language=self.filter_language, min_language_share=self.min_language_share, lang=self.lang,
            paragraph=self.filter_paragraphs, max_paragraph=self.max_paragraph, paragraph_unit=self.paragraph_unit,
            code_block=self.filter_code_blocks, repetition=self.filter_repetition,
            min_repetition_reward=self.min_repetition_reward,
        )


def load_prompts(cfg):
    """The prepared prompt dataset, with the reward columns checked (R1kitError before any model loads)."""
    from r1kit.data import prepare_dataset, require_columns
    from r1kit.rewards import required_columns, resolve_reward

    ds = prepare_dataset(
        cfg.data, task=cfg.task, split=cfg.split, prompt_field=cfg.prompt_field, answer_field=cfg.answer_field,
        template=cfg.template, system_prompt=cfg.system_prompt, limit=cfg.limit or None, seed=cfg.seed,
    )
    for spec in cfg.reward:
        resolve_reward(spec, reward_params(cfg))  # unknown names fail here
        require_columns(ds, sorted(required_columns(spec, reward_params(cfg))), cfg.data)
    return ds


def check_chat_template(tokenizer, dataset, model: str, flag: str = "--model") -> None:
    """Chat-message prompts need the tokenizer's chat template: fail before generating anything."""
    if len(dataset) and not isinstance(dataset[0]["prompt"], str) and getattr(tokenizer, "chat_template", None) is None:
        raise R1kitError(
            f"the prompts are chat messages but the tokenizer of {flag} {model} has no chat template; "
            "use --template raw or r1-zero, or a model whose tokenizer has a chat template"
        )


def load_mix(cfg) -> Any:
    if not cfg.mix_data or cfg.mix_ratio == 0:
        return None
    from r1kit.data import load_dataset_any, require_columns, require_text

    mix = load_dataset_any(cfg.mix_data, split=cfg.mix_split)
    require_columns(mix, ["messages"], cfg.mix_data)
    require_text(mix, ["messages"], cfg.mix_data, text=False)
    return mix


def mix_rows(mix, n_reasoning: int, ratio: float, seed: int, text_prompts: bool, tokenizer) -> list[dict[str, Any]]:
    """round(ratio * n / (1 - ratio)) rows of `mix`, drawn with the seed (repeated when it is too small),
    so that they make up `ratio` of the output."""
    want = round(ratio * n_reasoning / (1 - ratio))
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < want:
        block = list(range(len(mix)))
        rng.shuffle(block)
        order.extend(block)
    rows = []
    for i in order[:want]:
        msgs = [{"role": m["role"], "content": m["content"]} for m in mix[i]["messages"]]
        if not msgs or msgs[-1]["role"] != "assistant":
            raise R1kitError(f"--mix-data row {i} does not end with an assistant message")
        prompt: Any = msgs[:-1]
        if text_prompts:
            prompt = next((m["content"] for m in reversed(msgs[:-1]) if m["role"] == "user"), "")
        completion = msgs[-1]["content"]
        rows.append({"messages": msgs, "prompt": prompt, "completion": completion, "source": "mix",
                     "num_tokens": len(tokenizer(completion, add_special_tokens=False)["input_ids"])})
    return rows


def survival(rows: list[dict[str, Any]], steps: list[str]) -> list[dict[str, Any]]:
    """Prompts and samples left after each step (rows carry `dropped_by`: the step that removed them)."""
    report = []
    removed: set[str] = set()
    for step in steps:
        if step != "generated":
            removed.add(step)
        alive = [r for r in rows if r["dropped_by"] not in removed]
        report.append({"step": step, "prompts": len({r["prompt_index"] for r in alive}), "samples": len(alive),
                       "dropped": sum(1 for r in rows if r["dropped_by"] == step)})
    return report


def print_report(report: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rejection sampling (k={summary['k']}, keep {summary['keep']})")
    for col in ("step", "prompts", "samples", "dropped"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for step in report:
        table.add_row(step["step"], str(step["prompts"]), str(step["samples"]), str(step["dropped"]))
    console = Console()
    console.print(table)
    mean = summary["mean_pass_rate"]
    console.print(f"mean pass rate {'-' if mean is None else f'{100 * mean:.1f}%'}; "
                  f"{summary['mix_rows']} mixed-in rows; {summary['output_rows']} rows written")
    if summary.get("unscorable_gold"):
        ids = summary["unscorable_gold_ids"]
        console.print(f"{summary['unscorable_gold']} prompt(s) excluded because their gold answer could not be scored "
                      f"(prompt_index {', '.join(map(str, ids[:20]))}{', ...' if len(ids) > 20 else ''})")


def run(cfg: Config):
    from r1kit.data.templates import template_prefill
    from r1kit.filters import filter_failures, first_failing_filter
    from r1kit.generation import SamplingParams, get_backend
    from r1kit.judge import stage_prefill
    from r1kit.models import load_model, load_tokenizer, resolve_checkpoint_dir
    from r1kit.outputs import check_output_free, stage_output
    from r1kit.sampling import (
        generate_samples,
        pass_rates,
        records_to_dataset,
        score_samples,
        select,
        to_messages,
        unscorable_prompts,
    )

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.model)
    dataset = load_prompts(cfg)
    mix = load_mix(cfg)
    tokenizer = load_tokenizer(cfg.model)
    check_chat_template(tokenizer, dataset, cfg.model)
    prefill = template_prefill(cfg.template) if cfg.prefill is None else cfg.prefill
    params = SamplingParams(n=cfg.num_samples, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, batch_size=cfg.batch_size)
    settings = cfg.filters()

    with stage_output(cfg, "rejection-sample", {"model": cfg.model, "data": cfg.data, "mix_data": cfg.mix_data}) as out:
        with out.timed("generate"):
            model = None
            if cfg.backend != "vllm":
                model = load_model(cfg.model, dtype=None if cfg.dtype == "auto" else cfg.dtype, seed=cfg.seed)
                _fill_generation_ids(model, tokenizer)
                backend = get_backend(cfg.backend, model, tokenizer, static_cache=cfg.static_cache, progress=True)
            else:
                backend = get_backend("vllm", str(resolve_checkpoint_dir(cfg.model) or cfg.model), tokenizer,
                                      dtype=cfg.dtype, seed=cfg.seed)
            rows = generate_samples(backend, dataset, params, prefill)
            del backend, model
        with out.timed("score"):
            # the judge reads what the chat template pre-fills too (an R1 distill's "<think>\n")
            chat = len(dataset) > 0 and not isinstance(dataset[0]["prompt"], str)
            score_samples(rows, cfg.reward, reward_params(cfg, stage_prefill(tokenizer, prefill, chat)))
            fails = filter_failures([r["completion"] for r in rows], [r.get("task") for r in rows],
                                    [r.get("lang") for r in rows], settings)
        needs_correct = cfg.keep != "all"
        for i, r in enumerate(rows):
            r["dropped_by"] = "correct" if needs_correct and r["correct"] is not True else (
                first_failing_filter(fails, i) or "")
        kept = select(rows, [r["dropped_by"] == "" for r in rows], cfg.keep)
        for r, k in zip(rows, kept):
            if not k and not r["dropped_by"]:
                r["dropped_by"] = f"keep {cfg.keep}"
            r["kept"] = k

        rates = pass_rates(rows)
        by_prompt = {x["prompt_index"]: x for x in rates}
        for r in rows:
            r["pass_rate"] = by_prompt[r["prompt_index"]]["pass_rate"]
        scorable = [x["pass_rate"] for x in rates if x["pass_rate"] is not None]
        if needs_correct and not any(r["correct"] is True for r in rows):
            raise R1kitError(
                f"no prompt had a correct sample among k={cfg.num_samples} ({len(rates)} prompts, "
                f"{len(rates) - len(scorable)} with an unparseable gold); try more samples (--num-samples), a higher "
                "--temperature, a larger --max-new-tokens or an easier split"
            )
        steps = ["generated", *(["correct"] if needs_correct else []), *settings.enabled(), f"keep {cfg.keep}"]
        report = survival(rows, steps)
        if report[-1]["samples"] == 0:
            raise R1kitError(
                "every sample was removed by the filters (see the counts: " + ", ".join(
                    f"{s['step']} {s['samples']}" for s in report) + "); loosen the thresholds or disable a filter")

        keep_rows = []
        for r in rows:
            if r["kept"]:
                keep_rows.append({"messages": to_messages(r["prompt"], r["completion"]), **_public(r), "source": "sample"})
        mixed = mix_rows(mix, len(keep_rows), cfg.mix_ratio, cfg.seed, isinstance(rows[0]["prompt"], str),
                         tokenizer) if mix is not None else []
        data = records_to_dataset(keep_rows + mixed)
        if mixed:
            data = data.shuffle(seed=cfg.seed).flatten_indices()
        data.save_to_disk(str(out.data_dir))
        records_to_dataset([_public(r) | {"dropped_by": r["dropped_by"], "kept": r["kept"]} for r in rows]) \
            .save_to_disk(str(out.path / "samples"))
        records_to_dataset(rates).save_to_disk(str(out.path / "pass_rates"))

        summary = {
            "k": cfg.num_samples, "keep": cfg.keep, "prompts": len(rates), "samples": len(rows),
            "unscorable_prompts": len(rates) - len(scorable),
            **unscorable_prompts(rows),
            "mean_pass_rate": sum(scorable) / len(scorable) if scorable else None,
            "prompts_with_correct": sum(1 for x in rates if x["num_correct"]),
            "reasoning_rows": len(keep_rows), "mix_rows": len(mixed), "output_rows": len(data),
            "mean_tokens_kept": sum(r["num_tokens"] for r in keep_rows) / len(keep_rows),
            "mean_tokens_correct": _mean([r["num_tokens"] for r in rows if r["correct"]]),
            "steps": report,
        }
        (out.path / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
        for step in report:
            out.log({"event": "filter", **step})
        out.log({"event": "summary", **{k: v for k, v in summary.items() if k != "steps"}})
        out.extra.update({k: summary[k] for k in ("prompts", "samples", "reasoning_rows", "mix_rows", "mean_pass_rate",
                                                   "unscorable_gold", "unscorable_gold_ids")})
    print_report(report, summary)
    print(f"wrote {out.final}")
    return out.final


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("dropped_by", "kept")}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fill_generation_ids(model, tokenizer) -> None:
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        if gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
        if gen.eos_token_id is None:
            gen.eos_token_id = tokenizer.eos_token_id
