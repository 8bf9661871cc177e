"""Accuracy rewards (DeepSeek-R1's rule-based accuracy reward): 1.0 when the judge says the
completion is correct, else 0.0; None (trl leaves the row out) when the gold cannot be scored.

Both rewards ask r1kit.judge, the one place that decides correctness, so a completion rewarded
here is counted correct by `r1kit evaluate` and by the sampling stages. The judge reads the
template's prefill + the completion: the `prefill` column (the grpo stage adds one when the
template or the tokenizer's chat template pre-fills "<think>"), else the `prefill` parameter,
else an open "<think>" at the end of a prompt string. Reasoning cut off before its </think> is
never rewarded.

* accuracy  rows whose task is not "code": the gold in `answer`, compared as the judge's rules
            say (numbers as numbers, LaTeX by math-verify, letters as choices); code rows get None
            (the code reward scores them).
* code      rows with `tests`: the code after the reasoning runs against them in the sandbox
            (HumanEval's prompt comes from the `question` column, else the prompt); rows without
            tests get None. Sandbox limits are keyword arguments (timeout_s, cpu_s, memory_mb, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from r1kit.answers import EXTRACT_MODES
from r1kit.errors import R1kitError
from r1kit.rewards._text import column

_SANDBOX_LIMITS = ("timeout_s", "cpu_s", "memory_mb", "max_procs", "max_output_bytes")


def task_kind(task) -> str | None:
    """The judge's kind for a task name; None for code (scored by the code reward)."""
    from r1kit.judge import task_kind as kind

    found = kind(task)
    return None if found == "code" else found


def _rows(prompts, completions, kwargs: dict, prefill: str | None) -> list[dict[str, Any]]:
    n = len(completions)
    prompts = list(prompts) if prompts is not None else [None] * n
    cols = {name: column(kwargs, name, n) for name in ("task", "prefill", "question", "tests", "entry_point")}
    golds = column(kwargs, "answer", n)
    rows = []
    for i in range(n):
        own = cols["prefill"][i]
        rows.append(
            {
                "completion": completions[i],
                "prompt": prompts[i],
                "answer": golds[i],
                "prefill": own if isinstance(own, str) and own else prefill,
                **{k: cols[k][i] for k in ("task", "question", "tests", "entry_point")},
            }
        )
    return rows


def correctness(
    completions,
    kwargs: dict,
    extract: str = "auto",
    prompts: Sequence | None = None,
    prefill: str | None = None,
) -> list[bool | None]:
    """The judge's correct flag for every non-code completion of a trl batch (None for code rows
    and unscorable golds). Used by the accuracy and length rewards."""
    from r1kit.judge import judge_many

    n = len(completions)
    column(kwargs, "answer", n, required=True)
    rows = _rows(prompts, completions, kwargs, prefill)
    todo = [i for i, r in enumerate(rows) if task_kind(r["task"]) is not None]
    out: list[bool | None] = [None] * n
    for i, v in zip(todo, judge_many([rows[i] for i in todo], extract=extract)):
        out[i] = v.correct
    return out


def make_accuracy_reward(extract: str = "auto", prefill: str | None = None):
    """An accuracy reward that reads the final answer with the given extraction mode; `prefill`
    is the stage's default for rows without a `prefill` column."""
    if extract not in EXTRACT_MODES:
        raise R1kitError(
            f"unknown answer extraction mode {extract!r}; choose one of {', '.join(EXTRACT_MODES)}"
        )

    def accuracy(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float | None]:
        flags = correctness(completions, kwargs, extract, prompts=prompts, prefill=prefill)
        return [None if ok is None else float(ok) for ok in flags]

    accuracy.__name__ = "accuracy" if extract == "auto" else f"accuracy_{extract}"
    return accuracy


accuracy_reward = make_accuracy_reward()


def make_code_reward(prefill: str | None = None):
    """The code reward, judged: 1.0 when the code after the reasoning passes all of the row's tests."""

    def code(
        prompts=None, completions=(), completion_ids=None, *, tests=None, max_workers=None, **kwargs
    ) -> list[float | None]:
        from r1kit.judge import has_tests, judge_many

        n = len(completions)
        column({"tests": tests}, "tests", n, required=True)
        limits = {k: kwargs.pop(k) for k in _SANDBOX_LIMITS if k in kwargs}
        rows = _rows(prompts, completions, {**kwargs, "tests": tests}, prefill)
        todo = [i for i, r in enumerate(rows) if has_tests(r["tests"])]
        out: list[float | None] = [None] * n
        for r in rows:
            r["task"] = "code"
        verdicts = judge_many([rows[i] for i in todo], limits=limits, max_workers=max_workers)
        for i, v in zip(todo, verdicts):
            out[i] = None if v.correct is None else float(v.correct)
        return out

    code.__name__ = "code"
    return code


code_reward = make_code_reward()
