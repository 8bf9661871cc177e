"""Code accuracy rewards: run the completion's code against the row's tests.

The rule-based accuracy reward of DeepSeek-R1 for code (PAPERS.md: "Accuracy
(rule: boxed answer / code tests)"); Kimi k1.5 likewise grades code by running
test cases. Binary, as in the papers; the pass rate is an r1kit addition for
partial credit. Each completion
runs in its own sandboxed subprocess (`r1kit.rewards.sandbox`), several at once
on a thread pool.

Row conventions (the `tests` column of the data contract):
- HumanEval: `tests` = the test code defining `check(candidate)` followed by
  `check(<entry_point>)` (appended here when missing and `entry_point` is
  given); the question prompt (function signature + docstring) is prepended to
  the completion's code, so a bare function body works and a full definition
  keeps the prompt's imports.
- MBPP: `tests` = setup code then `assert` lines; each assert is one test case.

`code_reward` is binary (1.0 when every case passes); `code_pass_rate` gives
partial credit (share of cases passed; HumanEval's single `check()` makes it
0 or 1). Rows without tests score None so that trl skips them.
"""

from __future__ import annotations

import ast
import os
import re
from concurrent.futures import ThreadPoolExecutor

from r1kit.errors import R1kitError
from r1kit.rewards._text import column, prompt_tail
from r1kit.rewards._text import completion_text as as_text
from r1kit.rewards.sandbox import SandboxResult, run_sandboxed

# Module-level defaults; every reward also takes them as keyword arguments.
DEFAULT_LIMITS = {"timeout_s": 10.0, "cpu_s": 10, "memory_mb": 1024, "max_procs": 64,
                  "max_output_bytes": 1_000_000}

_FENCE = re.compile(r"^([ \t]*)```[ \t]*([\w+.#-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
_PY_TAGS = {"", "python", "py", "python3", "py3"}


def extract_code(completion_text: str) -> str | None:
    """The last ```python (or untagged) fenced block, looked for after `</think>` when there is one."""
    if not isinstance(completion_text, str):
        return None
    text = completion_text.rsplit("</think>", 1)[1] if "</think>" in completion_text else completion_text
    blocks = [m for m in _FENCE.finditer(text) if m.group(2).lower() in _PY_TAGS]
    if not blocks:
        return None
    indent, body = blocks[-1].group(1), blocks[-1].group(3)
    if indent:  # a fence nested in a list item: its lines carry the fence's indentation
        body = "".join(line.removeprefix(indent) for line in body.splitlines(keepends=True))
    # Keep the first line's indentation: a HumanEval body starts indented.
    body = re.sub(r"\A(?:[ \t]*\n)+", "", body).rstrip()
    return body or None


def _question_code(question) -> str | None:
    """The Python part of a prompt (a HumanEval signature + docstring), or None if it has none."""
    if question is None:
        return None
    question = prompt_tail(question)
    code = extract_code(question) if "```" in question else question
    if not code or not _parses(code):
        return None
    return code


def _parses(src: str) -> bool:
    try:
        ast.parse(src)
        return True
    except (SyntaxError, ValueError):
        return False


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.MULTILINE) is not None


def build_program(completion_text: str, entry_point: str | None = None, question=None) -> str | None:
    """The program to run for one completion, or None when it holds no code.

    Code is the last fenced block; failing that, the text after `</think>` if it
    is valid Python on its own or as the continuation of the question's code.
    With an `entry_point` and a question holding code, the question is prepended.
    """
    q_code = _question_code(question) if entry_point else None
    code = extract_code(completion_text)
    if code is None and isinstance(completion_text, str):
        raw = completion_text.rsplit("</think>", 1)[-1].strip("\n").rstrip()
        if raw and (_parses(raw) or (q_code and _parses(_joined(q_code, raw)))):
            code = raw
    if code is None:
        return None
    if not q_code:
        return code
    if _defines(code, entry_point):
        return q_code.rstrip() + "\n\n\n" + code + "\n"  # later def wins; prompt's imports stay
    return _joined(q_code, code)


def _joined(q_code: str, body: str) -> str:
    return q_code + ("" if q_code.endswith("\n") else "\n") + body + "\n"


def _with_check_call(tests: str, entry_point: str | None) -> str:
    """Append `check(entry_point)` to HumanEval-style tests that define check() but never call it."""
    if not entry_point or not isinstance(tests, str) or "def check(" not in tests:
        return tests
    try:
        body = ast.parse(tests).body
    except SyntaxError:
        return tests
    called = any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                 and getattr(n.value.func, "id", None) == "check" for n in body)
    return tests if called else f"{tests.rstrip()}\n\ncheck({entry_point})\n"


def _has_tests(tests) -> bool:
    if tests is None:
        return False
    if isinstance(tests, str):
        return bool(tests.strip())
    return any(str(t).strip() for t in tests)


def run_completion(completion_text: str, tests, entry_point: str | None = None, question=None,
                   **limits) -> SandboxResult | None:
    """Sandbox result for one completion, or None when the completion holds no code."""
    program = build_program(completion_text, entry_point, question)
    if program is None:
        return None
    opts = {**DEFAULT_LIMITS, **{k: v for k, v in limits.items() if v is not None}}
    return run_sandboxed(program, _with_check_call(tests, entry_point), **opts)


def check_code(completion_text: str, tests, entry_point: str | None = None, question=None,
               **limits) -> tuple[bool, float]:
    """(all tests passed, share of test cases passed) for one completion; used by the rewards and evaluate."""
    if not _has_tests(tests):
        raise R1kitError("check_code got no tests: give the row's test code (asserts or a check() function)")
    result = run_completion(completion_text, tests, entry_point, question, **limits)
    if result is None:
        return False, 0.0
    return result.passed, result.pass_rate


def _score_all(prompts, completions, tests, entry_point, max_workers, limits) -> list[tuple[bool, float] | None]:
    n = len(completions)
    tests = column({"tests": tests}, "tests", n, required=True)
    entry = column({"entry_point": entry_point}, "entry_point", n)
    prompts = column({"prompts": prompts}, "prompts", n)
    jobs = [i for i in range(n) if _has_tests(tests[i])]
    out: list[tuple[bool, float] | None] = [None] * n
    if not jobs:
        return out
    workers = min(len(jobs), max_workers or os.cpu_count() or 1)

    def one(i):
        return check_code(as_text(completions[i]), tests[i], entry[i] or None, prompts[i], **limits)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, score in zip(jobs, pool.map(one, jobs)):
            out[i] = score
    return out


def code_reward(prompts, completions, completion_ids=None, *, tests=None, entry_point=None, max_workers=None,
                timeout_s=None, cpu_s=None, memory_mb=None, max_procs=None, max_output_bytes=None,
                **kwargs) -> list[float | None]:
    """1.0 when the completion's code passes all of the row's tests, else 0.0; None for rows without tests."""
    limits = {"timeout_s": timeout_s, "cpu_s": cpu_s, "memory_mb": memory_mb, "max_procs": max_procs,
              "max_output_bytes": max_output_bytes}
    scores = _score_all(prompts, completions, tests, entry_point, max_workers, limits)
    return [None if s is None else float(s[0]) for s in scores]


def code_pass_rate(prompts, completions, completion_ids=None, *, tests=None, entry_point=None, max_workers=None,
                   timeout_s=None, cpu_s=None, memory_mb=None, max_procs=None, max_output_bytes=None,
                   **kwargs) -> list[float | None]:
    """Share of the row's test cases (MBPP asserts; HumanEval's one check()) passed; None without tests."""
    limits = {"timeout_s": timeout_s, "cpu_s": cpu_s, "memory_mb": memory_mb, "max_procs": max_procs,
              "max_output_bytes": max_output_bytes}
    scores = _score_all(prompts, completions, tests, entry_point, max_workers, limits)
    return [None if s is None else s[1] for s in scores]
