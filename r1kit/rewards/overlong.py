"""DAPO soft overlong punishment (DAPO, "Overlong Reward Shaping"), lengths in tokens:

    R = 0                                 if L <= L_max - L_cache
    R = ((L_max - L_cache) - L) / L_cache if L_max - L_cache < L <= L_max
    R = -1                                if L > L_max

The penalty ramps linearly from 0 to -1 over the last L_cache tokens before L_max. DAPO used
L_max 20480, L_cache 4096; set L_max to the generation limit (max_completion_length).
"""

from __future__ import annotations

from r1kit.errors import R1kitError
from r1kit.rewards._text import token_lengths


def overlong_penalty(length: int, max_len: int, cache_len: int) -> float:
    """The DAPO soft overlong punishment of one completion of `length` tokens."""
    start = max_len - cache_len
    if length <= start:
        return 0.0
    if length <= max_len:
        return (start - length) / cache_len
    return -1.0


def make_overlong_reward(max_len: int, cache_len: int):
    """DAPO soft overlong punishment with L_max = max_len and L_cache = cache_len (tokens)."""
    if not (isinstance(max_len, int) and isinstance(cache_len, int)) or not 0 < cache_len <= max_len:
        raise R1kitError(
            f"overlong reward needs integers 0 < cache_len <= max_len, got max_len={max_len!r}, "
            f"cache_len={cache_len!r}"
        )

    def overlong(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
        lengths, _ = token_lengths(completions, completion_ids, kwargs, allow_chars=False)
        return [overlong_penalty(n, max_len, cache_len) for n in lengths]

    overlong.__name__ = "overlong"
    return overlong
