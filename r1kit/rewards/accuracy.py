"""Accuracy reward (DeepSeek-R1 rule-based accuracy reward): 1.0 when the final answer matches
the gold, else 0.0.

The gold comes from the `answer` column, the kind of check from the optional `task` column:
  math / numeric / choice  -> r1kit.answers.check_answer with that kind ("math" uses "auto": a
                              numeric gold is compared as a number, anything else by math-verify)
  code                     -> None: the code reward scores those rows
  anything else / missing  -> "auto"
Rows whose gold cannot be parsed get None (trl leaves them out of this reward), never 1.0.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from r1kit.answers import EXTRACT_MODES, check_answer, math_workers
from r1kit.errors import R1kitError
from r1kit.rewards._text import column, completion_text

_TASK_KIND = {"math": "auto", "numeric": "numeric", "choice": "choice", "mcq": "choice",
              "multiple_choice": "choice"}


def task_kind(task) -> str | None:
    """The check_answer kind for a task name; None for code (scored elsewhere)."""
    if task is None:
        return "auto"
    task = str(task).lower()
    if task == "code":
        return None
    return _TASK_KIND.get(task, "auto")


def correctness(completions, kwargs: dict, extract: str = "auto") -> list[bool | None]:
    """check_answer for every completion of a trl batch (gold from `answer`, kind from `task`).

    With several math-verify helper processes (R1KIT_MATH_WORKERS > 1) the checks run from that
    many threads, so the helpers work in parallel; each thread mostly waits on its helper.
    """
    n = len(completions)
    golds = column(kwargs, "answer", n, required=True)
    tasks = column(kwargs, "task", n)

    def one(i: int) -> bool | None:
        kind = task_kind(tasks[i])
        return None if kind is None else check_answer(completion_text(completions[i]), golds[i], kind, extract)

    workers = math_workers()
    if workers > 1 and n > 1:
        with ThreadPoolExecutor(min(workers, n)) as pool:
            return list(pool.map(one, range(n)))
    return [one(i) for i in range(n)]


def make_accuracy_reward(extract: str = "auto"):
    """An accuracy reward that reads the final answer with the given extract_answer mode."""
    if extract not in EXTRACT_MODES:
        raise R1kitError(f"unknown answer extraction mode {extract!r}; choose one of {', '.join(EXTRACT_MODES)}")

    def accuracy(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float | None]:
        return [None if ok is None else float(ok) for ok in correctness(completions, kwargs, extract)]

    accuracy.__name__ = "accuracy" if extract == "auto" else f"accuracy_{extract}"
    return accuracy


accuracy_reward = make_accuracy_reward()
