"""Evaluate models the way DeepSeek-R1 reports them: pass@1 over k samples, pass@k, cons@k.

For every prompt, k = --num-samples completions are sampled (R1: temperature
0.6, top-p 0.95, k = 16 for MATH, 64 for AIME) and each is judged by
r1kit/judge.py, the same verdict the accuracy and code rewards give in training
(numbers as numbers, LaTeX by math-verify, code against its tests; the
template's prefill is read before the completion, and reasoning cut off before
its </think> is never correct). The library under this stage is
r1kit/evaluation.py; the formulas live in r1kit/metrics.py.

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

    r1kit evaluate --model runs/grpo --model runs/sft --data runs/data --template chat --num-samples 4 --pass-k 1 --pass-k 4 --max-new-tokens 256 --output runs/eval
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1kit.answers import EXTRACT_MODES
from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.evaluation import evaluate_model  # the library function under this stage

BACKEND_CHOICES = ("auto", "fast", "hf", "vllm")  # r1kit.generation.BACKEND_CHOICES (kept literal: --help imports no torch)
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class Config(StageConfig):
    INPUTS = ("model", "data", "few_shot_data", "samples")  # checked against --output (r1kit.outputs)
    model: list[str] = option(["tiny"], "Model(s) to evaluate: 'tiny', a checkpoint folder, an r1kit stage output, "
                              "a .gguf file or a hub id. Several models give one comparison table.")
    data: str = option("", "Dataset: a save_to_disk folder, an r1kit stage output, a .jsonl/.json/.parquet/.csv "
                       "file or a hub id (required unless --samples).")
    samples: str = option("", "Score saved completions instead of generating: an `r1kit evaluate` output, or a "
                          "table with columns prompt, answer, completion (optional task, tests, entry_point, "
                          "question, num_tokens, truncated, model, prompt_index); --model is then unused.")
    task: str | None = option(None, "Task adapter (e.g. gsm8k, math500, humaneval) that maps the dataset's columns.")
    split: str | None = option(None, "Split to evaluate (default: 'test' when the dataset has one).")
    prompt_field: str | None = option(None, "Column holding the question (default: the task's, else detected, "
                                      "e.g. question or prompt).")
    answer_field: str | None = option(None, "Column holding the gold answer (default: the task's, else detected, "
                                      "e.g. answer or solution).")
    template: str = option("raw", "Prompt template: r1-zero, chat-think (R1's evaluation prompt, reply prefilled "
                           "with '<think>\\n'), chat, raw, or a dotted path to a function.")
    limit: int = option(0, "Evaluate a seeded random subset of N prompts (0 = all).")
    num_samples: int = option(1, "k: samples per prompt (R1 uses 16 for MATH, 64 for AIME).")
    greedy: bool = option(False, "Greedy decoding: one argmax sample per prompt (temperature 0).")
    temperature: float = option(0.6, "Sampling temperature (R1: 0.6).")
    top_p: float = option(0.95, "Nucleus sampling top-p (R1: 0.95; 1.0 = off).")
    top_k: int = option(0, "Top-k sampling (0 = off).")
    max_new_tokens: int = option(1024, "Most tokens generated per sample; longer samples count as truncated.")
    pass_k: list[int] = option([1], "Report pass@k for this k (each <= --num-samples).")
    extract: str = option("auto", "Where the judge reads the final answer (r1kit/judge.py rule 3).",
                          choices=EXTRACT_MODES)
    backend: str = option("auto", "Generation backend: auto (fast on a CUDA GPU for a supported model, else hf), "
                          "fast (r1kit's decode loop), hf (transformers), vllm.", choices=BACKEND_CHOICES)
    batch_size: int = option(64, "Sequences (prompts x samples) generated together.")
    dtype: str = option("auto", "Weights dtype.", choices=DTYPE_CHOICES)
    prefill: str | None = option(None, "Text forced at the start of every reply (default: the template's, "
                                 "'<think>\\n' for chat-think; '' for none).")
    static_cache: bool = option(True, "On CUDA, generate with a compiled static KV cache (hf backend).")
    stop: list[str] = option([], "Stop string: a sample ends where it first writes it, and the text is cut "
                             "before it (repeatable; e.g. 'Question:' with --few-shot).", metavar="TEXT")
    few_shot: int = option(0, "Prepend N solved examples (Question:/Answer: blocks) to every prompt, for base "
                           "models; the first N rows of --few-shot-data, else of the data's train split.")
    few_shot_data: str = option("", "Where the --few-shot examples come from (e.g. gsm8k_train.jsonl; rows with "
                                "question and a GSM8K '####' answer, or question/solution/answer).")

    def validate(self) -> None:
        super().validate()
        from r1kit.training import require_extras

        require_extras(vllm="--backend vllm" if self.backend == "vllm" and not self.samples else "")
        from r1kit.outputs import check_output

        check_output(self)  # before the dataset loads below
        if self.samples:
            if self.data:
                raise R1kitError("give either --data (generate and score) or --samples (score saved completions)")
            self._samples = load_samples_table(self.samples, self.split)
            for k in self.pass_k:
                if k < 1:
                    raise R1kitError(f"--pass-k {k} must be >= 1")
            from r1kit.data.templates import get_template

            get_template(self.template)
            return
        if not self.data:
            raise R1kitError("--data is required: the dataset to evaluate on (or --samples: saved completions)")
        if not self.model:
            raise R1kitError("--model is required: the model(s) to evaluate")
        dupes = sorted({m for m in self.model if self.model.count(m) > 1})
        if dupes:
            raise R1kitError(f"--model {dupes[0]} is given twice; list each model once")
        if self.num_samples < 1:
            raise R1kitError(f"--num-samples ({self.num_samples}) must be >= 1")
        if self.greedy and self.num_samples > 1:
            raise R1kitError(
                f"--greedy gives one sample per prompt, but --num-samples is {self.num_samples}; drop one of them"
            )
        for k in self.pass_k:
            if k < 1:
                raise R1kitError(f"--pass-k {k} must be >= 1")
            if k > self.num_samples:
                raise R1kitError(f"pass@{k} needs --num-samples >= {k} (got {self.num_samples})")
        if self.limit < 0:
            raise R1kitError(f"--limit ({self.limit}) must be >= 0 (0 = all)")
        if self.few_shot < 0:
            raise R1kitError(f"--few-shot ({self.few_shot}) must be >= 0 (0 = no examples)")
        if self.few_shot and self.template != "raw":
            raise R1kitError(f"--few-shot builds its own plain-text prompt; drop --template {self.template}")
        if self.few_shot_data and not self.few_shot:
            raise R1kitError("--few-shot-data is given but --few-shot is 0; set --few-shot N")
        if any(not s for s in self.stop):
            raise R1kitError("--stop needs a non-empty string")
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise R1kitError(f"--{name.replace('_', '-')} ({getattr(self, name)}) must be >= 1")
        if not self.greedy and self.temperature <= 0:
            raise R1kitError(f"--temperature ({self.temperature}) must be > 0; use --greedy for argmax decoding")
        if not 0 < self.top_p <= 1:
            raise R1kitError(f"--top-p ({self.top_p}) must be in (0, 1]")
        if self.top_k < 0:
            raise R1kitError(f"--top-k ({self.top_k}) must be >= 0 (0 = off)")
        from r1kit.data.templates import get_template

        get_template(self.template)
        from r1kit.models import resolve_checkpoint

        for spec in self.model:
            ref = resolve_checkpoint(spec)
            if self.backend == "vllm" and ref.kind == "tiny":
                raise R1kitError(f"the vllm backend needs a checkpoint folder; save {spec!r} first or use --backend hf")
        self._dataset = load_eval_dataset(self)


def load_samples_table(source: str, split: str | None = None) -> list[dict[str, Any]]:
    """The rows of a saved samples table (see --samples); R1kitError when a needed column is missing."""
    from r1kit.data import load_dataset_any, require_columns

    ds = load_dataset_any(source, split=split)
    require_columns(ds, ["prompt", "answer", "completion"], source)
    return ds.to_list()


def _saved_splits(source: str) -> list[str] | None:
    """The split names of a saved DatasetDict (or an r1kit stage output holding one), else None."""
    path = Path(source).expanduser()
    if (path / "manifest.json").is_file() and (path / "data").is_dir():
        path = path / "data"
    info = path / "dataset_dict.json"
    if info.is_file():
        try:
            return list(json.loads(info.read_text()).get("splits", []))
        except (OSError, json.JSONDecodeError):
            return None
    return None


def _default_split(source: str) -> str | None:
    """'test' when the source is a saved DatasetDict that has a test split, else None (loader's choice)."""
    return "test" if "test" in (_saved_splits(source) or []) else None


def load_eval_dataset(cfg: Config):
    """The canonical evaluation dataset (prompt, answer, task, ...) for `cfg`; R1kitError if unusable."""
    from r1kit.data import prepare_dataset

    split = cfg.split if cfg.split is not None else _default_split(cfg.data)
    ds = prepare_dataset(
        cfg.data, task=cfg.task, split=split, prompt_field=cfg.prompt_field, answer_field=cfg.answer_field,
        template=cfg.template, limit=cfg.limit or None, seed=cfg.seed,
    )
    if len(ds) == 0:
        raise R1kitError(f"{cfg.data} has no rows to evaluate")
    if cfg.few_shot:
        ds = add_few_shot(ds, cfg)
    return ds


def add_few_shot(ds, cfg: Config):
    """Rewrite `prompt` as the few-shot prompt (r1kit.data.templates.render_few_shot) with the first
    --few-shot solved rows of --few-shot-data (else the data's train split), skipping evaluated questions."""
    from r1kit.data import load_dataset_any
    from r1kit.data.templates import few_shot_examples, render_few_shot

    source, split = cfg.few_shot_data, None
    if not source:
        source, split = cfg.data, "train"
        if "train" not in (_saved_splits(cfg.data) or []):  # a single file has no separate train rows
            raise R1kitError(f"--few-shot needs solved examples: {cfg.data} has no train split; pass "
                             "--few-shot-data FILE (e.g. ../shared/data/gsm8k_train.jsonl)")
    pool = load_dataset_any(source, split=split)
    field = cfg.prompt_field if cfg.prompt_field and cfg.prompt_field in pool.column_names else None
    examples = few_shot_examples(pool, cfg.few_shot, exclude=ds["question"], question_field=field)
    return ds.map(lambda row: {"prompt": render_few_shot(examples, row["question"])}, keep_in_memory=True,
                  desc=f"{cfg.few_shot}-shot prompts")


def sampling_params(cfg: Config):
    from r1kit.generation import SamplingParams

    return SamplingParams(
        n=cfg.num_samples, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
        max_new_tokens=cfg.max_new_tokens, greedy=cfg.greedy, seed=cfg.seed, batch_size=cfg.batch_size,
        stop=list(cfg.stop),
    )


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

    from r1kit.data.templates import template_prefill
    from r1kit.generation import get_backend
    from r1kit.models import load_model_and_tokenizer, load_tokenizer, resolve_checkpoint_dir
    from r1kit.outputs import stage_output

    dataset = getattr(cfg, "_dataset", None)
    if dataset is None:
        dataset = load_eval_dataset(cfg)
    params = sampling_params(cfg)
    prefill = template_prefill(cfg.template) if cfg.prefill is None else cfg.prefill
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
                    backend = get_backend(cfg.backend, model, tokenizer, static_cache=cfg.static_cache, progress=True)
                else:
                    tokenizer = load_tokenizer(spec)
                    path = resolve_checkpoint_dir(spec) or spec
                    backend = get_backend("vllm", str(path), tokenizer, dtype=cfg.dtype, seed=cfg.seed)
                metrics, rows = evaluate_model(
                    model, tokenizer, dataset, params, pass_k=cfg.pass_k, extract=cfg.extract, prefill=prefill,
                    backend=backend, model_name=spec,
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

    from r1kit.data.templates import template_prefill
    from r1kit.evaluation import score_rows, summarize
    from r1kit.outputs import stage_output

    table = getattr(cfg, "_samples", None) or load_samples_table(cfg.samples, cfg.split)
    prefill = template_prefill(cfg.template) if cfg.prefill is None else cfg.prefill
    rows = score_rows(table, extract=cfg.extract, prefill=prefill)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    sizes = Counter((r["model"], r["prompt_index"]) for r in rows).values()
    k, smallest = max(sizes), min(sizes)
    bad_k = [kk for kk in cfg.pass_k if kk > smallest]
    if bad_k:
        raise R1kitError(f"pass@{bad_k[0]} needs >= {bad_k[0]} samples of every prompt; {cfg.samples} has a prompt "
                         f"with {smallest}")
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
    return {"unscorable_gold": {spec: {"count": m.get("unscorable_gold", 0), "ids": m.get("unscorable_gold_ids", [])}
                                for spec, m in results.items()}}


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def print_table(results: dict[str, dict[str, Any]], pass_k: Sequence[int], num_samples: int) -> None:
    """One row per model: pass@1 ± its standard error over prompts, pass@k..., cons@k, tokens,
    truncation, format, prompts (rates in %)."""
    from rich.console import Console
    from rich.table import Table

    ks = [k for k in dict.fromkeys(pass_k) if k != 1]
    table = Table(title=f"evaluation ({num_samples} sample{'s' if num_samples > 1 else ''} per prompt, rates in %)")
    columns = ["model", "pass@1 ± SE", *[f"pass@{k}" for k in ks]]
    if num_samples > 1:
        columns.append(f"cons@{num_samples}")
    columns += ["mean tokens", "median tokens", "trunc %", "format %", "n prompts"]
    for col in columns:
        table.add_column(col, justify="left" if col == "model" else "right")
    for spec, m in results.items():
        se = m.get("pass@1_stderr")
        pass1 = _pct(m.get("pass@1")) + ("" if se is None or m.get("pass@1") is None else f" ± {100 * se:.1f}")
        cells = [spec, pass1, *[_pct(m.get(f"pass@{k}")) for k in ks]]
        if num_samples > 1:
            cells.append(_pct(m.get(f"cons@{num_samples}")))
        mean, median = m.get("mean_tokens"), m.get("median_tokens")
        cells += [
            "-" if mean is None else f"{mean:.1f}", "-" if median is None else f"{median:g}",
            _pct(m.get("truncation_rate")), _pct(m.get("format_rate")), str(m.get("num_prompts")),
        ]
        table.add_row(*cells)
    console = Console(width=max(100, 20 * len(columns)))
    console.print(table)
    for spec, m in results.items():
        if m.get("excluded_unparseable_gold"):
            ids = m.get("unscorable_gold_ids", [])
            shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
            console.print(f"{spec}: {m['excluded_unparseable_gold']} prompt(s) excluded because their gold answer "
                          f"could not be scored (prompt_index {shown})")
