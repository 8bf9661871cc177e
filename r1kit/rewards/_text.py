"""Helpers shared by the reward functions: trl batches to plain text, lengths, columns.

trl calls a reward as ``f(prompts=, completions=, completion_ids=, **columns, trainer_state=, ...)``.
Prompts and completions are plain strings, or chat messages (a list of ``{"role", "content"}``
dicts) when the dataset is conversational. These helpers turn either shape into text so that
every reward handles both the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from r1kit.errors import R1kitError

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# Keys under which chat parsers (transformers' parse_response, vLLM reasoning parsers) put the
# reasoning that they cut out of "content"; we glue it back so that format and language rewards
# still see the whole thing.
_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return _content_text(message)
    text = _content_text(message.get("content"))
    for key in _REASONING_KEYS:
        reasoning = message.get(key)
        if reasoning:
            return f"{THINK_OPEN}{_content_text(reasoning)}{THINK_CLOSE}{text}"
    return text


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; for chat messages, the assistant turns joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _message_text(completion)
    if isinstance(completion, Sequence):
        turns = [
            m for m in completion if not isinstance(m, dict) or m.get("role", "assistant") == "assistant"
        ]
        return "".join(_message_text(m) for m in turns)
    return "" if completion is None else str(completion)


def prompt_tail(prompt: Any) -> str:
    """The end of a prompt as the model saw it: the string, or the content of the last message."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict):
        return _message_text(prompt)
    if isinstance(prompt, Sequence) and prompt:
        return _message_text(prompt[-1])
    return ""


def prompt_key(prompt: Any) -> str:
    """A string that is equal for equal prompts (strings or message lists); used to find groups."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False, default=str)


def column(kwargs: dict, name: str, n: int, default: Any = None, required: bool = False) -> list:
    """A dataset column from trl's keyword arguments as a list of n values.

    A scalar (e.g. a value a stage passes for every row) is repeated; a missing column gives the
    default, or an R1kitError when it is required.
    """
    value = kwargs.get(name)
    if value is None:
        if required:
            raise R1kitError(
                f"this reward needs a '{name}' column in the dataset; map one with --{name}-field "
                f"or choose a task adapter that provides it"
            )
        return [default] * n
    if isinstance(value, (str, bytes, int, float)) or not isinstance(value, Sequence):
        return [value] * n
    if len(value) != n:
        raise R1kitError(f"column '{name}' has {len(value)} values for {n} completions; they must match")
    return list(value)


def token_lengths(
    completions: Sequence, completion_ids: Sequence | None, kwargs: dict, allow_chars: bool = True
) -> tuple[list[int], str]:
    """Completion lengths and their unit: tokens from completion_ids, else a num_tokens column,
    else (when allowed) characters. Returns (lengths, "tokens" | "chars")."""
    if completion_ids is not None:
        return [len(ids) for ids in completion_ids], "tokens"
    num_tokens = kwargs.get("num_tokens")
    if num_tokens is not None and not isinstance(num_tokens, (int, float)):
        return [int(x) for x in num_tokens], "tokens"
    if not allow_chars:
        raise R1kitError(
            "this reward measures length in tokens but got neither completion_ids nor a num_tokens "
            "column; pass completion_ids (trl does) or add num_tokens to the dataset"
        )
    return [len(completion_text(c)) for c in completions], "chars"


def detect_think_prefill(tokenizer: Any) -> str:
    """What the tokenizer's chat template writes after the generation prompt, if it opens <think>.

    Returns e.g. "<think>\\n", or "" when the template does not pre-fill a think block (or has no
    chat template). Stages pass the result to the format rewards as ``prefill``.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        return ""
    try:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True
        )
    except Exception:  # noqa: BLE001  a template that needs extra variables: assume no prefill
        return ""
    stripped = rendered.rstrip()
    if stripped.endswith(THINK_OPEN):
        return rendered[rendered.rfind(THINK_OPEN) :]
    return ""
