"""Kimi k1.5 length reward (long2short RL and "length penalty" in the Kimi paper, section 2.3.3).

For the k samples of one problem, with len_i in tokens:
    lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len)
    reward_i = lambda_i if sample i is correct else min(0, lambda_i)
and every reward is 0 when max_len == min_len. Shorter correct answers gain up to +0.5, longer
ones lose up to -0.5, wrong answers are never rewarded for being short.

Groups. trl's GRPOTrainer draws prompts with RepeatSampler(mini_repeat_count=num_generations), so
the batch given to a reward function holds each prompt num_generations times in a row
(trl/trainer/utils.py RepeatSampler; grpo_trainer.py _get_train_sampler / _calculate_rewards).
This reward does not rely on the order: it groups rows by (prompt, gold answer), or, when
`group_size` is given, by consecutive chunks of that size (falling back, with a warning, to
grouping by prompt when the batch is not a multiple of group_size). Under multi-GPU training trl computes
rewards per process on that process's slice of the generation batch; a group is complete there
only when each process's slice holds whole groups (per-process generation batch a multiple of
num_generations), otherwise min/max come from the part of the group the process sees.

Lengths are tokens from completion_ids (trl passes them), else a `num_tokens` column, else -
documented fallback, e.g. for quick experiments without a tokenizer - characters; lambda only uses
ratios of length differences, so the unit matters only through how well it tracks tokens.

Correctness comes from the accuracy check of each completion ("accuracy", gold in `answer`), or
from a boolean `correct` column ("column", as in sample datasets). Rows whose correctness is None
(unparseable gold, code tasks) get None. Kimi warms up without this reward: while
trainer_state.global_step < warmup_steps every reward is 0.0.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

from r1kit.errors import R1kitError
from r1kit.rewards._text import column, prompt_key, token_lengths

CORRECTNESS_SOURCES = ("accuracy", "column")


def kimi_length_rewards(lengths: list[int], correct: list[bool]) -> list[float]:
    """The Kimi length reward for the samples of one problem (formula above)."""
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0] * len(lengths)
    out = []
    for length, ok in zip(lengths, correct):
        lam = 0.5 - (length - lo) / (hi - lo)
        out.append(lam if ok else min(0.0, lam))
    return out


def _groups(prompts, golds, n: int, group_size: int | None) -> list[list[int]]:
    if group_size and n % group_size == 0:
        return [list(range(i, i + group_size)) for i in range(0, n, group_size)]
    if group_size:
        # a process's slice that cuts groups (multi-GPU, see above): chunks would mix prompts
        warnings.warn(
            f"length reward: batch of {n} completions is not a multiple of group_size {group_size}; "
            f"grouping by prompt instead",
            stacklevel=3,
        )
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i in range(n):
        groups[(prompt_key(prompts[i]), str(golds[i]))].append(i)
    return list(groups.values())


def make_length_reward(
    warmup_steps: int = 0, correctness: str = "accuracy", group_size: int | None = None, extract: str = "auto"
):
    """Kimi length reward over the groups of a trl batch (see the module docstring)."""
    if correctness not in CORRECTNESS_SOURCES:
        raise R1kitError(
            f"length reward: correctness must be one of {', '.join(CORRECTNESS_SOURCES)}, got {correctness!r}"
        )
    if warmup_steps < 0 or (group_size is not None and group_size < 1):
        raise R1kitError(
            f"length reward: warmup_steps must be >= 0 and group_size >= 1, got "
            f"{warmup_steps} and {group_size}"
        )

    def length(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float | None]:
        n = len(completions)
        state = kwargs.get("trainer_state")
        if state is not None and getattr(state, "global_step", 0) < warmup_steps:
            return [0.0] * n
        if correctness == "accuracy":
            from r1kit.rewards.accuracy import correctness as check_all

            correct = check_all(completions, kwargs, extract, prompts=prompts)
        else:
            correct = [None if c is None else bool(c) for c in column(kwargs, "correct", n, required=True)]
        lengths, _ = token_lengths(completions, completion_ids, kwargs)
        prompts = list(prompts) if prompts is not None else [""] * n
        golds = column(kwargs, "answer", n)
        out: list[float | None] = [None] * n
        for idx in _groups(prompts, golds, n, group_size):
            scored = [i for i in idx if correct[i] is not None]
            if not scored:
                continue
            values = kimi_length_rewards([lengths[i] for i in scored], [correct[i] for i in scored])
            for i, v in zip(scored, values):
                out[i] = v
        return out

    length.__name__ = "length"
    return length
