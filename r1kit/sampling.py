"""Shared logic of the sampling stages: k samples per prompt, scored, selected, paired.

`rejection-sample`, `distill` and `dpo-shorten` all start from the same table: one row per
(prompt, sample) with the completion text, its token count, the chosen rewards and a `correct`
flag. This module builds that table (`sample_and_score`: a model's backend, `generate_samples`,
then `score_samples`), selects from it (the keep policies of R1 rejection sampling and Kimi's
shortest rejection sampling, `select`), summarises it (`pass_rates`) and turns it into DPO
preference pairs (Kimi long2short, `build_pairs`). Nothing here writes files; the stages do.

Correctness comes from the judge (r1kit.judge, the one place that decides it, also behind the
accuracy and code rewards and `r1kit evaluate`): it reads the template's prefill + the completion,
so reasoning cut off before its </think> is never correct. A row whose gold cannot be scored
gets correct=None: it is never counted as right or wrong, its prompt has no pass rate, and the
stages report those prompts (`unscorable_prompts`, r1kit.judge.exclusion_summary).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from r1kit.errors import R1kitError

KEEP_POLICIES = ("all-correct", "shortest-correct", "first-correct", "all")
# Columns of the prepared prompt dataset carried onto every sample row when present.
CARRIED = ("question", "answer", "task", "lang", "tests", "entry_point", "difficulty")


def to_messages(prompt: Any, completion: str) -> list[dict[str, str]]:
    """An SFT conversation: the chat prompt (or the text prompt as one user turn) + the reply."""
    if isinstance(prompt, str):
        turns = [{"role": "user", "content": prompt}]
    else:
        turns = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return [*turns, {"role": "assistant", "content": completion}]


def generate_samples(backend: Any, dataset: Any, params: Any, prefill: str = "") -> list[dict[str, Any]]:
    """params.n completions per prompt of `dataset` (prepared: prompt, answer, task, ...).

    Returns one row per sample: prompt_index, sample_index, prompt, the CARRIED columns,
    completion (starting with the prefill), num_tokens (generated tokens, without prefill and
    EOS) and truncated.
    """
    prompts = list(dataset["prompt"])
    outputs = backend.generate(prompts, params, prefill)
    carried = [c for c in CARRIED if c in dataset.column_names]
    rows = []
    for p, (example, samples) in enumerate(zip(dataset, outputs)):
        for s, c in enumerate(samples):
            rows.append(
                {
                    "prompt_index": p,
                    "sample_index": s,
                    "prompt": example["prompt"],
                    **{col: example[col] for col in carried},
                    "completion": c.text,
                    "num_tokens": int(c.num_tokens),
                    "truncated": bool(c.truncated),
                }
            )
    return rows


def sample_and_score(
    cfg: Any,
    dataset: Any,
    tokenizer: Any,
    template: str,
    *,
    model: Any = None,
    model_spec: str | None = None,
    out: Any = None,
) -> list[dict[str, Any]]:
    """cfg.num_samples samples per prompt of `dataset`, decoded by cfg.backend, then scored with
    cfg.reward (`correct` is the judge's verdict). One row per sample (see `generate_samples`).

    cfg holds the options of r1kit.options SamplingOptions, RewardOptions and ModelOptions.
    `model`: a loaded model to sample (dpo-shorten samples the model it is about to train); else
    `model_spec` (default cfg.model) is loaded here and released before scoring, or handed to vLLM.
    `out`: a StageOutput whose timings get "generate" and "score".
    """
    from contextlib import nullcontext

    from r1kit.data.prompts import reply_prefill
    from r1kit.generation import get_backend
    from r1kit.judge import stage_prefill
    from r1kit.models import fill_generation_ids, load_model, resolve_checkpoint_dir

    def timed(name: str):
        return out.timed(name) if out is not None else nullcontext()

    spec = model_spec or cfg.model
    prefill = reply_prefill(cfg, template)
    with timed("generate"):
        if cfg.backend == "vllm":
            backend = get_backend(
                "vllm", str(resolve_checkpoint_dir(spec) or spec), tokenizer, dtype=cfg.dtype, seed=cfg.seed
            )
        else:
            if model is None:
                model = load_model(spec, dtype=None if cfg.dtype == "auto" else cfg.dtype, seed=cfg.seed)
            fill_generation_ids(model, tokenizer)
            backend = get_backend(cfg.backend, model, tokenizer, static_cache=cfg.static_cache, progress=True)
        rows = generate_samples(backend, dataset, cfg.sampling_params(), prefill)
        del backend, model  # a model loaded here is freed before the rewards run
    with timed("score"):
        # the judge reads what the chat template pre-fills too (an R1 distill's "<think>\n")
        chat = len(dataset) > 0 and not isinstance(dataset[0]["prompt"], str)
        score_samples(rows, cfg.reward, reward_params(cfg, stage_prefill(tokenizer, prefill, chat)))
    return rows


def reward_params(cfg: Any, prefill: str = "") -> dict[str, Any]:
    """Parameters for the registry's factory rewards from a sampling stage's flags: the target
    language and the prefill the judge and the format rewards read before each completion."""
    return {"lang": getattr(cfg, "lang", "") or None, "prefill": prefill or None}


def _reward_kwargs(rows: Sequence[dict[str, Any]], prefill: str | None = None) -> dict[str, Any]:
    """trl-style keyword arguments for a reward call over `rows` (dataset columns as lists)."""
    kwargs: dict[str, Any] = {
        "prompts": [r["prompt"] for r in rows],
        "completions": [r["completion"] for r in rows],
        "completion_ids": None,
    }
    for col in (*CARRIED, "num_tokens"):
        if any(col in r for r in rows):
            kwargs[col] = [r.get(col) for r in rows]
    if prefill:
        kwargs["prefill"] = [prefill] * len(rows)
    return kwargs


def correctness(rows: Sequence[dict[str, Any]], prefill: str | None = None) -> list[bool | None]:
    """Per row: the judge's verdict (True/False), None when the gold cannot be scored.

    prefill: what the template wrote before each completion that the completion text lacks
    (e.g. an R1-distill chat template's "<think>\n"); a completion that starts with it is
    read as is.
    """
    from r1kit.judge import judge_many

    out = [v.correct for v in judge_many(rows, prefill=prefill)]
    # An unscorable gold is a property of the prompt: exclude all of its samples.
    bad = {rows[i]["prompt_index"] for i, ok in enumerate(out) if ok is None}
    return [None if r["prompt_index"] in bad else ok for r, ok in zip(rows, out)]


def score_samples(
    rows: list[dict[str, Any]], rewards: Iterable[str], params: dict[str, Any] | None = None
) -> list[str]:
    """Add `reward_<name>` per requested reward spec, `reward` (their weighted sum) and `correct`.

    rewards: specs as on the command line ("accuracy", "format=0.5", "pkg.mod:fn=0.3"); params:
    reward parameters (r1kit.rewards.registry, `reward_params`), e.g. {"lang": "en", "prefill":
    "<think>\n"}. Returns the reward column names. Modifies rows in place.
    """
    from r1kit.rewards import resolve_reward

    params = params or {}
    specs = [resolve_reward(s, params) for s in rewards]
    names = []
    for spec in specs:
        col = f"reward_{spec.name}"
        if col in names:
            raise R1kitError(f"reward {spec.name!r} is given twice; list each reward once")
        names.append(col)
        if rows:
            scores = list(spec.fn(**_reward_kwargs(rows, params.get("prefill"))))
            if len(scores) != len(rows):
                raise R1kitError(
                    f"reward {spec.name!r} returned {len(scores)} values for {len(rows)} completions"
                )
            for r, v in zip(rows, scores):
                r[col] = None if v is None else float(v)
    for r in rows:
        parts = [
            spec.weight * r[f"reward_{spec.name}"] for spec in specs if r[f"reward_{spec.name}"] is not None
        ]
        r["reward"] = float(sum(parts)) if parts else None
    for r, ok in zip(rows, correctness(rows, params.get("prefill"))):
        r["correct"] = ok
    return names


def unscorable_prompts(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How many prompts, and which, were left out for an unscorable gold (correct None): their
    prompt_index, or for rows without one their order of first appearance."""
    from r1kit.judge import exclusion_summary

    ids = []
    for n, idx in enumerate(group_by_prompt(rows).values()):
        if any(rows[i].get("correct") is None for i in idx):
            ids.append(
                rows[idx[0]].get("prompt_index", n) if rows[idx[0]].get("prompt_index") is not None else n
            )
    return exclusion_summary(ids)


def group_by_prompt(rows: Sequence[dict[str, Any]]) -> dict[Any, list[int]]:
    """Row indices per prompt: by `prompt_index` when rows have it, else by the prompt itself."""
    from r1kit.rewards._text import prompt_key

    groups: dict[Any, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        key = r["prompt_index"] if r.get("prompt_index") is not None else prompt_key(r["prompt"])
        groups[key].append(i)
    return groups


def _by_length(rows: Sequence[dict[str, Any]], idx: Sequence[int]) -> list[int]:
    # ties in length go to the earlier sample, so the choice is deterministic
    return sorted(idx, key=lambda i: (rows[i]["num_tokens"], rows[i].get("sample_index") or 0, i))


def select(rows: Sequence[dict[str, Any]], eligible: Sequence[bool], policy: str) -> list[bool]:
    """Which rows to keep under a keep policy, among the `eligible` ones (passed every filter).

    all-correct (R1 §2.3.3): every correct eligible sample. shortest-correct (Kimi §2.4,
    shortest rejection sampling): per prompt the correct eligible sample with the fewest tokens.
    first-correct: per prompt the correct eligible sample with the lowest sample_index.
    all: every eligible sample, right or wrong (for building DPO pairs later).
    """
    if policy not in KEEP_POLICIES:
        raise R1kitError(f"unknown keep policy {policy!r}; choose one of {', '.join(KEEP_POLICIES)}")
    if policy == "all":
        return list(eligible)
    good = [bool(e) and r.get("correct") is True for r, e in zip(rows, eligible)]
    if policy == "all-correct":
        return good
    keep = [False] * len(rows)
    for idx in group_by_prompt(rows).values():
        candidates = [i for i in idx if good[i]]
        if not candidates:
            continue
        if policy == "shortest-correct":
            best = _by_length(rows, candidates)[0]
        else:
            best = min(candidates, key=lambda i: (rows[i].get("sample_index") or 0, i))
        keep[best] = True
    return keep


def pass_rates(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per prompt: num_correct / k over all its samples (None when the gold is unparseable).

    Kimi k1.5 uses the SFT model's pass rate as the difficulty signal for curriculum and
    prioritized sampling (r1kit.rl.samplers reads the `pass_rate` column).
    """
    out = []
    for idx in group_by_prompt(rows).values():
        first = rows[idx[0]]
        flags = [rows[i].get("correct") for i in idx]
        scorable = all(f is not None for f in flags)
        num_correct = sum(1 for f in flags if f is True)
        record = {
            "prompt_index": first.get("prompt_index"),
            "prompt": first["prompt"],
            "question": first.get("question"),
            "answer": first.get("answer"),
            "pass_rate": num_correct / len(idx) if scorable else None,
            "num_correct": num_correct if scorable else None,
            "k": len(idx),
        }
        if "difficulty" in first:
            record["difficulty"] = first["difficulty"]
        out.append(record)
    return out


def build_pairs(
    rows: Sequence[dict[str, Any]],
    *,
    length_ratio: float = 1.5,
    max_pairs_per_prompt: int = 0,
    wrong_longer_only: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Kimi long2short DPO pairs (k1.5 §2.4): per prompt, chosen = the shortest correct sample;
    rejected = every wrong sample, and every correct sample longer than length_ratio x the
    chosen's tokens. wrong_longer_only keeps only wrong samples longer than the chosen (the
    paper's "wrong longer responses"). Samples with correct=None and prompts without a correct
    sample are skipped; the returned stats count them. max_pairs_per_prompt > 0 keeps the first
    that many rejected samples per prompt (in sample order).
    """
    if length_ratio < 1.0:
        raise R1kitError(
            f"--length-ratio ({length_ratio}) must be >= 1: a rejected answer is longer than the chosen"
        )
    stats = {
        "prompts": 0,
        "prompts_with_pairs": 0,
        "skipped_no_correct": 0,
        "skipped_no_rejected": 0,
        "skipped_unscorable": 0,
        "pairs": 0,
        "pairs_wrong": 0,
        "pairs_long": 0,
    }
    pairs: list[dict[str, Any]] = []
    for idx in group_by_prompt(rows).values():
        stats["prompts"] += 1
        if any(rows[i].get("correct") is None for i in idx):
            stats["skipped_unscorable"] += 1
            continue
        correct = _by_length(rows, [i for i in idx if rows[i]["correct"]])
        if not correct:
            stats["skipped_no_correct"] += 1
            continue
        chosen = rows[correct[0]]
        limit = length_ratio * chosen["num_tokens"]
        rejected = []
        for i in sorted(idx, key=lambda i: (rows[i].get("sample_index") or 0, i)):
            r = rows[i]
            if not r["correct"] and (not wrong_longer_only or r["num_tokens"] > chosen["num_tokens"]):
                rejected.append((r, "wrong"))
            elif r["correct"] and r["num_tokens"] > limit:
                rejected.append((r, "long"))
        if max_pairs_per_prompt > 0:
            rejected = rejected[:max_pairs_per_prompt]
        if not rejected:
            stats["skipped_no_rejected"] += 1
            continue
        stats["prompts_with_pairs"] += 1
        for r, reason in rejected:
            pairs.append(
                {
                    "prompt": chosen["prompt"],
                    "chosen": chosen["completion"],
                    "rejected": r["completion"],
                    "chosen_tokens": int(chosen["num_tokens"]),
                    "rejected_tokens": int(r["num_tokens"]),
                    "reason": reason,
                }
            )
            stats["pairs"] += 1
            stats[f"pairs_{reason}"] += 1
    return pairs, stats


def records_to_dataset(records: Sequence[dict[str, Any]]):
    """A datasets.Dataset from dicts whose keys may differ (missing values become None)."""
    from datasets import Dataset

    keys = list(dict.fromkeys(k for r in records for k in r))
    return Dataset.from_dict({k: [r.get(k) for r in records] for k in keys})
