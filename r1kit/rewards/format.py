"""Format rewards (DeepSeek-R1 format reward).

* format_reward       R1-Zero template: exactly one <think>...</think> followed by exactly one
                      <answer>...</answer> with a non-empty answer; only whitespace before, between
                      and after. 1.0 / 0.0.
* think_format_reward chat models: one <think>...</think> at the start, then a non-empty answer with
                      no further think tags. 1.0 / 0.0.
* tag_count_reward    partial credit: 0.25 for each of <think>, </think>, <answer>, </answer> that
                      appears exactly once (a shaping signal for very small models).

Repeated or nested tags (two think blocks, <think> inside <think>, <answer> inside the think) fail
the 1.0/0.0 checks: every tag must occur exactly once, in order. An empty think block passes.

Pre-filled <think>: when a chat template ends the generation prompt with "<think>\\n" (DeepSeek-R1
distills do) the completion lacks the opening tag. These rewards read what the judge reads
(r1kit.judge.judged_text): the `prefill` keyword (a string for all rows or a column), else an
open "<think>" at the end of the prompt's last text, before the completion (not doubled when the
completion starts with it). Stages compute `prefill` with
r1kit.rewards._text.detect_think_prefill(tokenizer) and pass it through the registry parameters.
"""

from __future__ import annotations

import re

from r1kit.rewards._text import column

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_R1_ZERO_RE = re.compile(r"\s*<think>(.*)</think>\s*<answer>(.*)</answer>\s*", re.DOTALL)
_THINK_RE = re.compile(r"\s*<think>(.*)</think>(.*)", re.DOTALL)


def _texts(prompts, completions, kwargs) -> list[str]:
    """What the judge reads (r1kit.judge.judged_text): the prefill + each completion."""
    from r1kit.judge import judged_text

    n = len(completions)
    prompts = list(prompts) if prompts is not None else [None] * n
    prefills = column(kwargs, "prefill", n)
    return [judged_text(c, p, f) for c, p, f in zip(completions, prompts, prefills)]


def r1_zero_format_ok(text: str) -> bool:
    """The R1-Zero template check on one (prefill-corrected) completion text."""
    if any(text.count(tag) != 1 for tag in _TAGS):
        return False
    m = _R1_ZERO_RE.fullmatch(text)
    return bool(m) and bool(m.group(2).strip())


def think_format_ok(text: str) -> bool:
    """The chat-model check: one think block first, then a non-empty answer."""
    if text.count("<think>") != 1 or text.count("</think>") != 1:
        return False
    m = _THINK_RE.fullmatch(text)
    return bool(m) and bool(m.group(2).strip())


def format_reward(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
    """1.0 for a completion that follows the R1-Zero <think>/<answer> template exactly, else 0.0."""
    return [float(r1_zero_format_ok(t)) for t in _texts(prompts, completions, kwargs)]


def think_format_reward(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
    """1.0 for "<think>reasoning</think> answer" (non-empty answer), else 0.0."""
    return [float(think_format_ok(t)) for t in _texts(prompts, completions, kwargs)]


def tag_count_reward(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
    """0.25 per template tag that appears exactly once (0.0 .. 1.0)."""
    return [0.25 * sum(t.count(tag) == 1 for tag in _TAGS) for t in _texts(prompts, completions, kwargs)]


format_reward.__name__ = "format"
think_format_reward.__name__ = "think_format"
tag_count_reward.__name__ = "tag_count"
