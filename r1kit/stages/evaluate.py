"""Evaluate models the way DeepSeek-R1 reports them: pass@1 over k samples, pass@k, cons@k.

For every prompt, k = --num-samples completions are sampled (R1: temperature
0.6, top-p 0.95, k = 16 for MATH, 64 for AIME) and each is judged by
r1kit/judge.py, the same verdict the accuracy and code rewards give in training
(numbers as numbers, LaTeX by math-verify, code against its tests; the
template's prefill is read before the completion, and reasoning cut off before
its </think> is never correct). The library under this stage is
r1kit/evaluation.py; the formulas live in r1kit/metrics.py (pass@k: `pass_at_k`).

pass@1 (= accuracy) is R1's definition: the mean correctness over the k
samples, averaged over prompts, not "any of k". pass@k, for each --pass-k, is
the unbiased estimator 1 - C(n-c, k) / C(n, k) of Chen et al. 2021 (eq. 1),
averaged over prompts. cons@k (k > 1) is the majority vote over the extracted
answers: equivalent answers such as 0.5 and 1/2 vote together, ties go to the
answer seen first.

Also reported: mean and median completion tokens, the truncation rate (no EOS
within --max-new-tokens) and the format rate, the share of samples that pass
the R1-Zero format <think>...</think><answer>...</answer> (reward `format`) or
the R1 think format <think>...</think> followed by the answer (reward
`think_format`). Prompts whose gold answer cannot be scored are left out of
every rate, counted in excluded_unparseable_gold (= unscorable_gold) and named
by prompt_index in unscorable_gold_ids (also in the manifest); they never
count as correct. Several --model flags evaluate each model on the same
prompts and print one comparison table.

--samples PATH judges saved completions instead of generating (a previous
evaluate output, or any table with prompt, answer and completion columns):
re-score an old run after a change of the judge, or completions produced
elsewhere.

Base models: --few-shot N prepends N solved examples ("Question: ...\nAnswer: ... The answer
is N.", r1kit.data.templates.render_few_shot) taken from --few-shot-data or the data's train
split; pair it with --stop "Question:" (the model would go on to write the next question) and
--extract last_number.

Differences from the paper: lengths are capped by --max-new-tokens (R1:
32768); --greedy gives one argmax sample per prompt.

Outputs: OUT/data (one row per sample, with the judge's extracted answer,
correct, format_ok and judge_reason), OUT/results.json ({model: metrics}),
OUT/metrics.jsonl (one line per model).

Example:

\b
    r1kit evaluate --model runs/grpo --model runs/sft --data runs/data --num-samples 4 --pass-k 1 \\
        --pass-k 4 --max-new-tokens 256 --output runs/eval
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from r1kit.answers import EXTRACT_MODES
from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.options import ModelOptions, PromptOptions, SamplingOptions, restate


@dataclass
class Config(SamplingOptions, PromptOptions, ModelOptions, StageConfig):
    INPUTS = ("model", "data", "few_shot_data", "samples")  # checked against --output (r1kit.outputs)
    DEPRECATED: ClassVar = {"batch_size": "sample_batch_size"}  # old name -> new (r1kit.config.build_config)
    DATA_REQUIRED = "the dataset to evaluate on (or --samples: saved completions)"
    TRL_SPLIT = "dataset_test_split"  # trl's name for --split here (r1kit.trl_names)
    model: list[str] = restate(
        "model",
        ["tiny"],
        "Repeat the flag to evaluate several models on the same prompts, in one comparison table.",
    )
    data: str = restate("data", note="Required unless --samples.")
    samples: str = option(
        "",
        "Score saved completions instead of generating: an `r1kit evaluate` output, or a "
        "table with columns prompt, answer, completion (optional task, tests, entry_point, "
        "question, num_tokens, truncated, model, prompt_index); --model is then unused.",
    )
    split: str | None = restate("split", None, "evaluate: default 'test' when the dataset has one.")
    num_samples: int = restate("num_samples", 1, "(R1: 16 for MATH, 64 for AIME)")
    greedy: bool = option(False, "Greedy decoding: one argmax sample per prompt (temperature 0).")
    temperature: float = restate("temperature", 0.6, "evaluate: R1's 0.6.")
    pass_k: list[int] = option([1], "Report pass@k for this k (each <= --num-samples).")
    extract: str = option(
        "auto", "Where the judge reads the final answer (r1kit/judge.py rule 3).", choices=EXTRACT_MODES
    )
    stop: list[str] = option(
        [],
        "Stop string: a sample ends where it first writes it, and the text is cut "
        "before it (repeatable; e.g. 'Question:' with --few-shot).",
        metavar="TEXT",
    )
    few_shot: int = option(
        0,
        "Prepend N solved examples (Question:/Answer: blocks) to every prompt, for base "
        "models; the first N rows of --few-shot-data, else of the data's train split.",
    )
    few_shot_data: str = option(
        "",
        "Where the --few-shot examples come from (e.g. gsm8k_train.jsonl; rows with "
        "question and a GSM8K '####' answer, or question/solution/answer).",
    )

    def validate(self) -> None:
        if not self.greedy and self.temperature <= 0:
            raise R1kitError(
                f"--temperature ({self.temperature}) must be > 0; use --greedy for argmax decoding"
            )
        super().validate()
        if self.samples and self.data:
            raise R1kitError("give either --data (generate and score) or --samples (score saved completions)")
        if self.samples:
            return
        if not self.model:
            raise R1kitError("--model is required: the model(s) to evaluate")
        dupes = sorted({m for m in self.model if self.model.count(m) > 1})
        if dupes:
            raise R1kitError(f"--model {dupes[0]} is given twice; list each model once")
        if self.greedy and self.num_samples > 1:
            raise R1kitError(
                f"--greedy gives one sample per prompt, but --num-samples is {self.num_samples}; drop one of them"
            )
        for k in self.pass_k:
            if k > self.num_samples:
                raise R1kitError(f"pass@{k} needs --num-samples >= {k} (got {self.num_samples})")
        if self.few_shot and self.template not in ("auto", "raw"):
            raise R1kitError(f"--few-shot builds its own plain-text prompt; drop --template {self.template}")
        if self.few_shot_data and not self.few_shot:
            raise R1kitError("--few-shot-data is given but --few-shot is 0; set --few-shot N")
        if any(not s for s in self.stop):
            raise R1kitError("--stop needs a non-empty string")
        if self.backend == "vllm" and any(m in ("tiny", "tiny-llama") for m in self.model):
            raise R1kitError(
                "the vllm backend needs a checkpoint folder; save the tiny model first or use --backend hf"
            )

    def argmax(self) -> bool:
        return self.greedy

    def sampling_params(self, n: int | None = None, **extra: Any):
        return super().sampling_params(n, greedy=self.greedy, stop=list(self.stop), **extra)


def prepare(cfg: Config) -> tuple[dict[str, str], dict[str, Any]]:
    """Per model, the template its prompts are rendered with ('auto' follows its tokenizer; plain text
    with --few-shot), and per template the evaluation dataset: every check before a model loads."""
    from r1kit.data.prompts import resolve_template
    from r1kit.evaluation import load_eval_dataset
    from r1kit.models import load_tokenizer, resolve_checkpoint_dir

    templates = {}
    for spec in cfg.model:
        resolve_checkpoint_dir(spec)
        template = "raw" if cfg.few_shot and cfg.template == "auto" else cfg.template
        templates[spec] = resolve_template(template, load_tokenizer(spec), spec, "--model")
    return templates, {t: load_eval_dataset(cfg, t) for t in dict.fromkeys(templates.values())}


def _release_memory() -> None:
    """Return the last model's memory before the next one loads."""
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def run(cfg: Config) -> dict[str, dict[str, Any]]:
    if cfg.samples:
        return run_samples(cfg)
    from datasets import Dataset

    from r1kit.data.prompts import reply_prefill
    from r1kit.evaluation import evaluate_model
    from r1kit.generation import get_backend
    from r1kit.models import load_model_and_tokenizer, load_tokenizer, resolve_checkpoint_dir
    from r1kit.outputs import stage_output

    templates, datasets = prepare(cfg)
    params = cfg.sampling_params()
    results: dict[str, dict[str, Any]] = {}
    all_rows: list[dict[str, Any]] = []
    inputs = {"model": cfg.model, "data": cfg.data}
    with stage_output(cfg, "evaluate", inputs) as out:
        for spec in cfg.model:
            with out.timed(f"evaluate {spec}"):
                model = None
                if cfg.backend != "vllm":
                    dtype = None if cfg.dtype == "auto" else cfg.dtype
                    model, tokenizer = load_model_and_tokenizer(spec, dtype=dtype, seed=cfg.seed)
                    backend = get_backend(
                        cfg.backend, model, tokenizer, static_cache=cfg.static_cache, progress=True
                    )
                else:
                    tokenizer = load_tokenizer(spec)
                    path = resolve_checkpoint_dir(spec) or spec
                    backend = get_backend("vllm", str(path), tokenizer, dtype=cfg.dtype, seed=cfg.seed)
                metrics, rows = evaluate_model(
                    model,
                    tokenizer,
                    datasets[templates[spec]],
                    params,
                    pass_k=cfg.pass_k,
                    extract=cfg.extract,
                    prefill=reply_prefill(cfg, templates[spec]),
                    backend=backend,
                    model_name=spec,
                )
            results[spec] = metrics
            all_rows.extend(rows)
            out.log({"model": spec, **metrics})
            del backend, model, tokenizer
            _release_memory()
        Dataset.from_list(all_rows).save_to_disk(str(out.data_dir))
        (out.path / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        out.extra.update(_exclusions(results))
    print_table(results, cfg.pass_k, cfg.num_samples)
    print(f"wrote {out.final}")
    return results


def run_samples(cfg: Config) -> dict[str, dict[str, Any]]:
    """--samples: judge saved completions (no model is loaded) and write the same outputs as a run."""
    from collections import Counter

    from datasets import Dataset

    from r1kit.data.prompts import reply_prefill
    from r1kit.evaluation import load_samples_table, score_rows, summarize
    from r1kit.outputs import stage_output

    table = load_samples_table(cfg.samples, cfg.split)
    # the template's prefill (chat-think's "<think>\n"); 'auto' names no template here: none
    prefill = reply_prefill(cfg, "raw" if cfg.template == "auto" else cfg.template)
    rows = score_rows(table, extract=cfg.extract, prefill=prefill)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    sizes = Counter((r["model"], r["prompt_index"]) for r in rows).values()
    k, smallest = max(sizes), min(sizes)
    bad_k = [kk for kk in cfg.pass_k if kk > smallest]
    if bad_k:
        raise R1kitError(
            f"pass@{bad_k[0]} needs >= {bad_k[0]} samples of every prompt; {cfg.samples} has a prompt "
            f"with {smallest}"
        )
    results: dict[str, dict[str, Any]] = {}
    with stage_output(cfg, "evaluate", {"samples": cfg.samples}) as out:
        for model, rs in by_model.items():
            results[model] = summarize(rs, cfg.pass_k)
            out.log({"model": model, **results[model]})
        Dataset.from_list(rows).save_to_disk(str(out.data_dir))
        (out.path / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        out.extra.update(_exclusions(results))
    print_table(results, cfg.pass_k, k)
    print(f"wrote {out.final}")
    return results


def _exclusions(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Manifest entry: per model, the prompts excluded for an unscorable gold (count and ids)."""
    return {
        "unscorable_gold": {
            spec: {"count": m.get("unscorable_gold", 0), "ids": m.get("unscorable_gold_ids", [])}
            for spec, m in results.items()
        }
    }


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def print_table(results: dict[str, dict[str, Any]], pass_k: Sequence[int], num_samples: int) -> None:
    """One row per model: pass@1 ± its standard error over prompts, pass@k..., cons@k, tokens,
    truncation, format, prompts (rates in %)."""
    from rich.console import Console
    from rich.table import Table

    ks = [k for k in dict.fromkeys(pass_k) if k != 1]
    table = Table(
        title=f"evaluation ({num_samples} sample{'s' if num_samples > 1 else ''} per prompt, rates in %)"
    )
    columns = ["model", "pass@1 ± SE", *[f"pass@{k}" for k in ks]]
    if num_samples > 1:
        columns.append(f"cons@{num_samples}")
    columns += ["mean tokens", "median tokens", "trunc %", "format %", "n prompts"]
    for col in columns:
        table.add_column(col, justify="left" if col == "model" else "right")
    for spec, m in results.items():
        se = m.get("pass@1_stderr")
        pass1 = _pct(m.get("pass@1")) + (
            "" if se is None or m.get("pass@1") is None else f" ± {100 * se:.1f}"
        )
        cells = [spec, pass1, *[_pct(m.get(f"pass@{k}")) for k in ks]]
        if num_samples > 1:
            cells.append(_pct(m.get(f"cons@{num_samples}")))
        mean, median = m.get("mean_tokens"), m.get("median_tokens")
        cells += [
            "-" if mean is None else f"{mean:.1f}",
            "-" if median is None else f"{median:g}",
            _pct(m.get("truncation_rate")),
            _pct(m.get("format_rate")),
            str(m.get("num_prompts")),
        ]
        table.add_row(*cells)
    console = Console(width=max(100, 20 * len(columns)))
    console.print(table)
    for spec, m in results.items():
        if m.get("excluded_unparseable_gold"):
            ids = m.get("unscorable_gold_ids", [])
            shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
            console.print(
                f"{spec}: {m['excluded_unparseable_gold']} prompt(s) excluded because their gold answer "
                f"could not be scored (prompt_index {shown})"
            )
