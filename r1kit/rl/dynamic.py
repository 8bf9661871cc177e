"""DAPO dynamic sampling: groups whose rewards are all equal teach nothing.

When every one of a prompt's G completions gets the same reward (all correct or all wrong),
each advantage r_i − mean(r) is 0, so the group adds no policy gradient, only noise in the
normaliser (and, with β > 0, a KL pull). DAPO drops such groups and samples more prompts
until the batch is full of groups with signal. r1kit offers:

- "mask": keep the batch, drop the zero-variance groups from the loss and from its normaliser,
  and report their fraction (`zero_std_fraction` in metrics.jsonl);
- "refill": generate extra groups (a bounded number of tries) and replace the zero-variance
  groups with groups that have signal; whatever is still missing after the tries is masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def zero_variance_groups(rewards: torch.Tensor, group_size: int, atol: float = 1e-6) -> torch.Tensor:
    """(num_groups,) bool: True where all scored rewards of the group are equal (NaN ignored;
    a group with fewer than two scored rewards also counts as zero-variance)."""
    grouped = rewards.view(-1, group_size)
    scored = ~torch.isnan(grouped)
    hi = torch.where(scored, grouped, torch.full_like(grouped, -torch.inf)).max(dim=1).values
    lo = torch.where(scored, grouped, torch.full_like(grouped, torch.inf)).min(dim=1).values
    few = scored.sum(dim=1) < 2
    return few | ((hi - lo) <= atol)


def keep_mask(rewards: torch.Tensor, group_size: int, atol: float = 1e-6) -> torch.Tensor:
    """(B,) bool per completion: True when its group has reward variance (keeps a gradient)."""
    return (~zero_variance_groups(rewards, group_size, atol)).repeat_interleave(group_size)


def choose_groups(has_signal: Sequence[bool], target: int) -> list[int]:
    """Pick `target` groups out of candidates (in generation order) for a refilled batch.

    Groups with signal come first, in order, up to `target`; if there are too few, the batch is
    topped up with zero-variance groups (the trainer masks those), so the batch size never
    changes. Returns candidate indices in ascending order.
    """
    if target > len(has_signal):
        raise ValueError(f"need {target} groups but only {len(has_signal)} candidates")
    good = [i for i, ok in enumerate(has_signal) if ok][:target]
    if len(good) < target:
        bad = [i for i, ok in enumerate(has_signal) if not ok][: target - len(good)]
        good += bad
    return sorted(good)
