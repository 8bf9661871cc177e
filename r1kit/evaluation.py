"""Evaluation as a library: sample a model, let the judge score every sample, summarize.

`r1kit evaluate` (r1kit/stages/evaluate.py) is a thin stage over this module, and so are
quickstart, the GRPO learning check and the examples. Correctness, the extracted answer and the
format flag of every sample come from r1kit.judge, the same verdict the accuracy and code
rewards give during training: the rewards and the evaluation table agree by construction.
The formulas (pass@1 over k samples, unbiased pass@k, cons@k) live in r1kit/metrics.py.

* `score_samples(dataset, completions)` one row per (prompt, sample) with the judge's verdict.
* `score_rows(rows)`                    the same for a table that already holds completions (a
                                        saved evaluation, or completions from elsewhere).
* `evaluate_model(model, tokenizer, dataset, params)` generate, score, summarize.
* `load_eval_dataset(cfg, template)`    the prompts `r1kit evaluate` scores (with --few-shot examples).
* `load_samples_table(source)`          a saved table of completions to re-judge (`--samples`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r1kit.errors import R1kitError

# Columns of the prompt dataset that the judge reads for code rows.
_CODE_COLUMNS = ("question", "tests", "entry_point")


def _judge_rows(
    rows: list[dict[str, Any]], examples: Sequence[dict[str, Any]], extract: str, prefill: str
) -> None:
    """Fill extracted / correct / format_ok / judge_reason of `rows` (one example per row)."""
    from r1kit.judge import judge_many

    items = [
        {
            "completion": r["completion"],
            "answer": r["answer"],
            "task": r["task"],
            "prompt": r["prompt"],
            **{c: e.get(c) for c in _CODE_COLUMNS},
        }
        for r, e in zip(rows, examples)
    ]
    for r, v in zip(rows, judge_many(items, extract=extract, prefill=prefill)):
        r.update(extracted=v.answer, correct=v.correct, format_ok=v.format_ok, judge_reason=v.reason)
    # An unscorable gold is a property of the prompt: if any sample's verdict said so, exclude all.
    bad = {r["prompt_index"] for r in rows if r["correct"] is None}
    for r in rows:
        if r["prompt_index"] in bad:
            r["correct"] = None


def score_samples(
    dataset,
    completions: Sequence[Sequence[Any]],
    *,
    extract: str = "auto",
    model_name: str = "model",
    prefill: str = "",
    think_prefill: str = "",
) -> list[dict[str, Any]]:
    """One row per (prompt, sample): the judge's extracted answer, correct (None = unscorable
    gold), format_ok and judge_reason, with the completion, its tokens and truncation.

    prefill (or its older name think_prefill): what the template wrote before the completions
    that their text lacks (an R1-distill chat template's "<think>\\n"); completions that start
    with it are read as is.
    """
    prefill = prefill or think_prefill
    rows: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    names = getattr(dataset, "column_names", None) or (list(dataset[0]) if len(dataset) else [])
    code_cols = [c for c in ("tests", "entry_point") if c in names]  # kept, so `--samples` can re-judge code
    for p, (example, samples) in enumerate(zip(dataset, completions)):
        gold = example.get("answer")
        for s, c in enumerate(samples):
            rows.append(
                {
                    "model": model_name,
                    "prompt": example["prompt"],
                    "answer": None if gold is None else str(gold),
                    "task": example.get("task"),
                    "completion": c.text,
                    "num_tokens": c.num_tokens,
                    "truncated": c.truncated,
                    "sample_index": s,
                    "prompt_index": p,
                    **{col: example.get(col) for col in code_cols},
                    **({"question": example.get("question")} if code_cols and "question" in names else {}),
                }
            )
            examples.append(example)
    _judge_rows(rows, examples, extract, prefill)
    return rows


def score_rows(
    rows: Sequence[dict[str, Any]], *, extract: str = "auto", prefill: str = "", model_name: str = "model"
) -> list[dict[str, Any]]:
    """Judge a table of completions (columns prompt, answer, completion; optional task, question,
    tests, entry_point, num_tokens, truncated, model, prompt_index, sample_index).

    Samples of one prompt are grouped by prompt_index when the table has it, else by prompt.
    Returns new rows in the layout of `score_samples`.
    """
    from r1kit.rewards._text import prompt_key

    index: dict[Any, int] = {}  # (model, prompt) -> prompt_index
    per_model: dict[Any, int] = {}  # model -> prompts seen
    seen: dict[Any, int] = {}  # (model, prompt_index) -> samples seen
    out, examples = [], []
    for row in rows:
        if row.get("completion") is None:
            raise R1kitError("every row of a samples table needs a 'completion'")
        model = row.get("model") or model_name
        key = (
            model,
            row["prompt_index"] if row.get("prompt_index") is not None else prompt_key(row.get("prompt")),
        )
        if key not in index:
            index[key] = per_model.get(model, 0)
            per_model[model] = index[key] + 1
        p = index[key]
        s = seen.get((model, p), 0)
        seen[(model, p)] = s + 1
        gold = row.get("answer")
        out.append(
            {
                "model": model,
                "prompt": row.get("prompt"),
                "answer": None if gold is None else str(gold),
                "task": row.get("task"),
                "completion": row["completion"],
                "num_tokens": int(row.get("num_tokens") or 0),
                "truncated": bool(row.get("truncated")),
                "sample_index": row["sample_index"] if row.get("sample_index") is not None else s,
                "prompt_index": p,
                **{c: row.get(c) for c in _CODE_COLUMNS if c in row},
            }
        )
        examples.append(row)
    _judge_rows(out, examples, extract, prefill)
    return out


def summarize(rows: Sequence[dict[str, Any]], pass_k: Sequence[int] = (1,)) -> dict[str, Any]:
    """The metrics of one model's scored rows (r1kit.metrics.summarize_samples), with the count and
    the prompt_index of the prompts excluded for an unscorable gold."""
    from r1kit.metrics import summarize_samples

    return summarize_samples(rows, pass_k)


def evaluate_model(
    model: Any,
    tokenizer: Any,
    dataset,
    params=None,
    *,
    pass_k: Sequence[int] = (1,),
    extract: str = "auto",
    prefill: str = "",
    backend: Any = None,
    model_name: str = "model",
    progress: bool = False,
    static_cache: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sample, score and summarize one model on a canonical dataset (columns prompt, answer, task).

    params: r1kit.generation.SamplingParams (default: greedy, one sample). backend: a ready
    GenerationBackend (default: the transformers backend over model/tokenizer). prefill: text
    forced at the start of every reply (the template's). The judge also reads the "<think>" a
    tokenizer's chat template pre-fills (R1 distills). Returns (metrics as in `summarize`,
    per-sample rows). Used by `evaluate`, `quickstart`, the GRPO learning check and `distill`.
    """
    from r1kit.generation import SamplingParams, get_backend
    from r1kit.judge import stage_prefill

    if params is None:
        params = SamplingParams(greedy=True, max_new_tokens=256)
    bad_k = [k for k in pass_k if k > params.n]
    if bad_k:
        raise R1kitError(f"pass@{bad_k[0]} needs --num-samples >= {bad_k[0]} (got {params.n})")
    if backend is None:
        backend = get_backend("hf", model, tokenizer, static_cache=static_cache, progress=progress)
    completions = backend.generate(list(dataset["prompt"]), params, prefill)
    chat = len(dataset) > 0 and not isinstance(dataset[0]["prompt"], str)
    rows = score_samples(
        dataset,
        completions,
        extract=extract,
        model_name=model_name,
        prefill=stage_prefill(tokenizer, prefill, chat),
    )
    return summarize(rows, pass_k), rows


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


def load_eval_dataset(cfg: Any, template: str):
    """The canonical evaluation dataset (prompt, answer, task, ...) for `r1kit evaluate`'s options `cfg`,
    rendered with `template` (already resolved from 'auto'); R1kitError if unusable."""
    from r1kit.data.prompts import prepare_prompt_dataset

    split = cfg.split if cfg.split is not None else _default_split(cfg.data)
    ds = prepare_prompt_dataset(cfg, template, split=split)
    if len(ds) == 0:
        raise R1kitError(f"{cfg.data} has no rows to evaluate")
    if cfg.few_shot:
        ds = add_few_shot(ds, cfg)
    return ds


def add_few_shot(ds, cfg: Any):
    """Rewrite `prompt` as the few-shot prompt (r1kit.data.templates.render_few_shot) with the first
    --few-shot solved rows of --few-shot-data (else the data's train split), skipping evaluated questions."""
    from r1kit.data import load_dataset_any
    from r1kit.data.templates import few_shot_examples, render_few_shot

    source, split = cfg.few_shot_data, None
    if not source:
        source, split = cfg.data, "train"
        if "train" not in (_saved_splits(cfg.data) or []):  # a single file has no separate train rows
            raise R1kitError(
                f"--few-shot needs solved examples: {cfg.data} has no train split; pass "
                "--few-shot-data FILE (e.g. ../shared/data/gsm8k_train.jsonl)"
            )
    pool = load_dataset_any(source, split=split)
    field = cfg.prompt_field if cfg.prompt_field and cfg.prompt_field in pool.column_names else None
    examples = few_shot_examples(pool, cfg.few_shot, exclude=ds["question"], question_field=field)
    return ds.map(
        lambda row: {"prompt": render_few_shot(examples, row["question"])},
        keep_in_memory=True,
        desc=f"{cfg.few_shot}-shot prompts",
    )
