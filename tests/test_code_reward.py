"""Code rewards: code extraction, program building, and canonical solutions of HumanEval / MBPP."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import pytest

from r1kit.errors import R1kitError
from r1kit.rewards import sandbox
from r1kit.rewards.code import (
    MAX_PROGRAM_CHARS,
    build_program,
    check_code,
    code_pass_rate,
    code_reward,
    extract_code,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is my solution.\n```{tag}\n{code}\n```\nDone."


def load(name: str) -> list[dict]:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"benchmark data not found at {path}")
    return [json.loads(line) for line in path.open()]


def humaneval_rows(limit: int | None = None) -> list[dict]:
    rows = load("humaneval.jsonl")[:limit]
    return [
        {
            "prompt": r["prompt"],
            "entry_point": r["entry_point"],
            "solution": r["canonical_solution"],
            "tests": r["test"] + f"\ncheck({r['entry_point']})\n",
            "task_id": r["task_id"],
        }
        for r in rows
    ]


def mbpp_rows(limit: int | None = None) -> list[dict]:
    rows = [r for r in load("mbpp.jsonl") if 11 <= r["task_id"] <= 510][:limit]
    return [
        {
            "prompt": r["text"],
            "solution": r["code"],
            "task_id": r["task_id"],
            "tests": (r["test_setup_code"] + "\n" if r["test_setup_code"] else "")
            + "\n".join(r["test_list"]),
        }
        for r in rows
    ]


# ---- extraction ----


def test_extract_code_takes_last_python_block_after_think():
    text = (
        "<think>\n```python\nthinking = 1\n```\n</think>\nFirst:\n```python\na = 1\n```\n"
        "Output:\n```text\n1\n```\nFinal:\n```py\nb = 2\n```\n"
    )
    assert extract_code(text) == "b = 2"
    assert extract_code("<think>```python\nx = 1\n```</think> no code here") is None
    assert extract_code("```\nplain = 3\n```") == "plain = 3"
    assert extract_code("no fences at all") is None
    assert extract_code("```bash\nls\n```") is None
    assert extract_code(None) is None


def test_extract_code_keeps_body_indentation_and_dedents_list_fences():
    assert extract_code("```python\n\n    return x + 1\n```") == "    return x + 1"
    nested = "1. Code:\n   ```python\n   def f():\n       return 1\n   ```\n"
    assert extract_code(nested) == "def f():\n    return 1"


def test_build_program_prepends_humaneval_prompt():
    prompt = 'import math\n\n\ndef root(x):\n    """Square root."""\n'
    body = build_program(fenced("    return math.sqrt(x)"), "root", prompt)
    assert body == prompt + "    return math.sqrt(x)\n"
    full = build_program(fenced("def root(x):\n    return math.sqrt(x)"), "root", prompt)
    assert full == prompt.rstrip() + "\n\n\ndef root(x):\n    return math.sqrt(x)\n"
    chat = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": f"Complete:\n```python\n{prompt}```"},
    ]
    assert build_program(fenced("    return math.sqrt(x)"), "root", chat) == body
    # Without an entry point (MBPP) the code runs as is; raw code without fences is accepted when it parses.
    assert build_program(fenced("def f():\n    return 1"), None, "Write f.") == "def f():\n    return 1"
    assert build_program("<think>hmm</think>\n    return math.sqrt(x)\n", "root", prompt) == body
    assert build_program("The answer is to use sqrt.", "root", prompt) is None


# ---- rewards ----


def test_humaneval_sample_canonical_pass_and_wrong_fail():
    rows = humaneval_rows(10)
    prompts = [r["prompt"] for r in rows]
    tests = [r["tests"] for r in rows]
    entry = [r["entry_point"] for r in rows]
    good = [fenced(r["solution"]) for r in rows]
    assert code_reward(prompts, good, tests=tests, entry_point=entry) == [1.0] * 10
    wrong = [fenced("    return None") for _ in rows]
    assert code_reward(prompts, wrong, tests=tests, entry_point=entry) == [0.0] * 10
    empty = ["" for _ in rows]
    assert code_pass_rate(prompts, empty, tests=tests, entry_point=entry) == [0.0] * 10


def test_mbpp_sample_canonical_pass_and_pass_rate_counts_asserts():
    rows = mbpp_rows(10)
    prompts = [r["prompt"] for r in rows]
    tests = [r["tests"] for r in rows]
    good = [[{"role": "assistant", "content": fenced(r["solution"])}] for r in rows]
    assert code_reward(prompts, good, tests=tests) == [1.0] * 10
    assert code_pass_rate(prompts, good, tests=tests) == [1.0] * 10
    # Task 11 (remove_Occ) has 3 asserts; a lookup table right on two of them scores 2/3.
    assert rows[0]["task_id"] == 11
    two_of_three = fenced("def remove_Occ(s, ch):\n    return {'hello': 'heo', 'abcda': 'bcd'}.get(s, '')")
    assert code_pass_rate([prompts[0]], [two_of_three], tests=[tests[0]]) == [pytest.approx(2 / 3)]
    assert code_reward([prompts[0]], [two_of_three], tests=[tests[0]]) == [0.0]


def test_rows_without_tests_score_none_and_order_is_kept():
    comps = [
        fenced("def f():\n    return 1"),
        fenced("def f():\n    return 2"),
        fenced("def f():\n    return 1"),
    ]
    tests = ["assert f() == 1", None, "assert f() == 2"]
    assert code_reward(["q"] * 3, comps, tests=tests, max_workers=2) == [1.0, None, 0.0]
    assert code_pass_rate(["q"] * 3, comps, tests=["", [], "assert f() == 1"]) == [None, None, 1.0]
    with pytest.raises(R1kitError, match="no tests"):
        check_code(comps[0], "")
    with pytest.raises(R1kitError, match="column 'tests' has 2 values for 3 completions"):
        code_reward(["q"] * 3, comps, tests=tests[:2])
    with pytest.raises(R1kitError, match="needs a 'tests' column"):
        code_reward(["q"], comps[:1])


def test_timeout_is_configurable():
    start = time.monotonic()
    out = code_reward(
        ["q"], [fenced("def f():\n    while True:\n        pass")], tests=["assert f() == 1"], timeout_s=1.0
    )
    assert out == [0.0]
    assert time.monotonic() - start < 3


def test_check_code_adds_missing_check_call():
    tests = "def check(candidate):\n    assert candidate(2) == 4\n"
    assert check_code(fenced("def sq(x):\n    return x * x"), tests, "sq") == (True, 1.0)
    assert check_code(fenced("def sq(x):\n    return x + x + 1"), tests, "sq") == (False, 0.0)


# ---- bounded: linear extraction, deep or huge inputs, resources released on every path ----


class Trainer:
    """Stands in for trl's trainer: `log_metric` is its bound method, as trl passes it to rewards."""

    def __init__(self):
        self.logged: dict[str, list[float]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.logged.setdefault(name, []).append(value)


def grpo_call(completions, tests, trainer=None, **extra):
    """code_reward as r1kit grpo calls it; returns the scores and what one call logged."""
    trainer = trainer or Trainer()
    trainer.logged = {}
    n = len(completions)
    out = code_reward(
        prompts=["Write f."] * n,
        completions=completions,
        completion_ids=None,
        tests=tests,
        entry_point=[None] * n,
        log_metric=trainer.log_metric,
        **extra,
    )
    return out, trainer.logged


def test_block_extraction_is_linear():
    # 64 KB of unclosed "```python" lines: 15 s before (every fence rescanned the rest of the text)
    start = time.monotonic()
    assert extract_code("```python\n" * 6554) is None
    assert extract_code("```python\nx = 1\n```\n" + "```python\n" * 6554) == "x = 1"
    assert extract_code("```python\r\nx = 1\r\n```\r\n") == "x = 1"  # CRLF text
    assert time.monotonic() - start < 1.0
    out, metrics = grpo_call(["```python\n" * 6554], ["assert True"])
    assert out == [0.0] and metrics == {"code/too_large": [1.0]}  # no block; too long to try as raw code
    assert time.monotonic() - start < 2.0


DEEP = [
    (fenced("x = " + "-" * 100_000 + "1"), "too_deep"),  # the parser gives up with MemoryError
    (fenced("x = " + "1+" * 60_000 + "1"), "too_deep"),  # RecursionError during compilation
    ("x = " + "-" * 50_000 + "1", "no_code"),  # no fence: the trainer-side parse fails the same way
    (fenced("x = 1\n" * (MAX_PROGRAM_CHARS // 6 + 1)), "too_large"),  # never started
    ("word " * 250_000, "too_large"),  # 1.2 MB of prose: not parsed as code at all
]


def test_deep_or_huge_inputs_score_0_with_a_reason():
    # Before: MemoryError / RecursionError raised out of the reward (ast.parse in the trainer's process).
    start = time.monotonic()
    trainer = Trainer()
    out, metrics = grpo_call([c for c, _ in DEEP], ["assert x"] * len(DEEP), trainer)
    assert out == [0.0] * len(DEEP)
    assert metrics == {"code/too_deep": [0.4], "code/no_code": [0.2], "code/too_large": [0.4]}
    assert time.monotonic() - start < 20
    # every reason seen once is logged again on later calls (0 when absent): trl averages over calls
    _, later = grpo_call([fenced("x = 1")], ["assert x == 1"], trainer)
    assert later == {
        "code/too_deep": [0.0],
        "code/no_code": [0.0],
        "code/too_large": [0.0],
        "code/passed": [1.0],
    }


def held_resources(tmp: Path) -> tuple:
    return len(os.listdir("/proc/self/fd")), sorted(p.name for p in tmp.iterdir()), set(sandbox._active_uids)


def test_resources_are_released_on_every_path(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = held_resources(tmp_path)
    for completion, _ in DEEP[:3]:
        with contextlib.suppress(Exception):  # before: raised, leaking the folder, two fds and the uid
            code_reward(["q"], [completion], tests=["assert x"])
    assert held_resources(tmp_path) == before
    # A failure in the middle of a run, after the program started a process of its own.
    marker = f"300.{secrets.randbelow(10**9):09d}"
    program = f"import os\nos.posix_spawn('/bin/sleep', ['sleep', '{marker}'], {{}}, setsid=True)\nx = 1"
    real = sandbox._collect

    def broken(proc, *args, **kwargs):
        real(proc, *args, **kwargs)
        raise RuntimeError("the parent failed while reading the run")

    monkeypatch.setattr(sandbox, "_collect", broken)
    out, metrics = grpo_call([fenced(program)], ["assert x == 1"])
    assert out == [None] and metrics["code/sandbox_error"] == [1.0]  # unscored: not the completion's fault
    assert held_resources(tmp_path) == before
    alive = [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit()
        and marker.encode()
        in (Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b"")
    ]
    assert alive == []


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"timeout_s": 0}, "timeout_s must be a number >= 0.1"),
        ({"timeout_s": float("nan")}, "timeout_s must be a number"),
        ({"cpu_s": -1}, "cpu_s must be a number >= 1"),
        ({"memory_mb": 4}, "memory_mb must be a number >= 32"),
        ({"max_procs": 0}, "max_procs must be a number >= 1"),
        ({"max_workers": 0}, "max_workers must be an integer >= 1"),
        ({"tests": [5]}, "column 'tests' row 0 is a int"),
        ({"tests": [["assert f() == 1", None]]}, "column 'tests' row 0 is a list"),
        ({"entry_point": [3]}, "column 'entry_point' row 0 is a int"),
    ],
)
def test_out_of_range_limits_and_malformed_columns_are_user_errors(kwargs, message):
    # Before: a limit that fails every run read as "every completion wrong"; a bad column was a traceback.
    call = {"tests": ["assert f() == 1"], "entry_point": [None], **kwargs}
    with pytest.raises(R1kitError, match=message):
        code_reward(
            prompts=["q"], completions=[fenced("def f():\n    return 1")], completion_ids=None, **call
        )


@pytest.mark.slow
def test_all_canonical_solutions_pass():
    he = humaneval_rows()
    he_scores = code_reward(
        [r["prompt"] for r in he],
        [fenced(r["solution"]) for r in he],
        tests=[r["tests"] for r in he],
        entry_point=[r["entry_point"] for r in he],
    )
    failed = [r["task_id"] for r, s in zip(he, he_scores) if s != 1.0]
    assert (len(he), failed) == (164, [])
    mb = mbpp_rows()
    # Task 123's reference solution needs ~6 s of CPU: give room for a loaded machine.
    mb_scores = code_reward(
        [r["prompt"] for r in mb],
        [fenced(r["solution"]) for r in mb],
        tests=[r["tests"] for r in mb],
        timeout_s=60,
        cpu_s=60,
    )
    failed = [r["task_id"] for r, s in zip(mb, mb_scores) if s != 1.0]
    assert (len(mb), failed) == (500, [])
