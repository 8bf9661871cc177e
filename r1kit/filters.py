"""The R1 rejection-sampling filters: which sampled reasoning traces are unfit for SFT data.

DeepSeek-R1 §2.3.3 (rejection sampling and SFT): after keeping only correct samples, "we have
filtered out chain-of-thought with mixed languages, long paragraphs, and code blocks"; the cold
start data (§2.3.1) was also filtered for repetition. Each filter here is one predicate with its
own threshold, applied in the order of FILTER_ORDER; `first_failing_filter` names the first one a
sample fails, so the stage can report how many samples each filter removed.

- language:    R1's language-consistency reward (share of chain-of-thought words in the target
               language) below `min_language_share`. Only for rows whose target language is known
               (a `lang` column or `--lang`); other rows pass.
- paragraph:   a paragraph (text between blank lines) longer than `max_paragraph` characters or
               words (`paragraph_unit`).
- code_block:  a ``` fence in a sample of a non-code task (maths answers with code blocks).
- repetition:  r1kit's repetition reward (n-gram repetition penalty, <= 0) below
               `min_repetition_reward`.

The paper gives no thresholds; r1kit's defaults are deliberately loose so that they drop only
clear cases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from r1kit.errors import R1kitError

FILTER_ORDER = ("language", "paragraph", "code_block", "repetition")
PARAGRAPH_UNITS = ("chars", "words")

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)


@dataclass
class FilterSettings:
    """Which filters run and their thresholds (see the module docstring)."""

    language: bool = True
    min_language_share: float = 0.9
    lang: str = ""  # target language for rows without a `lang` column value
    paragraph: bool = True
    max_paragraph: int = 4000
    paragraph_unit: str = "chars"
    code_block: bool = True
    repetition: bool = True
    min_repetition_reward: float = -0.5

    def validate(self) -> None:
        if not 0.0 <= self.min_language_share <= 1.0:
            raise R1kitError(f"--min-language-share ({self.min_language_share}) must be between 0 and 1")
        if self.max_paragraph < 1:
            raise R1kitError(f"--max-paragraph ({self.max_paragraph}) must be >= 1")
        if self.paragraph_unit not in PARAGRAPH_UNITS:
            raise R1kitError(
                f"--paragraph-unit {self.paragraph_unit!r} is not one of {', '.join(PARAGRAPH_UNITS)}"
            )
        if self.min_repetition_reward > 0:
            raise R1kitError(
                f"--min-repetition-reward ({self.min_repetition_reward}) must be <= 0: the repetition reward is a "
                "penalty in [-1, 0]"
            )

    def enabled(self) -> list[str]:
        return [name for name in FILTER_ORDER if getattr(self, name)]


def longest_paragraph(text: str, unit: str = "chars") -> int:
    """Length of the longest blank-line-separated paragraph, in characters or whitespace words."""
    paragraphs = _BLANK_LINE.split(text or "")
    if unit == "words":
        return max((len(p.split()) for p in paragraphs), default=0)
    return max((len(p.strip()) for p in paragraphs), default=0)


def has_code_block(text: str) -> bool:
    """Whether the text holds a Markdown code fence (a line starting with ```)."""
    return bool(_FENCE.search(text or ""))


def language_shares(completions: Sequence[str], langs: Sequence[str | None]) -> list[float | None]:
    """R1's language-consistency share per completion; None where the target language is unknown."""
    from r1kit.rewards import resolve_reward

    idx = [i for i, lang in enumerate(langs) if lang]
    out: list[float | None] = [None] * len(completions)
    if idx:
        fn = resolve_reward("language").fn
        scores = fn(completions=[completions[i] for i in idx], lang=[langs[i] for i in idx])
        for i, score in zip(idx, scores):
            out[i] = score
    return out


def repetition_scores(completions: Sequence[str]) -> list[float | None]:
    """r1kit's repetition reward per completion (0 = no repeated n-grams, down to -1)."""
    from r1kit.rewards import resolve_reward

    return list(resolve_reward("repetition").fn(completions=list(completions)))


def filter_failures(
    completions: Sequence[str], tasks: Sequence[Any], langs: Sequence[str | None], settings: FilterSettings
) -> dict[str, list[bool]]:
    """For each enabled filter, per completion: True when the completion FAILS it (is dropped)."""
    n = len(completions)
    target = [lang or settings.lang or None for lang in langs]
    fails: dict[str, list[bool]] = {}
    if settings.language:
        shares = language_shares(completions, target)
        fails["language"] = [s is not None and s < settings.min_language_share for s in shares]
    if settings.paragraph:
        fails["paragraph"] = [
            longest_paragraph(c, settings.paragraph_unit) > settings.max_paragraph for c in completions
        ]
    if settings.code_block:
        fails["code_block"] = [
            str(t).lower() != "code" and has_code_block(c) for c, t in zip(completions, tasks)
        ]
    if settings.repetition:
        scores = repetition_scores(completions)
        fails["repetition"] = [s is not None and s < settings.min_repetition_reward for s in scores]
    for name, flags in fails.items():
        assert len(flags) == n, name
    return fails


def first_failing_filter(fails: dict[str, list[bool]], i: int) -> str | None:
    """The first filter (in FILTER_ORDER) that sample i fails, or None when it passes all."""
    for name in FILTER_ORDER:
        if name in fails and fails[name][i]:
            return name
    return None
