"""The reward registry: names on the command line -> reward functions, weights and columns.

A spec is "name", "name=weight", or a dotted path to your own function with trl's reward
signature: "pkg.mod:func", "pkg.mod.func", either with "=weight". Entries are "module:attr"
strings imported only when resolved, so listing or checking rewards imports nothing heavy and the
code rewards can live in their own module.

Parameters for factory rewards come from one dict the stage builds from its flags; each reward
takes the keys it knows and ignores the rest:

| name           | parameters (default)                                           | columns |
|----------------|----------------------------------------------------------------|---------|
| accuracy       | extract ("auto"), prefill ("")                                 | answer (task optional) |
| format         | prefill (""): text the chat template puts after the prompt     | - |
| think_format   | prefill ("")                                                   | - |
| tag_count      | prefill ("")                                                   | - |
| language       | lang (None: the `lang` column), window (5)                     | lang, unless lang is given |
| length         | warmup_steps (0), correctness ("accuracy"), group_size (None)  | answer (correct with correctness="column") |
| overlong       | max_len, cache_len (required, tokens)                          | - |
| repetition     | ngram (3), max_penalty (1.0)                                   | - |
| code           | prefill ("")                                                   | tests |
| code_pass_rate | (none)                                                         | tests |
| reward_model   | checkpoint (required), batch_size (8), device (None)           | - |
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from r1kit.errors import R1kitError
from r1kit.lookup import check_name, import_object, lookup
from r1kit.rewards.guard import guard, timeout_from


@dataclass(frozen=True)
class RewardEntry:
    target: str  # "module:attr"
    factory: bool = False  # attr builds the reward from parameters
    columns: frozenset[str] = field(default_factory=frozenset)
    required: tuple[str, ...] = ()  # parameters without a default
    help: str = ""


@dataclass(frozen=True)
class RewardSpec:
    name: str
    fn: Callable
    weight: float = 1.0


_M = "r1kit.rewards."
REWARDS: dict[str, RewardEntry] = {
    "accuracy": RewardEntry(
        _M + "accuracy:make_accuracy_reward",
        True,
        frozenset({"answer"}),
        help="1 if the final answer matches the gold (math-verify / numbers / choice)",
    ),
    "format": RewardEntry(
        _M + "format:format_reward",
        columns=frozenset(),
        help="1 if the completion follows the R1-Zero <think>/<answer> template",
    ),
    "think_format": RewardEntry(
        _M + "format:think_format_reward", help="1 for <think>...</think> followed by a non-empty answer"
    ),
    "tag_count": RewardEntry(_M + "format:tag_count_reward", help="0.25 per template tag used exactly once"),
    "language": RewardEntry(
        _M + "language:make_language_reward",
        True,
        frozenset({"lang"}),
        help="share of chain-of-thought words in the target language (R1)",
    ),
    "length": RewardEntry(
        _M + "length:make_length_reward",
        True,
        frozenset({"answer"}),
        help="Kimi k1.5 length reward over the samples of one prompt",
    ),
    "overlong": RewardEntry(
        _M + "overlong:make_overlong_reward",
        True,
        required=("max_len", "cache_len"),
        help="DAPO soft overlong punishment",
    ),
    "repetition": RewardEntry(
        _M + "repetition:make_repetition_reward", True, help="-max_penalty * share of repeated word n-grams"
    ),
    "code": RewardEntry(
        _M + "accuracy:make_code_reward",
        True,
        frozenset({"tests"}),
        help="1 if the code after the reasoning passes all its tests (sandboxed; asks the judge)",
    ),
    "code_pass_rate": RewardEntry(
        _M + "code:code_pass_rate",
        columns=frozenset({"tests"}),
        help="share of the tests the code passes (sandboxed)",
    ),
    "reward_model": RewardEntry(
        _M + "reward_model:make_reward_model_reward",
        True,
        required=("checkpoint",),
        help="score of a sequence-classification reward model",
    ),
}
_PREFILL_REWARDS = {"format", "think_format", "tag_count"}


def _split_spec(spec: str) -> tuple[str, float]:
    name, sep, weight_text = spec.strip().partition("=")
    name = name.strip()
    if not name:
        raise R1kitError(f"empty reward spec {spec!r}; write NAME or NAME=WEIGHT, e.g. accuracy=1")
    if not sep:
        return name, 1.0
    try:
        weight = float(weight_text)
    except ValueError:
        raise R1kitError(
            f"reward weight in {spec!r} is not a number; write NAME=WEIGHT, e.g. format=0.5"
        ) from None
    if not math.isfinite(weight):
        raise R1kitError(f"reward weight in {spec!r} must be finite")
    return name, weight


def _build(name: str, entry: RewardEntry, params: dict) -> Callable:
    obj = import_object(entry.target, "reward")
    if entry.factory:
        missing = [p for p in entry.required if params.get(p) is None]
        if missing:
            raise R1kitError(
                f"reward {name!r} needs parameter(s) {', '.join(missing)}, which this stage did not "
                f"provide; use it from a stage that sets them or pass them in the reward parameters"
            )
        accepted = inspect.signature(obj).parameters
        return obj(**{k: v for k, v in params.items() if k in accepted and v is not None})
    if name in _PREFILL_REWARDS and params.get("prefill"):
        prefill = params["prefill"]

        def with_prefill(prompts=None, completions=(), completion_ids=None, **kwargs):
            kwargs.setdefault("prefill", prefill)
            return obj(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)

        with_prefill.__name__ = obj.__name__
        return with_prefill
    return obj


def resolve_reward(spec: str, params: dict | None = None) -> RewardSpec:
    """A reward spec ("name", "name=weight", "pkg.mod:func=0.5") -> RewardSpec(name, fn, weight).

    Every reward comes back under `r1kit.rewards.guard.guard`: an exception (other than R1kitError),
    an overrun of `params["reward_timeout_s"]` (default: $R1KIT_REWARD_TIMEOUT, else 600 s) or a
    malformed return value gives None for the batch, one warning and a count, not the end of the run.
    """
    name, weight = _split_spec(spec)
    params = params or {}
    timeout_s = timeout_from(params)
    if name in REWARDS:
        return RewardSpec(name, guard(_build(name, REWARDS[name], params), name, timeout_s), weight)
    fn = lookup(REWARDS, name, "reward", dotted=True)  # a user's function; an unknown name raises
    if not callable(fn):
        raise R1kitError(f"reward {name!r} is not callable")
    label = getattr(fn, "__name__", name)
    return RewardSpec(label, guard(fn, label, timeout_s), weight)


def check_specs(specs: list[str]) -> None:
    """R1kitError unless `specs` (as on the command line) name at least one reward, each a known name
    or a dotted path; nothing is imported."""
    if not specs:
        raise R1kitError("--reward needs at least one reward (e.g. --reward accuracy)")
    for spec in specs:
        check_name(_split_spec(spec)[0], REWARDS, "reward", dotted=True)


def required_columns(name: str, params: dict | None = None) -> set[str]:
    """Dataset columns a reward reads, so a stage can check the data before loading a model."""
    name = _split_spec(name)[0]
    params = params or {}
    if name not in REWARDS:
        check_name(name, REWARDS, "reward", dotted=True)
        return set()  # a user's reward: its columns are its own business
    columns = set(REWARDS[name].columns)
    if name == "language" and params.get("lang"):
        columns.discard("lang")
    if name == "length" and params.get("correctness") == "column":
        columns = {"correct"}
    return columns
