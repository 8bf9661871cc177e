"""Kimi k1.5 partial rollouts (§2.6.2) and repeat detection, for `r1kit grpo`.

Why: with long chains of thought a synchronous RL step waits for its longest rollout. Kimi gives
each iteration a fixed output-token budget T: a trajectory still unfinished after T new tokens is
saved in a replay buffer and continued in the next iteration from where it stopped (prompt and
earlier segments prefilled, then at most T more tokens), so a long trajectory neither holds up the
batch nor is ever generated twice. Only the newest segment comes from the current policy.

How r1kit fits this into trl's fixed batch (`PartialRollouts`, driven by R1GRPOTrainer):

- Groups. GRPO's advantage compares the G completions of a prompt, so a group is scored and
  trained in the iteration its last member finishes; until then it waits in the buffer.
- Slots. A rollout batch holds P groups. Buffered groups take the first slots (oldest first) and
  fresh prompts from the sampler fill the rest; the fresh groups that do not fit are skipped this
  time (`partial/skipped_groups`; the sampler serves them again in a later epoch). Slots of groups
  that are not complete carry a one-token placeholder completion: no reward, out of the loss and
  of its normalisers, the way DAPO's dynamic-sampling "mask" drops a group (r1kit/rl/dynamic.py).
  Holding the whole rollout shape fixed keeps every trl batch rule (micro-batches, accumulation,
  `--updates-per-rollout` minibatches) as it is, at the price of slots that train nothing while
  their group is incomplete.
- Loss. For each member of a completed group the loss covers exactly the segment generated in
  this iteration; earlier segments are context (the loss mask is 0 there, trl's `tool_mask`), so
  their log-probabilities are never needed. A member that finished in an earlier iteration has no
  current segment: its reward counts in the group's mean and std, it adds no loss term (training
  its last segment would need the log-probabilities of the older policy that sampled it, which
  r1kit does not keep). `partial/stale_rows` counts them. With `--partial-loss trajectory` the
  loss covers every token of every member instead: earlier segments and earlier finishers are
  trained as if the current policy had sampled them (π_old := π_θ, no importance correction),
  off-policy by at most the iterations they waited; this keeps the reasoning tokens of split
  trajectories in the loss when the budget is below typical lengths (bench/RESULTS.md measures
  both on the CPU learning check).
- Ends. A trajectory ends with EOS ("eos"), at --max-completion-length ("length"), short of its
  allowance without EOS ("stop": a stop condition such as stop strings), when its last N tokens
  repeat ("repeat", `--repeat-stop N`), or after `--rollout-max-age A` continuations ("age"). The
  last three are scored as they stand, like a completion cut at the length limit: the judge finds
  no answer in reasoning left open, and `--mask-truncated` leaves them out of the loss.

Repeat detection (Kimi: "repeat detection with early stop/penalty"): a trajectory stops at the
first token at which its last N tokens repeat a pattern of at most N/2 tokens (two or more
periods: "the the the", "a b c a b c"); `repeat_stop_reward` gives such a completion -1 (weighted
by `--repeat-penalty`), so repeating costs reward as well as tokens.

Counting: every generated token belongs to exactly one segment (`Trajectory.segments` sums to
the trajectory's length); `partial/new_tokens` counts each token once, in the iteration that
generated it.

Checkpoints: `state_dict()` is the buffer (every waiting group's rows, tokens, segments and ends)
and the iteration counter, as JSON; R1GRPOTrainer writes one file per process into each
checkpoint folder and `--resume` loads it, so a resumed run continues the buffered trajectories
from their saved tokens, as the uninterrupted run would have. Dataset rows travel in it as they
are: JSON values only (tuples become lists); `check_row` refuses anything else up front.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ENDS = ("eos", "length", "stop", "repeat", "age")
LOSS_SPANS = ("segment", "trajectory")
STATE_VERSION = 1


@dataclass
class Trajectory:
    """One rollout across iterations: its dataset row, all tokens so far, and its segments as
    (iteration, number of tokens) pairs; `end` is "" while it runs, else one of ENDS."""

    row: dict
    tokens: list[int] = field(default_factory=list)
    segments: list[tuple[int, int]] = field(default_factory=list)
    end: str = ""

    @property
    def finished(self) -> bool:
        return bool(self.end)

    def span(self, iteration: int) -> tuple[int, int] | None:
        """[start, stop) offsets in `tokens` of the segment generated in `iteration`, else None."""
        if self.segments and self.segments[-1][0] == iteration and self.segments[-1][1] > 0:
            return len(self.tokens) - self.segments[-1][1], len(self.tokens)
        return None


@dataclass
class Group:
    """The G trajectories of one prompt; scored and trained together once all are finished."""

    members: list[Trajectory]
    born: int

    @property
    def complete(self) -> bool:
        return all(m.finished for m in self.members)


class PartialRollouts:
    """The replay buffer and the per-iteration bookkeeping of partial rollouts.

    One iteration: `plan(rows)` (the sampler's fresh rows in, the batch's rows out), then
    `generate(prompt_ids, sample)` (continue / start every unfinished trajectory with at most
    `budget` new tokens; returns what trl sees as each row's completion), then `spans()` /
    `scored()` for the loss mask and the rewards. `budget` >= `max_length` gives plain one-shot
    rollouts (used when only repeat detection is on).
    """

    def __init__(
        self,
        group_size: int,
        budget: int,
        max_length: int,
        *,
        eos_ids: Sequence[int],
        max_age: int = 0,
        repeat_window: int = 0,
        loss: str = "segment",
    ):
        if group_size < 1 or budget < 1 or max_length < 1 or not eos_ids:
            raise ValueError("partial rollouts need group_size, budget, max_length >= 1 and an EOS id")
        self.group_size, self.budget, self.max_length = group_size, budget, max_length
        if loss not in LOSS_SPANS:
            raise ValueError(f"loss must be one of {LOSS_SPANS}, got {loss!r}")
        self.max_age, self.repeat_window, self.loss = max_age, repeat_window, loss
        self.eos = tuple(int(e) for e in eos_ids)
        self._eos_set = frozenset(self.eos)  # models may declare many EOS ids
        self.iteration = 0
        self.buffer: list[Group] = []
        self.groups: list[Group] = []
        self.stats: dict[str, float] = {}

    def rows(self) -> list[Trajectory]:
        return [t for g in self.groups for t in g.members]

    def state_dict(self) -> dict:
        """What the next iteration needs, as JSON values: the iteration counter (segments are
        tagged with it) and the buffered groups. The current batch (`groups`) is not kept: its
        complete groups are trained in this iteration and its incomplete ones are in the buffer."""
        return {
            "version": STATE_VERSION,
            "iteration": self.iteration,
            "group_size": self.group_size,
            "buffer": [
                {
                    "born": g.born,
                    "members": [
                        {
                            "row": check_row(t.row),
                            "tokens": list(t.tokens),
                            "segments": [list(s) for s in t.segments],
                            "end": t.end,
                        }
                        for t in g.members
                    ],
                }
                for g in self.buffer
            ],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`'s buffer and iteration; ValueError when it cannot continue under
        this run's settings (another G, or a trajectory already at --max-completion-length)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"partial-rollout state version {state.get('version')!r}, expected {STATE_VERSION}"
            )
        buffer = []
        for g in state["buffer"]:
            members = [
                Trajectory(
                    dict(m["row"]),
                    [int(x) for x in m["tokens"]],
                    [(int(i), int(n)) for i, n in m["segments"]],
                    str(m["end"]),
                )
                for m in g["members"]
            ]
            if len(members) != self.group_size:
                raise ValueError(
                    f"a buffered group has {len(members)} trajectories, this run's G is {self.group_size}"
                )
            for t in members:
                if t.end not in ("", *ENDS) or sum(n for _, n in t.segments) != len(t.tokens):
                    raise ValueError(
                        f"a buffered trajectory is inconsistent (end {t.end!r}, {len(t.tokens)} tokens, "
                        f"segments {t.segments})"
                    )
                if not t.finished and len(t.tokens) >= self.max_length:
                    raise ValueError(
                        f"a buffered trajectory already has {len(t.tokens)} tokens, not below this "
                        f"run's max length {self.max_length}"
                    )
            buffer.append(Group(members, int(g["born"])))
        self.iteration, self.buffer, self.groups, self.stats = int(state["iteration"]), buffer, [], {}

    def plan(self, rows: Sequence[dict]) -> list[dict]:
        """This iteration's batch: buffered groups first (oldest first), then the fresh groups of
        `rows` (G consecutive rows per prompt, as trl's sampler lays them out) until it is full."""
        G = self.group_size
        if len(rows) % G:
            raise ValueError(f"partial rollouts need whole groups: {len(rows)} rows for G={G}")
        n = len(rows) // G
        carried, self.buffer = self.buffer[:n], self.buffer[n:]
        self.iteration += 1
        fresh = [
            Group([Trajectory(dict(r)) for r in rows[k * G : (k + 1) * G]], self.iteration)
            for k in range(n - len(carried))
        ]
        self.groups = carried + fresh
        self.stats = {
            "continued": float(sum(not t.finished for g in carried for t in g.members)),
            "skipped_groups": float(len(carried)),
        }
        return [t.row for t in self.rows()]

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sample: Callable[[list[list[int]], int], Sequence[Sequence[int]]],
    ) -> list[list[int]]:
        """Give every unfinished trajectory of the batch at most `budget` new tokens.

        sample(prefixes, max_new_tokens) returns one token list per prefix (prompt + the
        trajectory's tokens so far). Returns, per row, the completion trl scores and trains: the
        whole trajectory for rows of groups complete now, a one-token placeholder (EOS) otherwise.
        """
        rows = self.rows()
        if len(prompt_ids) != len(rows):
            raise RuntimeError(f"partial rollouts planned {len(rows)} rows but got {len(prompt_ids)} prompts")
        todo = [i for i, t in enumerate(rows) if not t.finished]
        allow = [min(self.budget, self.max_length - len(rows[i].tokens)) for i in todo]
        new = (
            sample([list(map(int, prompt_ids[i])) + rows[i].tokens for i in todo], max(allow)) if todo else []
        )
        if len(new) != len(todo):
            raise RuntimeError(f"the sampler returned {len(new)} completions for {len(todo)} prefixes")
        ends: Counter = Counter()
        tokens = 0
        for i, room, seg in zip(todo, allow, new):
            tokens += self._extend(rows[i], [int(x) for x in seg], room)
            ends[rows[i].end or "running"] += 1
        done = [g for g in self.groups if g.complete]
        self.buffer.extend(g for g in self.groups if not g.complete)
        trained = [t for g in done for t in g.members]
        self.stats.update(
            {
                "new_tokens": float(tokens),
                "trained_groups": float(len(done)),
                "buffered_groups": float(len(self.groups) - len(done)),
                "trained_rows": float(len(trained)),
                "stale_rows": float(sum(t.span(self.iteration) is None for t in trained)),
                **{f"ended_{k}": float(ends[k]) for k in ENDS},
            }
        )
        return [list(t.tokens) if g.complete else [self.eos[0]] for g in self.groups for t in g.members]

    def _extend(self, t: Trajectory, seg: list[int], room: int) -> int:
        """Append one segment to `t` and decide whether it has ended; returns its token count."""
        seg = seg[:room]
        end = ""
        eos_at = next((k for k, x in enumerate(seg) if x in self._eos_set), None)
        if eos_at is not None:
            seg, end = seg[: eos_at + 1], "eos"
        if self.repeat_window:
            # a window holding the (single) EOS never repeats, so a hit always lies before it
            stop = first_repeat_end(t.tokens + seg, self.repeat_window, start=len(t.tokens))
            if stop is not None:
                seg, end = seg[: stop - len(t.tokens)], "repeat"
        if not end:
            if len(t.tokens) + len(seg) >= self.max_length:
                end = "length"
            elif len(seg) < room:
                end = "stop"
            elif self.max_age and len(t.segments) >= self.max_age:
                end = "age"  # continued max_age times already: this was its last segment
        t.tokens.extend(seg)
        t.segments.append((self.iteration, len(seg)))
        t.end = end
        return len(seg)

    def spans(self) -> list[tuple[int, int] | None]:
        """Per row of the batch: the [start, stop) token span of its completion the loss covers,
        else None. "segment": this iteration's segment of each member of a completed group;
        "trajectory": every token of each member of a completed group."""
        if self.loss == "trajectory":
            return [
                (0, len(t.tokens)) if g.complete and t.tokens else None
                for g in self.groups
                for t in g.members
            ]
        return [t.span(self.iteration) if g.complete else None for g in self.groups for t in g.members]

    def scored(self) -> list[bool]:
        """Per row: True when its group is complete (its reward is computed and used)."""
        return [g.complete for g in self.groups for _ in g.members]

    def lengths(self) -> list[tuple[int, bool]]:
        """(length, ended with EOS) of every trajectory trained this iteration."""
        return [(len(t.tokens), t.end == "eos") for g in self.groups if g.complete for t in g.members]


def check_row(row: dict) -> dict:
    """`row` as JSON values (tuples become lists), so a buffered trajectory's dataset row can be
    saved with a checkpoint and read back equal; ValueError naming the column for anything else
    (bytes, images, numpy values, non-string keys), which JSON would refuse or silently change."""

    def plain(value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise ValueError(f"column {where!r} holds a mapping with a non-string key {bad[0]!r}")
            return {k: plain(v, f"{where}.{k}") for k, v in value.items()}
        raise ValueError(f"column {where!r} holds a {type(value).__name__}, not a JSON value")

    return {str(k): plain(v, str(k)) for k, v in row.items()}


def merge_states(states: Sequence[dict], processes: int) -> list[dict]:
    """Deal the buffers of a checkpoint written by len(states) processes out to `processes` ones:
    all buffered groups, oldest first (then by writing rank), go round-robin, so each process
    continues its share oldest first. A group carries its own rows, so any process can continue it;
    every process counts iterations in step, so the counters agree."""
    iterations = {int(s["iteration"]) for s in states}
    if len(iterations) != 1:
        raise ValueError(
            f"the processes' partial-rollout states disagree on the iteration: {sorted(iterations)}"
        )
    groups = sorted(
        ((g["born"], rank, k, g) for rank, s in enumerate(states) for k, g in enumerate(s["buffer"])),
        key=lambda x: x[:3],
    )
    base = {k: v for k, v in states[0].items() if k != "buffer"}
    return [{**base, "buffer": [g for *_, g in groups[p::processes]]} for p in range(processes)]


def first_repeat_end(tokens: Sequence[int], window: int, start: int = 0) -> int | None:
    """The smallest e with max(window, start + 1) <= e <= len(tokens) such that the window
    tokens[e - window:e] repeats a pattern of p <= window // 2 tokens (tokens[j] == tokens[j + p]
    throughout it), or None. Vectorised per period p: the window ending at e needs the
    window - p matches j in [e - window, e - p), counted with a cumulative sum."""
    import torch

    n, lo = len(tokens), max(window, start + 1)
    if window < 2 or n < lo:
        return None
    t = torch.as_tensor(list(tokens), dtype=torch.long)
    ends = torch.arange(lo, n + 1)
    best = None
    for p in range(1, window // 2 + 1):
        match = torch.cat([torch.zeros(1, dtype=torch.long), (t[p:] == t[:-p]).long().cumsum(0)])
        ok = (match[ends - p] - match[ends - window]) == window - p
        hit = ok.nonzero()
        if hit.numel():
            e = int(ends[hit[0, 0]])
            best = e if best is None else min(best, e)
            ends = ends[ends < best]  # later periods only matter if they hit earlier
            if ends.numel() == 0:
                break
    return best


def repeats_at_end(tokens: Sequence[int], window: int) -> bool:
    """True when the last `window` tokens repeat a pattern of at most window // 2 tokens."""
    return len(tokens) >= window >= 2 and first_repeat_end(tokens, window, start=len(tokens) - 1) == len(
        tokens
    )


def repeat_stop_reward(window: int):
    """The repeat-detection penalty as a reward (trl's signature): -1 for a completion whose last
    `window` tokens repeat (what `--repeat-stop` stops), 0 otherwise; weighted by --repeat-penalty."""

    def repeat_stop(prompts=None, completions=(), completion_ids=None, **kwargs):
        return [-1.0 if repeats_at_end(ids, window) else 0.0 for ids in completion_ids]

    return repeat_stop
