"""N-gram repetition penalty (not from R1 or Kimi; Kimi only mentions detecting repeats).

    rate    = 1 - unique_ngrams / total_ngrams        over the completion's word n-grams
    penalty = -max_penalty * rate

Words are lowercased runs of letters/digits, with each Han, kana or Thai character a word of its
own (those scripts do not separate words). A text with fewer than `ngram` words scores 0. A text
that repeats one phrase over and over tends to -max_penalty; ordinary prose of a few hundred words
stays near 0 (a few percent of its trigrams repeat).
"""

from __future__ import annotations

import re

from r1kit.errors import R1kitError
from r1kit.rewards._text import completion_text

_TOKEN_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f]|[^\W_]+")


def repetition_rate(text: str, ngram: int = 3) -> float:
    """Share of the text's word n-grams that repeat an earlier one (0 for short texts)."""
    words = _TOKEN_RE.findall(text.lower())
    total = len(words) - ngram + 1
    if total <= 0:
        return 0.0
    unique = len({tuple(words[i : i + ngram]) for i in range(total)})
    return 1.0 - unique / total


def make_repetition_reward(ngram: int = 3, max_penalty: float = 1.0):
    """Repetition penalty: -max_penalty * (1 - unique/total) over word n-grams."""
    if ngram < 1 or max_penalty < 0:
        raise R1kitError(
            f"repetition reward needs ngram >= 1 and max_penalty >= 0, got {ngram} and {max_penalty}"
        )

    def repetition(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
        return [0.0 - max_penalty * repetition_rate(completion_text(c), ngram) for c in completions]

    repetition.__name__ = "repetition"
    return repetition
