"""Kimi k1.5 sampling strategies for GRPO prompts: curriculum and prioritized sampling.

trl's GRPOTrainer draws prompts with `RepeatSampler`, whose contract both samplers here keep,
so they drop into `_get_train_sampler` unchanged:

- prompts are drawn in chunks of `batch_size` distinct indices (one generation batch);
- each chunk is yielded `repeat_count` times in a row (trl reuses the first copy's rollouts
  for `num_iterations × steps_per_generation` optimisation steps and ignores the rest);
- within a chunk each index is yielded `mini_repeat_count` (= G) times consecutively, so the G
  completions of a prompt sit next to each other and form one group;
- an epoch has `len(data) // batch_size` chunks; `len()` counts every yielded index.

Kimi k1.5 (sec. 2.3.4): "curriculum sampling" starts with easy problems (difficulty from the
SFT model's pass rate), "prioritized sampling" draws problem i with probability ∝ 1 − s_i,
s_i its success rate so far, so unsolved problems get more rollouts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

CURRICULUM_SCHEDULES = ("sorted", "window")


class _ChunkSampler(Sampler):
    """Shared RepeatSampler contract; subclasses choose the distinct indices of each chunk.

    The layout arguments after the first (mini_repeat_count, batch_size, repeat_count, seed) are
    declared here only: the subclasses pass them through (`*layout`, `**layout_kw`) and take
    their own options by keyword.
    """

    def __init__(
        self,
        num_samples: int,
        mini_repeat_count: int,
        batch_size: int = 1,
        repeat_count: int = 1,
        seed: int | None = 0,
    ):
        if batch_size > num_samples:
            raise ValueError(f"batch_size ({batch_size}) is larger than the dataset ({num_samples} prompts)")
        self.num_samples = num_samples
        self.mini_repeat_count = mini_repeat_count
        self.batch_size = batch_size
        self.repeat_count = repeat_count
        self.generator = torch.Generator()
        self.generator.manual_seed(0 if seed is None else seed)

    @property
    def num_chunks(self) -> int:
        return self.num_samples // self.batch_size

    def chunks(self) -> Iterator[list[int]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        for chunk in self.chunks():
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return self.num_chunks * self.batch_size * self.mini_repeat_count * self.repeat_count


def difficulty_from_columns(
    difficulty: Sequence[float] | None = None, pass_rate: Sequence[float] | None = None
) -> list[float]:
    """One difficulty per prompt: the difficulty column as is, or 1 − pass rate (Kimi: a prompt
    the SFT model solves in 9 of 10 samples is easy). Missing values count as hardest."""
    if difficulty is not None:
        return [math.inf if d is None else float(d) for d in difficulty]
    if pass_rate is not None:
        return [math.inf if p is None else 1.0 - float(p) for p in pass_rate]
    raise ValueError("curriculum sampling needs a difficulty or a pass_rate column")


class CurriculumSampler(_ChunkSampler):
    """Easy-to-hard prompt order (Kimi k1.5 curriculum sampling).

    Schedules, applied to every epoch:
    - "sorted": all prompts in ascending difficulty; prompts of equal difficulty (a bucket) are
      shuffled, so a column with few distinct levels still gives varied batches. An epoch holds
      N // batch_size full chunks (trl's RepeatSampler contract), so N mod batch_size prompts sit
      out each epoch: drawn at random per epoch, so that every prompt, the hardest included, is
      trained on (cutting the sorted list's tail would leave the hardest out of every epoch).
    - "window": chunk c of n draws `batch_size` prompts uniformly from the easiest
      ceil(w_c × N) prompts (N = dataset size), w_c = start + (1 − start) × c / (n − 1), a window
      that widens linearly from the easiest `start` share to the whole set. Easy prompts keep
      appearing late in training, so they are not forgotten.
    """

    def __init__(
        self,
        difficulties: Sequence[float],
        *layout: Any,
        schedule: str = "sorted",
        start: float = 0.25,
        **layout_kw: Any,
    ):
        super().__init__(len(difficulties), *layout, **layout_kw)
        if schedule not in CURRICULUM_SCHEDULES:
            raise ValueError(f"schedule must be one of {CURRICULUM_SCHEDULES}, got {schedule!r}")
        if not 0.0 < start <= 1.0:
            raise ValueError(f"start must be in (0, 1], got {start}")
        self.difficulties = [float(d) for d in difficulties]
        self.schedule = schedule
        self.start = start

    def ordered(self) -> list[int]:
        """Indices by ascending difficulty, shuffled within each difficulty bucket."""
        noise = torch.rand(self.num_samples, generator=self.generator).tolist()
        return sorted(range(self.num_samples), key=lambda i: (self.difficulties[i], noise[i]))

    def window_size(self, chunk: int) -> int:
        n = self.num_chunks
        frac = 1.0 if n <= 1 else self.start + (1.0 - self.start) * chunk / (n - 1)
        return min(self.num_samples, max(self.batch_size, math.ceil(frac * self.num_samples)))

    def chunks(self) -> Iterator[list[int]]:
        order = self.ordered()
        if self.schedule == "sorted":
            spare = self.num_samples - self.num_chunks * self.batch_size
            if spare:
                out = set(torch.randperm(self.num_samples, generator=self.generator)[:spare].tolist())
                order = [i for i in order if i not in out]
            for c in range(self.num_chunks):
                yield order[c * self.batch_size : (c + 1) * self.batch_size]
            return
        for c in range(self.num_chunks):
            pool = order[: self.window_size(c)]
            pick = torch.randperm(len(pool), generator=self.generator)[: self.batch_size].tolist()
            yield [pool[i] for i in pick]


class PrioritizedSampler(_ChunkSampler):
    """Draw prompts with probability ∝ max(1 − success_rate, floor) (Kimi k1.5 prioritized sampling).

    Success rates start at `initial` (0 = every prompt equally likely) and are updated with
    `update(indices, successes)` from the rollouts as training goes: the rate of prompt i is the
    running mean of the success of all its completions so far. `floor` keeps solved prompts at
    a small probability, so a prompt the policy later forgets can come back. Each chunk draws
    `batch_size` distinct prompts without replacement; chunks are drawn lazily, so an update
    changes the next chunk the data loader asks for (with accelerate's one-batch prefetch, the
    one after that).
    """

    def __init__(
        self,
        num_samples: int,
        *layout: Any,
        floor: float = 0.05,
        initial: Sequence[float] | None = None,
        **layout_kw: Any,
    ):
        super().__init__(num_samples, *layout, **layout_kw)
        if not 0.0 < floor <= 1.0:
            raise ValueError(f"floor must be in (0, 1], got {floor}")
        self.floor = floor
        self.successes = torch.zeros(num_samples, dtype=torch.float64)
        self.counts = torch.zeros(num_samples, dtype=torch.float64)
        self.initial = torch.zeros(num_samples, dtype=torch.float64)
        if initial is not None:
            self.initial = torch.tensor(
                [0.0 if v is None else float(v) for v in initial], dtype=torch.float64
            )

    def success_rates(self) -> torch.Tensor:
        seen = self.counts > 0
        return torch.where(seen, self.successes / self.counts.clamp(min=1.0), self.initial)

    def probabilities(self) -> torch.Tensor:
        weights = (1.0 - self.success_rates()).clamp(min=self.floor)
        return weights / weights.sum()

    def update(self, indices: Sequence[int], successes: Sequence[float]) -> None:
        """Record one outcome per completion (success in [0, 1]; NaN outcomes are skipped)."""
        for i, s in zip(indices, successes, strict=True):
            s = float(s)
            if math.isnan(s):
                continue
            self.successes[int(i)] += min(max(s, 0.0), 1.0)
            self.counts[int(i)] += 1.0

    def chunks(self) -> Iterator[list[int]]:
        for _ in range(self.num_chunks):
            yield torch.multinomial(
                self.probabilities(), self.batch_size, replacement=False, generator=self.generator
            ).tolist()

    def state_dict(self) -> dict[str, list[float]]:
        return {"successes": self.successes.tolist(), "counts": self.counts.tolist()}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self.successes = torch.tensor(state["successes"], dtype=torch.float64)
        self.counts = torch.tensor(state["counts"], dtype=torch.float64)
