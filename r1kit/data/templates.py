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

A system prompt becomes a system message for chat templates and a leading paragraph for the
plain-string ones.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from r1kit.errors import R1kitError

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {question}. Assistant:"
)
R1_EVAL_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

Prompt = str | list  # a plain string, or chat messages [{"role": ..., "content": ...}]


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


def lookup(registry: dict[str, Any], name: str, what: str) -> Any:
    """registry[name], or the object at a dotted import path ("pkg.mod:obj" or "pkg.mod.obj").

    Unknown names raise R1kitError with a did-you-mean hint and the valid names.
    """
    if name in registry:
        return registry[name]
    if ":" in name or "." in name:
        module_name, _, attr = name.partition(":") if ":" in name else name.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise R1kitError(f"cannot import {what} {name!r}: {err}") from err
    close = difflib.get_close_matches(name, list(registry), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise R1kitError(
        f"unknown {what} {name!r}.{hint} Valid: {', '.join(registry)} (or a dotted path such as mypkg.mod:fn)"
    )


def get_template(name: str) -> Callable[..., Prompt]:
    return lookup(TEMPLATES, name, "template")


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
