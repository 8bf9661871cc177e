"""Cold-start SFT data from any worked-answer dataset (`r1kit data think`).

DeepSeek-R1's cold start (PAPERS.md, "R1 pipeline") fine-tunes the base model on a few thousand
long chains of thought in a readable, fixed format before reasoning RL, so that RL starts from a
model that already writes the format and solves some problems. Datasets with worked solutions
(GSM8K's "steps\\n#### 72") hold exactly that material; this module rewrites them into the
R1-Zero answer format that the `format` reward and the judge check:

    <think>
    Natalia sold 48/2 = 24 clips in May.
    Natalia sold 48+24 = 72 clips altogether in April and May.
    </think>
    <answer> 72 </answer>

- reasoning: the solution's steps, one per line, GSM8K calculator annotations <<48/2=24>>
  removed, blank lines dropped, everything after the last "####" removed;
- answer: the text after the last "####" (thousands commas removed), or an answer column;
  inside <answer> with a space on each side, as the R1-Zero template writes "<answer> answer here
  </answer>" (the `format` reward and the judge strip the spaces);
- the completion of the r1-zero prompt (which ends "Assistant:") starts with one space, the way
  text continues after a colon; for raw prompts (the question) with a newline; for chat, the
  assistant message is the completion as above.

Rows whose solution is empty, whose answer is missing, or whose text already holds one of the
format's tags (it would break the format) are skipped and counted.
"""

from __future__ import annotations

import re
from typing import Any

from r1kit.data.tasks import strip_number
from r1kit.errors import R1kitError

THINK_TEMPLATES = ("r1-zero", "chat", "raw")
_CALC_RE = re.compile(r"<<[^<>]*>>")
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# What separates the prompt from the completion, per template (see the module docstring).
_LEAD = {"r1-zero": " ", "raw": "\n", "chat": ""}


def split_solution(solution: str, answer: Any = None) -> tuple[str, str | None]:
    """(reasoning lines, final answer) of a worked solution; `answer` wins over a '####' line."""
    steps, final = solution, None
    if "####" in solution:
        steps, tail = solution.rsplit("####", 1)
        final = strip_number(tail) or None
    if answer is not None and str(answer).strip():
        final = (
            strip_number(answer)
            if re.fullmatch(r"\s*-?[\d,]*\.?\d+\s*", str(answer))
            else str(answer).strip()
        )
    lines = (line.strip() for line in _CALC_RE.sub("", steps).splitlines())
    return "\n".join(line for line in lines if line), final


def think_completion(reasoning: str, answer: str) -> str:
    """The R1-Zero-format reply: <think>, the reasoning, </think>, then the answer in <answer> tags."""
    return f"<think>\n{reasoning}\n</think>\n<answer> {answer} </answer>"


def think_record(question: str, solution: str, answer: Any = None, template: str = "r1-zero") -> dict | None:
    """One SFT row (question, answer, completion, prompt, task; chat: messages), or None when the row
    cannot be converted (no reasoning, no final answer, or a format tag already in its text)."""
    from r1kit.data.templates import render_prompt

    if template not in THINK_TEMPLATES:
        raise R1kitError(
            f"unknown template {template!r} for think data; choose one of {', '.join(THINK_TEMPLATES)}"
        )
    reasoning, final = split_solution(solution, answer)
    if not reasoning or not final or any(t in f"{question}{reasoning}{final}" for t in _TAGS):
        return None
    completion = think_completion(reasoning, final)
    numeric = re.fullmatch(r"-?\d+(\.\d+)?", final) is not None
    record = {"question": question, "answer": final, "task": "numeric" if numeric else "math"}
    if template == "chat":
        record["prompt"] = [{"role": "user", "content": question}]
        record["completion"] = completion
        record["messages"] = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": completion},
        ]
    else:
        record["prompt"] = render_prompt(template, question)
        record["completion"] = _LEAD[template] + completion
    return record
