"""Evaluate models the way DeepSeek-R1 reports them: pass@1 over k samples, pass@k, cons@k.

For every prompt, k = --num-samples completions are sampled (R1: temperature
0.6, top-p 0.95, k = 16 for MATH, 64 for AIME) and each is checked against the
gold answer (math-verify or exact numbers; code runs against its tests).
The formulas live in r1kit/metrics.py.

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
`think_format`). Prompts whose gold answer cannot be parsed are left out of
every rate and counted in excluded_unparseable_gold; they never count as
correct. Several --model flags evaluate each model on the same prompts and
print one comparison table.

Base models: --few-shot N prepends N solved examples ("Question: ...\nAnswer: ... The answer
is N.", r1kit.data.templates.render_few_shot) taken from --few-shot-data or the data's train
split; pair it with --stop "Question:" (the model would go on to write the next question) and
--extract last_number.

Differences from the paper: lengths are capped by --max-new-tokens (R1:
32768); --greedy gives one argmax sample per prompt.

Outputs: OUT/data (one row per sample), OUT/results.json ({model: metrics}),
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

BACKEND_CHOICES = ("hf", "vllm")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class Config(StageConfig):
    INPUTS = ("model", "data", "few_shot_data")  # checked against --output (r1kit.outputs)
    model: list[str] = option(["tiny"], "Model(s) to evaluate: 'tiny', a checkpoint folder, an r1kit stage output, "
                              "a .gguf file or a hub id. Several models give one comparison table.")
    data: str = option("", "Dataset: a save_to_disk folder, an r1kit stage output, a .jsonl/.json/.parquet/.csv "
                       "file or a hub id (required).")
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
    extract: str = option("auto", "Where the final answer is read from (r1kit.answers.extract_answer).",
                          choices=EXTRACT_MODES)
    backend: str = option("hf", "Generation backend.", choices=BACKEND_CHOICES)
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
        from r1kit.outputs import check_output

        check_output(self)  # before the dataset loads below
        if not self.data:
            raise R1kitError("--data is required: the dataset to evaluate on")
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


def _answer_kind(task: Any) -> str:
    return task if task in ("math", "numeric") else "auto"


def _check_code(rows: list[dict[str, Any]], examples: list[dict[str, Any]]) -> list[bool | None]:
    """Run code completions against their rows' tests in the sandbox, in parallel (None: no tests)."""
    from r1kit.rewards.code import code_reward

    scores = code_reward(
        [e.get("question") or e.get("prompt") for e in examples], [r["completion"] for r in rows],
        tests=[e.get("tests") for e in examples], entry_point=[e.get("entry_point") for e in examples],
    )
    return [None if s is None else s >= 1.0 for s in scores]


def _format_ok(texts: Sequence[str], think_prefill: str = "") -> list[bool]:
    """A sample passes when it has the R1-Zero format or the R1 think format (see module docstring).

    think_prefill: the "<think>" that a chat template (R1 distills) writes into the prompt, which
    the completion therefore lacks; the format checks read the completion as if it began with it.
    """
    from r1kit.rewards.format import format_reward, think_format_reward

    r1_zero = format_reward(completions=list(texts), prefill=think_prefill)
    think = think_format_reward(completions=list(texts), prefill=think_prefill)
    return [max(a, b) >= 1.0 for a, b in zip(r1_zero, think)]


def score_samples(
    dataset, completions: Sequence[Sequence[Any]], *, extract: str = "auto", model_name: str = "model",
    think_prefill: str = "",
) -> list[dict[str, Any]]:
    """One row per (prompt, sample): extracted answer, correctness (None = unparseable gold), format."""
    from r1kit.answers import check_answer, extract_answer

    rows: list[dict[str, Any]] = []
    code_rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for p, (example, samples) in enumerate(zip(dataset, completions)):
        gold = example.get("answer")
        task = example.get("task")
        for s, c in enumerate(samples):
            row = {
                "model": model_name, "prompt": example["prompt"], "answer": None if gold is None else str(gold),
                "task": task,
                "completion": c.text, "extracted": None, "correct": None, "num_tokens": c.num_tokens,
                "truncated": c.truncated, "sample_index": s, "prompt_index": p,
            }
            if task == "code":
                code_rows.append((row, example))
            else:
                row["extracted"] = extract_answer(c.text, mode=extract)
                if gold is not None:
                    row["correct"] = check_answer(c.text, str(gold), kind=_answer_kind(task), extract=extract)
            rows.append(row)
    if code_rows:
        verdicts = _check_code([r for r, _ in code_rows], [e for _, e in code_rows])
        for (row, _), ok in zip(code_rows, verdicts):
            row["correct"] = ok
    # Unparseable gold is a property of the row: if any sample's check said so, exclude all its samples.
    bad = {r["prompt_index"] for r in rows if r["correct"] is None}
    for r in rows:
        if r["prompt_index"] in bad:
            r["correct"] = None
    for r, ok in zip(rows, _format_ok([r["completion"] for r in rows], think_prefill)):
        r["format_ok"] = ok
    return rows


def evaluate_model(
    model: Any, tokenizer: Any, dataset, params=None, *, pass_k: Sequence[int] = (1,), extract: str = "auto",
    prefill: str = "", backend: Any = None, model_name: str = "model", progress: bool = False,
    static_cache: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sample, score and summarize one model on a canonical dataset (columns prompt, answer, task).

    params: r1kit.generation.SamplingParams (default: greedy, one sample). backend: a ready
    GenerationBackend (default: the transformers backend over model/tokenizer). Returns
    (metrics as in r1kit.metrics.summarize_samples, per-sample rows). Used by `evaluate`,
    `quickstart`, the GRPO learning check and `distill`.
    """
    from r1kit.generation import SamplingParams, get_backend
    from r1kit.metrics import summarize_samples

    if params is None:
        params = SamplingParams(greedy=True, max_new_tokens=256)
    bad_k = [k for k in pass_k if k > params.n]
    if bad_k:
        raise R1kitError(f"pass@{bad_k[0]} needs --num-samples >= {bad_k[0]} (got {params.n})")
    if backend is None:
        backend = get_backend("hf", model, tokenizer, static_cache=static_cache, progress=progress)
    completions = backend.generate(list(dataset["prompt"]), params, prefill)
    think_prefill = ""
    if tokenizer is not None:
        from r1kit.rewards._text import detect_think_prefill

        think_prefill = detect_think_prefill(tokenizer)
    rows = score_samples(dataset, completions, extract=extract, model_name=model_name, think_prefill=think_prefill)
    return summarize_samples(rows, pass_k), rows


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
                if cfg.backend == "hf":
                    dtype = None if cfg.dtype == "auto" else cfg.dtype
                    model, tokenizer = load_model_and_tokenizer(spec, dtype=dtype, seed=cfg.seed)
                    backend = get_backend("hf", model, tokenizer, static_cache=cfg.static_cache, progress=True)
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
    print_table(results, cfg.pass_k, cfg.num_samples)
    print(f"wrote {out.final}")
    return results


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def print_table(results: dict[str, dict[str, Any]], pass_k: Sequence[int], num_samples: int) -> None:
    """One row per model: pass@1, pass@k..., cons@k, tokens, truncation, format, prompts (rates in %)."""
    from rich.console import Console
    from rich.table import Table

    ks = [k for k in dict.fromkeys(pass_k) if k != 1]
    table = Table(title=f"evaluation ({num_samples} sample{'s' if num_samples > 1 else ''} per prompt, rates in %)")
    columns = ["model", "pass@1", *[f"pass@{k}" for k in ks]]
    if num_samples > 1:
        columns.append(f"cons@{num_samples}")
    columns += ["mean tokens", "median tokens", "trunc %", "format %", "n prompts"]
    for col in columns:
        table.add_column(col, justify="left" if col == "model" else "right")
    for spec, m in results.items():
        cells = [spec, _pct(m.get("pass@1")), *[_pct(m.get(f"pass@{k}")) for k in ks]]
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
    excluded = {spec: m["excluded_unparseable_gold"] for spec, m in results.items() if m.get("excluded_unparseable_gold")}
    for spec, count in excluded.items():
        console.print(f"{spec}: {count} prompt(s) excluded because their gold answer could not be parsed")
