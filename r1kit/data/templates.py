"""Prompt templates: how a question becomes the model's prompt.

- ``r1-zero``: the DeepSeek-R1-Zero training template (R1 paper, Table 1), verbatim, with the
  question where the paper writes "prompt". A plain string: base models get it without a chat
  template, as in R1-Zero.
- ``chat-think``: one user message, the question followed by R1's evaluation instruction
  "Please reason step by step, and put your final answer within \\boxed{}."; R1 forces the reply
  to open with "<think>\\n", so generation should prefill ``TEMPLATE_PREFILL["chat-think"]``.
- ``chat``: one user message holding just the question (the tiny model, whose traces already
  carry <think>/<answer>).
- ``raw``: the question as is.

Few-shot prompts for BASE models (not a registered template, since they need the examples):
`render_few_shot(examples, question)`, what `r1kit evaluate --few-shot N` builds, writes each
solved example as "Question: <q>\nAnswer: <worked solution> The answer is <n>.\n\n" and ends
with "Question: <question>\nAnswer:". A base model then keeps writing "Question: ..." after its
answer, so generate with the stop string "Question:" (`FEW_SHOT_STOP`). GSM8K solutions become
examples through `few_shot_example`: calculator annotations <<48/2=24>> are removed and the
lines joined into one paragraph.

A system prompt becomes a system message for chat templates and a leading paragraph for the
plain-string ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from r1kit.errors import R1kitError
from r1kit.lookup import lookup

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {question}. Assistant:"
)
R1_EVAL_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

Prompt = str | list  # a plain string, or chat messages [{"role": ..., "content": ...}]


FEW_SHOT_STOP = "Question:"
_CALC_RE = re.compile(r"<<[^<>]*>>")


def few_shot_example(question: str, solution: str, answer: str | None = None) -> dict[str, str]:
    """A solved example for `render_few_shot`. `solution` may be a GSM8K answer ("steps\n#### 72"):
    the final answer is then read after the last "####" (commas removed) unless `answer` is given;
    calculator annotations <<...>> are stripped and the steps joined into one line."""
    steps = solution
    if "####" in solution:
        steps, final = solution.rsplit("####", 1)
        answer = answer if answer is not None else final.strip().replace(",", "")
    if answer is None:
        raise R1kitError(f"a few-shot example needs a final answer; none given for {question[:60]!r}")
    steps = " ".join(line.strip() for line in _CALC_RE.sub("", steps).splitlines() if line.strip())
    return {"question": question.strip(), "solution": steps, "answer": str(answer).strip()}


def few_shot_examples(rows, n: int, exclude=(), question_field: str | None = None) -> list[dict[str, str]]:
    """The first `n` solved examples among raw dataset rows, skipping questions in `exclude` (the
    evaluated ones). The question is `question_field` (default: question, problem or prompt); the
    worked solution a GSM8K "answer" with its "#### N" line, else a "solution" column with the
    final "answer" column, else the answer alone. R1kitError when fewer than `n` rows qualify."""
    skip = {q.strip() for q in exclude}
    out: list[dict[str, str]] = []
    for row in rows:
        if len(out) >= n:
            break
        q_col = question_field or next((c for c in ("question", "problem", "prompt") if c in row), None)
        if q_col is None or not isinstance(row.get(q_col), str):
            raise R1kitError(
                f"few-shot rows need a question column (question, problem or prompt); got {sorted(row)}"
            )
        if row[q_col].strip() in skip:
            continue
        answer, solution = row.get("answer"), row.get("solution")
        if isinstance(answer, str) and "####" in answer:
            out.append(few_shot_example(row[q_col], answer))
        elif answer is not None:
            out.append(
                few_shot_example(row[q_col], solution if isinstance(solution, str) else "", str(answer))
            )
        else:
            raise R1kitError(f"few-shot rows need an 'answer' column; got {sorted(row)}")
    if len(out) < n:
        raise R1kitError(f"asked for {n} few-shot examples but only {len(out)} usable rows were found")
    return out


def render_few_shot(examples: list[dict[str, str]], question: str, system_prompt: str | None = None) -> str:
    """The few-shot prompt: one "Question: ...\nAnswer: <solution> The answer is N.\n\n" block per
    example (keys question, solution (may be empty), answer; see `few_shot_example`), then
    "Question: {question}\nAnswer:". The model's reply starts right after "Answer:"."""
    blocks = []
    for ex in examples:
        solution = ex.get("solution", "").strip()
        reply = f"{solution} The answer is {ex['answer']}." if solution else f"The answer is {ex['answer']}."
        blocks.append(f"Question: {ex['question'].strip()}\nAnswer: {reply}\n\n")
    return _with_system_text("".join(blocks) + f"Question: {question.strip()}\nAnswer:", system_prompt)


def _with_system_text(text: str, system_prompt: str | None) -> str:
    return f"{system_prompt}\n\n{text}" if system_prompt else text


def _messages(content: str, system_prompt: str | None) -> list[dict[str, str]]:
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, {"role": "user", "content": content}]


def r1_zero(question: str, system_prompt: str | None = None) -> str:
    # str.replace rather than str.format: questions are full of LaTeX braces.
    return _with_system_text(R1_ZERO_TEMPLATE.replace("{question}", question), system_prompt)


def chat_think(question: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    return _messages(f"{question}\n{R1_EVAL_INSTRUCTION}", system_prompt)


def chat(question: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    return _messages(question, system_prompt)


def raw(question: str, system_prompt: str | None = None) -> str:
    return _with_system_text(question, system_prompt)


TEMPLATES: dict[str, Callable[..., Prompt]] = {
    "r1-zero": r1_zero,
    "chat-think": chat_think,
    "chat": chat,
    "raw": raw,
}

# Text that generation must append after the rendered prompt (and that belongs to the reply):
# R1 evaluates with the reply forced to start with "<think>\n".
TEMPLATE_PREFILL: dict[str, str] = {"chat-think": "<think>\n"}


def get_template(name: str) -> Callable[..., Prompt]:
    return lookup(TEMPLATES, name, "template", dotted=True)


def render_prompt(template: str, question: str, system_prompt: str | None = None) -> Prompt:
    """The prompt for `question` under `template` (a TEMPLATES name or a dotted path to a
    function (question, system_prompt) -> str | messages)."""
    return get_template(template)(question, system_prompt)


def template_prefill(template: str) -> str:
    """What generation should prefill for this template ("" for most)."""
    return TEMPLATE_PREFILL.get(template, "")


def is_chat_template(template: str) -> bool:
    """Whether the template renders chat messages (needs the tokenizer's chat template)."""
    return isinstance(render_prompt(template, "x"), list)
