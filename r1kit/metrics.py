"""Evaluation metrics of DeepSeek-R1: pass@1, pass@k and cons@k.

- pass@1 (R1's definition, PAPERS.md "Eval"): sample k answers per problem at
  temperature 0.6 and report the mean correctness of those k samples,
  pass@1 = (1/k) sum_i p_i. It is an average of accuracy, not "any of k right".
  Its standard error (`pass_at_1_stderr`) is taken over prompts: with p_j the mean
  correctness of prompt j's k samples and n prompts, SE = s / sqrt(n), where
  s^2 = sum_j (p_j - mean p)^2 / (n - 1). The prompts are the sampled units (a benchmark
  is a sample of problems), and each p_j already averages its k samples, so the noise of
  sampling k answers is in it too (the per-question mean and its standard error, as in
  Miller 2024, "Adding Error Bars to Evals", arXiv:2411.00640).
- pass@k: the probability that at least one of k samples is correct, estimated
  without bias from n >= k samples of which c are correct (Chen et al. 2021,
  "Evaluating Large Language Models Trained on Code", eq. 1):
      pass@k = 1 - C(n - c, k) / C(n, k)
  averaged over problems.
- cons@k: majority vote (self-consistency) over the k extracted answers;
  the problem counts as solved when the most frequent answer is correct.
  Samples without an answer (nothing extracted, or an empty key) do not vote.

`summarize_samples` turns per-sample evaluation rows into all of the above plus
length, truncation and format statistics; `r1kit evaluate` reports its output.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from r1kit.errors import R1kitError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021, eq. 1).

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which equals the ratio of binomials but never
    forms the huge numbers C(n, k).
    """
    if not 0 <= c <= n:
        raise R1kitError(f"pass@k needs 0 <= correct ({c}) <= samples ({n})")
    if k < 1:
        raise R1kitError(f"pass@k needs k >= 1 (got {k})")
    if k > n:
        raise R1kitError(f"pass@{k} needs at least {k} samples per problem (got {n})")
    if n - c < k:  # every draw of k samples contains a correct one
        return 1.0
    fail = 1.0
    for i in range(n - c + 1, n + 1):
        fail *= 1.0 - k / i
    return 1.0 - fail


def pass_at_1_mean(correct_flags: Iterable[bool]) -> float:
    """R1's pass@1: the mean correctness over the k samples of one problem."""
    flags = [bool(f) for f in correct_flags]
    if not flags:
        raise R1kitError("pass@1 of a problem needs at least one sample")
    return sum(flags) / len(flags)


def pass_at_1_stderr(per_prompt: Sequence[float]) -> float | None:
    """Standard error of pass@1 over prompts: sample standard deviation of the per-prompt means
    p_j (each the mean correctness of that prompt's k samples) over sqrt(n prompts):
    SE = sqrt(sum_j (p_j - mean p)^2 / (n - 1)) / sqrt(n). None for fewer than 2 prompts."""
    n = len(per_prompt)
    if n < 2:
        return None
    mean = sum(per_prompt) / n
    return math.sqrt(sum((p - mean) ** 2 for p in per_prompt) / (n - 1) / n)


def majority_index(answers: Sequence[str | None], key: Callable[[str], str] | None = None) -> int | None:
    """Index of the first sample whose answer wins the vote, or None when no sample has an answer.

    Answers are grouped by `key` (default `r1kit.answers.answer_key`, so "0.5" and "1/2" are one
    vote). A sample without an answer does not vote: None, blank text, or an answer whose key is
    empty (two junk answers must not outvote a real one). Ties go to the answer that appeared first.
    """
    if key is None:
        from r1kit.answers import answer_key as key
    votes: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        if answer is None or not str(answer).strip():
            continue
        k = key(answer)
        if k is None or not str(k).strip():
            continue
        votes[k] = votes.get(k, 0) + 1
        first.setdefault(k, i)
    if not votes:
        return None
    # Among equal counts, -first prefers the group seen earliest.
    winner = max(votes, key=lambda k: (votes[k], -first[k]))
    return first[winner]


def cons_at_k(
    answers: Sequence[str | None], gold_correct: Sequence[bool], key: Callable[[str], str] | None = None
) -> bool:
    """cons@k for one problem: is the majority-voted answer correct?

    answers[i] is sample i's extracted answer (None = nothing extracted), gold_correct[i] whether
    sample i is correct. The voted group's correctness is that of its first sample; ties between
    groups go to the group that appeared first (see `majority_index`). No answers at all: False.
    """
    if len(answers) != len(gold_correct):
        raise R1kitError(f"cons@k got {len(answers)} answers but {len(gold_correct)} correctness flags")
    idx = majority_index(answers, key)
    return bool(gold_correct[idx]) if idx is not None else False


def summarize_samples(
    rows: Sequence[dict[str, Any]], pass_k: Sequence[int] = (1,), key: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """Aggregate per-sample rows of one model into its metrics.

    Each row has prompt_index, correct (True/False, or None when the gold answer could not be
    parsed: such problems are excluded from every rate, counted in `excluded_unparseable_gold` and
    `unscorable_gold`, and their prompt_index listed in `unscorable_gold_ids`),
    extracted, num_tokens, truncated and optionally format_ok and task. Returns accuracy (= pass@1,
    mean over the k samples, averaged over problems) and its standard error over prompts
    (pass@1_stderr, `pass_at_1_stderr`; None for fewer than 2 prompts), pass@k for each k
    (unbiased estimator averaged over problems), cons@k when k > 1 (over problems whose task is not "code": programs are not
    voted on), mean/median tokens, truncation and format rates (over all samples).
    """
    by_prompt: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_prompt[row["prompt_index"]].append(row)
    scored = {p: rs for p, rs in by_prompt.items() if all(r["correct"] is not None for r in rs)}
    k = max((len(rs) for rs in by_prompt.values()), default=0)
    excluded = sorted((p for p in by_prompt if p not in scored), key=lambda p: (str(type(p)), p))
    metrics: dict[str, Any] = {
        "num_prompts": len(scored),
        "num_samples": k,
        "excluded_unparseable_gold": len(excluded),
        "unscorable_gold": len(excluded),  # the name every stage reports it under (r1kit.judge)
        "unscorable_gold_ids": excluded,
    }
    if scored:
        per_prompt = [pass_at_1_mean(r["correct"] for r in rs) for rs in scored.values()]
        metrics["accuracy"] = metrics["pass@1"] = sum(per_prompt) / len(per_prompt)
        metrics["pass@1_stderr"] = pass_at_1_stderr(per_prompt)
        for kk in pass_k:
            if kk == 1:
                continue
            values = [pass_at_k(len(rs), sum(bool(r["correct"]) for r in rs), kk) for rs in scored.values()]
            metrics[f"pass@{kk}"] = sum(values) / len(values)
        # Programs are not voted on: cons@k covers the prompts with a final answer (task != "code").
        voted = [rs for rs in scored.values() if rs[0].get("task") != "code"]
        if k > 1 and voted:
            votes = [
                cons_at_k([r["extracted"] for r in rs], [bool(r["correct"]) for r in rs], key) for rs in voted
            ]
            metrics[f"cons@{k}"] = sum(votes) / len(votes)
    else:
        metrics["accuracy"] = metrics["pass@1"] = metrics["pass@1_stderr"] = None
    tokens = [r["num_tokens"] for r in rows]
    metrics["mean_tokens"] = statistics.fmean(tokens) if tokens else None
    metrics["median_tokens"] = statistics.median(tokens) if tokens else None
    metrics["truncation_rate"] = sum(bool(r["truncated"]) for r in rows) / len(rows) if rows else None
    fmt = [r["format_ok"] for r in rows if r.get("format_ok") is not None]
    metrics["format_rate"] = sum(bool(f) for f in fmt) / len(fmt) if fmt else None
    return metrics
