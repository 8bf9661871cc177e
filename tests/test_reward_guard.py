"""The registry's guard: a reward that raises, overruns or returns junk gives None, is counted, and the
run goes on (issue 14). Rewards are called as `r1kit grpo` calls them."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import pytest
from conftest import arith_jsonl, run_cli

from r1kit.errors import R1kitError
from r1kit.rewards import guard, resolve_reward

USER_REWARDS = """
import time

def crashing(prompts=None, completions=(), completion_ids=None, **kw):
    raise ValueError("boom")

def sleepy(prompts=None, completions=(), completion_ids=None, **kw):
    time.sleep(3600)
    return [1.0] * len(completions)

def spinning(prompts=None, completions=(), completion_ids=None, **kw):
    while True:
        pass

def stubborn(prompts=None, completions=(), completion_ids=None, **kw):
    while True:
        try:
            while True:
                pass
        except Exception:
            pass

def short(prompts=None, completions=(), completion_ids=None, **kw):
    return [1.0]

def junk(prompts=None, completions=(), completion_ids=None, **kw):
    return [1.0, float("inf"), "high", float("nan")]

def needs_column(prompts=None, completions=(), completion_ids=None, **kw):
    from r1kit.errors import R1kitError
    raise R1kitError("this reward needs a 'gold' column")

def interrupted(prompts=None, completions=(), completion_ids=None, **kw):
    raise KeyboardInterrupt

async def async_crash(prompts=None, completions=(), completion_ids=None, **kw):
    raise ValueError("async boom")

async def async_sleepy(prompts=None, completions=(), completion_ids=None, **kw):
    import asyncio
    await asyncio.sleep(3600)
"""


@pytest.fixture
def user_rewards(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(USER_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_rewards", None)
    return tmp_path


def call(fn, n=4, completions_override=None, **extra):
    metrics: dict[str, list[float]] = {}
    out = fn(
        prompts=["q"] * n,
        completions=completions_override or ["c"] * n,
        completion_ids=None,
        answer=["1"] * n,
        lang=["en"] * n,
        log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
        **extra,
    )
    return out, metrics


def test_a_crashing_user_reward_gives_none_one_warning_and_a_count(user_rewards, caplog):
    fn = resolve_reward("my_rewards:crashing=0.5").fn
    before = guard.FAILURES["crashing"]
    with caplog.at_level(logging.WARNING):
        first, m1 = call(fn)
        second, m2 = call(fn)
    assert first == second == [None] * 4
    assert guard.FAILURES["crashing"] - before == 2
    warnings = [r.getMessage() for r in caplog.records if "crashing" in r.getMessage()]
    assert len(warnings) == 1 and "ValueError: boom" in warnings[0]
    assert m1 == m2 == {"rewards/crashing/failed": [1.0]}


@pytest.mark.parametrize("name", ["sleepy", "spinning"])
def test_an_overrunning_reward_is_cut_at_its_bound(user_rewards, name):
    fn = resolve_reward(f"my_rewards:{name}", {"reward_timeout_s": 1.0}).fn
    start = time.monotonic()
    out, metrics = call(fn)
    assert out == [None] * 4 and metrics == {f"rewards/{name}/failed": [1.0]}
    assert time.monotonic() - start < 4
    # the trainer goes on normally afterwards: nothing fires later in this thread
    time.sleep(1.5)
    assert sum(range(10)) == 45


def test_an_overrun_is_cut_in_a_worker_thread_too(user_rewards):
    fn = resolve_reward("my_rewards:spinning", {"reward_timeout_s": 1.0}).fn
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("out", call(fn)[0]))
    start = time.monotonic()
    worker.start()
    worker.join(10)
    assert box["out"] == [None] * 4 and time.monotonic() - start < 4


def test_a_reward_that_swallows_exceptions_is_still_cut(user_rewards):
    # `except Exception` does not catch the overrun (a BaseException), and it is raised again every second
    fn = resolve_reward("my_rewards:stubborn", {"reward_timeout_s": 1.0}).fn
    start = time.monotonic()
    assert call(fn)[0] == [None] * 4 and time.monotonic() - start < 4


def test_timeout_from_the_environment(user_rewards, monkeypatch):
    monkeypatch.setenv("R1KIT_REWARD_TIMEOUT", "1")
    start = time.monotonic()
    assert call(resolve_reward("my_rewards:sleepy").fn)[0] == [None] * 4
    assert time.monotonic() - start < 4
    monkeypatch.setenv("R1KIT_REWARD_TIMEOUT", "soon")
    with pytest.raises(R1kitError, match="not a number"):
        resolve_reward("my_rewards:sleepy")
    monkeypatch.setenv("R1KIT_REWARD_TIMEOUT", "-5")
    with pytest.raises(R1kitError, match="must be > 0"):
        resolve_reward("format")


def test_malformed_return_values(user_rewards):
    assert call(resolve_reward("my_rewards:short").fn)[0] == [None] * 4  # 1 value for 4 completions
    out, metrics = call(resolve_reward("my_rewards:junk").fn)
    assert out == [1.0, None, None, None]  # inf and "high" are failures, NaN is trl's "not scored"
    assert metrics == {"rewards/junk/failed": [0.5]}


def test_user_mistakes_and_interrupts_are_not_swallowed(user_rewards):
    with pytest.raises(R1kitError, match="gold"):
        call(resolve_reward("my_rewards:needs_column").fn)
    with pytest.raises(KeyboardInterrupt):
        call(resolve_reward("my_rewards:interrupted").fn)


def test_async_rewards_stay_async_and_are_guarded(user_rewards):
    import asyncio
    import inspect

    crash = resolve_reward("my_rewards:async_crash").fn
    assert inspect.iscoroutinefunction(crash)
    assert asyncio.run(crash(prompts=["q"], completions=["c"])) == [None]
    sleepy = resolve_reward("my_rewards:async_sleepy", {"reward_timeout_s": 0.5}).fn
    start = time.monotonic()
    assert asyncio.run(sleepy(prompts=["q"], completions=["c"])) == [None]
    assert time.monotonic() - start < 3


def test_a_built_in_reward_that_crashes_is_guarded_too(monkeypatch):
    from r1kit.rewards import repetition

    monkeypatch.setattr(repetition, "repetition_rate", lambda text, ngram: 1 / 0)
    out, metrics = call(resolve_reward("repetition").fn, n=2)
    assert out == [None, None] and metrics == {"rewards/repetition/failed": [1.0]}


GRPO_SMALL = [
    "--model",
    "tiny",
    "--num-generations",
    "4",
    "--prompts-per-step",
    "2",
    "--max-completion-length",
    "8",
    "--no-live",
    "--max-steps",
    "2",
]


def test_grpo_run_survives_a_crashing_and_a_hanging_user_reward(tmp_path):
    arith_jsonl(tmp_path / "arith.jsonl", [(1, 2), (3, 4), (5, 6), (7, 8)])
    (tmp_path / "my_rewards.py").write_text(USER_REWARDS)
    import os

    os.environ["R1KIT_REWARD_TIMEOUT"] = "2"
    try:
        res = run_cli(
            "grpo",
            "--data",
            tmp_path / "arith.jsonl",
            "--output",
            tmp_path / "out",
            *GRPO_SMALL,
            "--reward",
            "accuracy=1",
            "--reward",
            "my_rewards:crashing=1",
            "--reward",
            "my_rewards:sleepy=1",
            cwd=tmp_path,
        )
    finally:
        del os.environ["R1KIT_REWARD_TIMEOUT"]
    assert res.returncode == 0, res.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["rewards/crashing/failed"] == 1.0 and r["rewards/sleepy/failed"] == 1.0 for r in steps)
    assert res.stderr.count("reward 'crashing' failed (ValueError: boom)") == 1
    assert res.stderr.count("reward 'sleepy' failed (ran past its 2 s bound)") == 1


ADVERSARIAL = {  # about 256 KB each, built for the rule rewards' regular expressions and tokenizers
    "repeated tags": "<think>" * 36_000,
    "tags once, then whitespace": "<think>x</think><answer>y</answer>" + " " * 256_000 + "z",
    "one endless word": "a" * 256_000,
    "prose": "the quick brown fox jumps over the lazy dog " * 6_000,
    "mixed scripts": "中文 text русский かな " * 12_000,
}


@pytest.mark.parametrize("name", ["format", "think_format", "tag_count", "repetition", "language"])
def test_rule_rewards_are_linear_on_adversarial_completions(name):
    fn = resolve_reward(name, {"lang": "en"}).fn
    texts = list(ADVERSARIAL.values())
    start = time.monotonic()
    out, metrics = call(fn, n=len(texts), completions_override=texts)
    assert len(out) == len(texts) and all(v == [0.0] for v in metrics.values())  # scored, no failure
    assert time.monotonic() - start < 10  # measured: under 1 s each (bench/RESULTS.md, 1 MB inputs)
