"""Rejection sampling as a library: what `r1kit rejection-sample` runs, and `r1kit distill` for its teacher.

k samples per prompt are generated and judged (r1kit.sampling.sample_and_score), then filtered in
this order, each step counted: generated -> correct -> language -> paragraph -> code_block ->
repetition -> keep policy (R1 §2.3.3 and Kimi's shortest rejection sampling; the filters are
r1kit/filters.py, the keep policies r1kit.sampling.select). `write_rejection_sample` writes the
output folder's data, samples, pass_rates and report.json (the stage's docstring lists them).

`prepare` makes every check that needs no model (tokenizer, template, prompts, reward columns,
the mixed-in data) so that a stage fails before anything is generated.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from r1kit.config import StageConfig
from r1kit.errors import R1kitError
from r1kit.options import ModelOptions, ScoredSamplingOptions, SelectionOptions, restate


@dataclass
class RejectionConfig(SelectionOptions, ScoredSamplingOptions, ModelOptions, StageConfig):
    """The options of one rejection-sampling run (`r1kit rejection-sample`'s Config; `r1kit distill`
    builds one for its teacher)."""

    INPUTS = ("model", "data", "mix_data")  # checked against --output (r1kit.outputs)
    DATA_REQUIRED = "the prompts to sample"
    reward: list[str] = restate(
        "reward",
        note="Each gives a reward_<name> column; correctness "
        "always comes from the judge (accuracy; code rows: their tests).",
    )


@dataclass
class Prepared:
    """What `prepare` checked and loaded: no model yet."""

    tokenizer: Any
    template: str
    dataset: Any
    mix: Any


def prepare(cfg: RejectionConfig, flag: str) -> Prepared:
    """Tokenizer, template, prompts and mixed-in data, all checked (R1kitError) before any model loads;
    `flag` is the option that named the model (--model, or distill's --teacher)."""
    from r1kit.data.prompts import check_chat_prompts, load_prompts, resolve_template
    from r1kit.models import load_tokenizer, resolve_checkpoint_dir

    resolve_checkpoint_dir(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    template = resolve_template(cfg.template, tokenizer, cfg.model, flag)
    dataset = load_prompts(cfg, template)
    check_chat_prompts(tokenizer, dataset, cfg.model, flag)
    return Prepared(tokenizer, template, dataset, load_mix(cfg))


def load_mix(cfg: RejectionConfig) -> Any:
    if not cfg.mix_data or cfg.mix_ratio == 0:
        return None
    from r1kit.data import load_dataset_any, require_columns, require_text

    mix = load_dataset_any(cfg.mix_data, split=cfg.mix_split)
    require_columns(mix, ["messages"], cfg.mix_data, "--mix-data rows are chat conversations")
    require_text(mix, ["messages"], cfg.mix_data, text=False)
    return mix


def mix_rows(
    mix, n_reasoning: int, ratio: float, seed: int, text_prompts: bool, tokenizer
) -> list[dict[str, Any]]:
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
        rows.append(
            {
                "messages": msgs,
                "prompt": prompt,
                "completion": completion,
                "source": "mix",
                "num_tokens": len(tokenizer(completion, add_special_tokens=False)["input_ids"]),
            }
        )
    return rows


def survival(rows: list[dict[str, Any]], steps: list[str]) -> list[dict[str, Any]]:
    """Prompts and samples left after each step (rows carry `dropped_by`: the step that removed them)."""
    report = []
    removed: set[str] = set()
    for step in steps:
        if step != "generated":
            removed.add(step)
        alive = [r for r in rows if r["dropped_by"] not in removed]
        report.append(
            {
                "step": step,
                "prompts": len({r["prompt_index"] for r in alive}),
                "samples": len(alive),
                "dropped": sum(1 for r in rows if r["dropped_by"] == step),
            }
        )
    return report


def _mark(rows: list[dict[str, Any]], cfg: RejectionConfig) -> None:
    """Set `dropped_by` (the first step that removed a sample; "" when kept) and `kept` on every row."""
    from r1kit.filters import filter_failures, first_failing_filter
    from r1kit.sampling import select

    fails = filter_failures(
        [r["completion"] for r in rows],
        [r.get("task") for r in rows],
        [r.get("lang") for r in rows],
        cfg.filter_settings(),
    )
    needs_correct = cfg.keep != "all"
    for i, r in enumerate(rows):
        r["dropped_by"] = (
            "correct"
            if needs_correct and r["correct"] is not True
            else (first_failing_filter(fails, i) or "")
        )
    kept = select(rows, [r["dropped_by"] == "" for r in rows], cfg.keep)
    for r, k in zip(rows, kept):
        if not k and not r["dropped_by"]:
            r["dropped_by"] = f"keep {cfg.keep}"
        r["kept"] = k


def write_rejection_sample(cfg: RejectionConfig, out: Any, prepared: Prepared) -> dict[str, Any]:
    """Sample, judge, filter and keep, then write data, samples, pass_rates and report.json into the
    open stage output `out`. Returns the report's summary."""
    from r1kit.sampling import (
        pass_rates,
        records_to_dataset,
        sample_and_score,
        to_messages,
        unscorable_prompts,
    )

    rows = sample_and_score(cfg, prepared.dataset, prepared.tokenizer, prepared.template, out=out)
    _mark(rows, cfg)
    needs_correct = cfg.keep != "all"
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
    filters = cfg.filter_settings().enabled()
    steps = ["generated", *(["correct"] if needs_correct else []), *filters, f"keep {cfg.keep}"]
    report = survival(rows, steps)
    if report[-1]["samples"] == 0:
        raise R1kitError(
            "every sample was removed by the filters (see the counts: "
            + ", ".join(f"{s['step']} {s['samples']}" for s in report)
            + "); loosen the thresholds or disable a filter"
        )

    keep_rows = [
        {"messages": to_messages(r["prompt"], r["completion"]), **_public(r), "source": "sample"}
        for r in rows
        if r["kept"]
    ]
    mixed = (
        mix_rows(
            prepared.mix,
            len(keep_rows),
            cfg.mix_ratio,
            cfg.seed,
            isinstance(rows[0]["prompt"], str),
            prepared.tokenizer,
        )
        if prepared.mix is not None
        else []
    )
    data = records_to_dataset(keep_rows + mixed)
    if mixed:
        data = data.shuffle(seed=cfg.seed).flatten_indices()
    data.save_to_disk(str(out.data_dir))
    records_to_dataset(
        [_public(r) | {"dropped_by": r["dropped_by"], "kept": r["kept"]} for r in rows]
    ).save_to_disk(str(out.path / "samples"))
    records_to_dataset(rates).save_to_disk(str(out.path / "pass_rates"))

    summary = {
        "k": cfg.num_samples,
        "keep": cfg.keep,
        "prompts": len(rates),
        "samples": len(rows),
        "unscorable_prompts": len(rates) - len(scorable),
        **unscorable_prompts(rows),
        "mean_pass_rate": sum(scorable) / len(scorable) if scorable else None,
        "prompts_with_correct": sum(1 for x in rates if x["num_correct"]),
        "reasoning_rows": len(keep_rows),
        "mix_rows": len(mixed),
        "output_rows": len(data),
        "mean_tokens_kept": sum(r["num_tokens"] for r in keep_rows) / len(keep_rows),
        "mean_tokens_correct": _mean([r["num_tokens"] for r in rows if r["correct"]]),
        "steps": report,
    }
    (out.path / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    for step in report:
        out.log({"event": "filter", **step})
    out.log({"event": "summary", **{k: v for k, v in summary.items() if k != "steps"}})
    out.extra.update(
        {
            k: summary[k]
            for k in (
                "prompts",
                "samples",
                "reasoning_rows",
                "mix_rows",
                "mean_pass_rate",
                "unscorable_gold",
                "unscorable_gold_ids",
            )
        }
    )
    return summary


def print_report(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rejection sampling (k={summary['k']}, keep {summary['keep']})")
    for col in ("step", "prompts", "samples", "dropped"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for step in summary["steps"]:
        table.add_row(step["step"], str(step["prompts"]), str(step["samples"]), str(step["dropped"]))
    console = Console()
    console.print(table)
    mean = summary["mean_pass_rate"]
    console.print(
        f"mean pass rate {'-' if mean is None else f'{100 * mean:.1f}%'}; "
        f"{summary['mix_rows']} mixed-in rows; {summary['output_rows']} rows written"
    )
    if summary.get("unscorable_gold"):
        ids = summary["unscorable_gold_ids"]
        console.print(
            f"{summary['unscorable_gold']} prompt(s) excluded because their gold answer could not be scored "
            f"(prompt_index {', '.join(map(str, ids[:20]))}{', ...' if len(ids) > 20 else ''})"
        )


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("dropped_by", "kept")}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
