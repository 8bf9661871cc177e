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

Bounded (issue 14): block extraction is one pass over the lines; untrusted code
is never parsed in this process beyond MAX_RAW_CODE_CHARS (the raw-text
fallback) and a program over MAX_PROGRAM_CHARS is not run; a program too deep
for the parser or compiler fails in the child. Each completion gets a reason
(REASONS), logged per call through trl's `log_metric` as `<reward>/<reason>`;
a row whose sandbox could not run at all is None (not scored), not 0. The
HumanEval question's code is passed to the sandbox as trusted preamble, so the
tests use the prompt's helpers (`poly`) and imports, not the solution's.
"""

from __future__ import annotations

import ast
import logging
import math
import os
import re
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from r1kit.errors import R1kitError
from r1kit.rewards._text import column, prompt_tail
from r1kit.rewards._text import completion_text as as_text
from r1kit.rewards.sandbox import SandboxResult, run_sandboxed

logger = logging.getLogger(__name__)

# Module-level defaults; every reward also takes them as keyword arguments. MBPP task 123's reference
# needs 2-6 s of CPU depending on the machine: 10 s of CPU (RLIMIT_CPU, not inflated by load) and a 20 s
# wall deadline (which is: two workers on two busy cores) leave room for it; a busy loop still ends at 10 s.
DEFAULT_LIMITS = {
    "timeout_s": 20.0,
    "cpu_s": 10,
    "memory_mb": 1024,
    "max_procs": 64,
    "max_output_bytes": 1_000_000,
}

_FENCE_OPEN = re.compile(r"([ \t]*)```[ \t]*([\w+.#-]*)")  # at a line start; the rest of the line is ignored
_FENCE_CLOSE = re.compile(r"[ \t]*```[ \t\r]*")  # a whole line (a CRLF text keeps its \r)
_PY_TAGS = {"", "python", "py", "python3", "py3"}
# The raw-text fallback (no fence) parses the text in the trainer's process: ast.parse costs ~2.5 s per MB,
# so longer unfenced text is not tried as code. A program larger than MAX_PROGRAM_CHARS is not run at all.
MAX_RAW_CODE_CHARS = 64 * 1024
MAX_PROGRAM_CHARS = 256 * 1024


def _fenced_blocks(text: str):
    """(indent, tag, body) of every fenced block, in order, in one pass over the lines.

    A line starting with ``` (after spaces or tabs) opens a block and the next line that is only ```
    closes it; an opening fence without a closing one holds no block. Linear in the text: the old
    regex rescanned to the end of the text from every unclosed fence (quadratic; 40 KB of "```python"
    lines took 6 s).
    """
    lines = text.split("\n")
    opened = None
    for i, line in enumerate(lines):
        if opened is None:
            m = _FENCE_OPEN.match(line)
            if m and i + 1 < len(lines):  # an opening fence needs a newline after it
                opened = (m.group(1), m.group(2), i + 1)
        elif _FENCE_CLOSE.fullmatch(line):
            indent, tag, start = opened
            yield indent, tag, "".join(part + "\n" for part in lines[start:i])
            opened = None


def extract_code(completion_text: str) -> str | None:
    """The last ```python (or untagged) fenced block, looked for after `</think>` when there is one."""
    if not isinstance(completion_text, str):
        return None
    text = completion_text.rsplit("</think>", 1)[1] if "</think>" in completion_text else completion_text
    if "```" not in text:
        return None
    last = None
    for indent, tag, body in _fenced_blocks(text):
        if tag.lower() in _PY_TAGS:
            last = (indent, body)
    if last is None:
        return None
    indent, body = last
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
    """Whether `src` is Python; False for text too long to parse here or too deep for the parser."""
    if len(src) > MAX_RAW_CODE_CHARS:
        return False
    try:
        ast.parse(src)
        return True
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        # 100k nested unary operators raise MemoryError, a 200k-term sum RecursionError: not a program
        return False


def _defines(code: str, name: str) -> bool:
    return (
        re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.MULTILINE)
        is not None
    )


def _plan(completion_text, entry_point: str | None, question) -> tuple[str | None, str | None, str]:
    """(program, the question's code, reason) for one completion; reason is "" or why there is no program."""
    q_code = _question_code(question) if entry_point else None
    code = extract_code(completion_text)
    if code is None and isinstance(completion_text, str):
        raw = completion_text.rsplit("</think>", 1)[-1].strip("\n").rstrip()
        if len(raw) > MAX_RAW_CODE_CHARS:
            return None, q_code, "too_large"
        if raw and (_parses(raw) or (q_code and _parses(_joined(q_code, raw)))):
            code = raw
    if code is None:
        return None, q_code, "no_code"
    if not q_code:
        program = code
    elif _defines(code, entry_point):
        program = q_code.rstrip() + "\n\n\n" + code + "\n"  # later def wins; prompt's imports stay
    else:
        program = _joined(q_code, code)
    if len(program) > MAX_PROGRAM_CHARS:
        return None, q_code, "too_large"
    return program, q_code, ""


def build_program(completion_text: str, entry_point: str | None = None, question=None) -> str | None:
    """The program to run for one completion, or None when it holds no code (or too much of it).

    Code is the last fenced block; failing that, the text after `</think>` if it
    is valid Python on its own or as the continuation of the question's code.
    With an `entry_point` and a question holding code, the question is prepended.
    """
    return _plan(completion_text, entry_point, question)[0]


def _joined(q_code: str, body: str) -> str:
    return q_code + ("" if q_code.endswith("\n") else "\n") + body + "\n"


def _with_check_call(tests: str, entry_point: str | None) -> str:
    """Append `check(entry_point)` to HumanEval-style tests that define check() but never call it."""
    if not entry_point or not isinstance(tests, str) or "def check(" not in tests:
        return tests
    try:
        body = ast.parse(tests).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return tests
    called = any(
        isinstance(n, ast.Expr)
        and isinstance(n.value, ast.Call)
        and getattr(n.value.func, "id", None) == "check"
        for n in body
    )
    return tests if called else f"{tests.rstrip()}\n\ncheck({entry_point})\n"


def _has_tests(tests) -> bool:
    if tests is None:
        return False
    if isinstance(tests, str):
        return bool(tests.strip())
    return any(str(t).strip() for t in tests)


# (lowest accepted value, what it is): a limit below it makes every run fail, which would read as "all wrong".
_LIMIT_RANGES = {
    "timeout_s": (0.1, "seconds of wall clock"),
    "cpu_s": (1, "seconds of CPU"),
    "memory_mb": (32, "MB of memory"),
    "max_procs": (1, "processes"),
    "max_output_bytes": (1024, "bytes of output"),
    "max_file_mb": (1, "MB per file"),
}


def _limits(limits: dict) -> dict:
    """The sandbox limits with defaults filled in; R1kitError for a value out of range."""
    out = {**DEFAULT_LIMITS, **{k: v for k, v in limits.items() if v is not None}}
    for key, value in out.items():
        low, what = _LIMIT_RANGES.get(key, (None, ""))
        if low is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < low
        ):
            raise R1kitError(f"code reward: {key} must be a number >= {low} ({what}), got {value!r}")
    return out


def _check_columns(tests: list, entry: list) -> None:
    for i, value in enumerate(tests):
        if (
            value is not None
            and not isinstance(value, str)
            and not (isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value))
        ):
            raise R1kitError(
                f"column 'tests' row {i} is a {type(value).__name__}; give test code as a string "
                f"(asserts or a check() function) or a list of strings"
            )
    for i, value in enumerate(entry):
        if value is not None and not isinstance(value, str):
            raise R1kitError(
                f"column 'entry_point' row {i} is a {type(value).__name__}; give the function's name"
            )


def run_completion(
    completion_text: str, tests, entry_point: str | None = None, question=None, **limits
) -> SandboxResult | None:
    """Sandbox result for one completion, or None when the completion holds no code (or too much)."""
    program, q_code, _ = _plan(completion_text, entry_point, question)
    if program is None:
        return None
    return run_sandboxed(
        program,
        _with_check_call(tests, entry_point),
        preamble=q_code,
        entry_point=entry_point,
        **_limits(limits),
    )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    pass_rate: float
    reason: str  # "passed", or why not (see REASONS)


# Why a completion did not pass; logged per call as `<reward>/<reason>` (share of the batch).
REASONS = (
    "passed",
    "failed",
    "no_code",
    "too_large",
    "syntax",
    "too_deep",
    "load_error",
    "timeout",
    "memory",
    "output_cap",
    "crashed",
    "report_tampered",
    "sandbox_error",
)


def judge_code(
    completion_text: str, tests, entry_point: str | None = None, question=None, **limits
) -> Verdict:
    """Verdict for one completion: passed, share of test cases passed, and the reason."""
    if not _has_tests(tests):
        raise R1kitError("check_code got no tests: give the row's test code (asserts or a check() function)")
    program, q_code, reason = _plan(completion_text, entry_point, question)
    if program is None:
        return Verdict(False, 0.0, reason)
    result = run_sandboxed(
        program,
        _with_check_call(tests, entry_point),
        preamble=q_code,
        entry_point=entry_point,
        **_limits(limits),
    )
    return Verdict(result.passed, result.pass_rate, "passed" if result.passed else result.error or "failed")


def check_code(
    completion_text: str, tests, entry_point: str | None = None, question=None, **limits
) -> tuple[bool, float]:
    """(all tests passed, share of test cases passed) for one completion; used by the rewards and evaluate."""
    verdict = judge_code(completion_text, tests, entry_point, question, **limits)
    return verdict.passed, verdict.pass_rate


_warned: set[str] = set()
# Reasons logged so far, per metrics sink (the trainer behind trl's log_metric) and reward name.
_seen_reasons: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _score_all(
    name, prompts, completions, tests, entry_point, max_workers, limits, kwargs
) -> list[Verdict | None]:
    """Verdicts for a trl batch, on a thread pool; a row whose sandbox could not run is None (not scored)."""
    n = len(completions)
    tests = column({"tests": tests}, "tests", n, required=True)
    entry = column({"entry_point": entry_point}, "entry_point", n)
    prompts = column({"prompts": prompts}, "prompts", n)
    _check_columns(tests, entry)
    limits = _limits(limits)
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    ):
        raise R1kitError(f"code reward: max_workers must be an integer >= 1, got {max_workers!r}")
    jobs = [i for i in range(n) if _has_tests(tests[i])]
    out: list[Verdict | None] = [None] * n
    if jobs:
        workers = min(len(jobs), max_workers or os.cpu_count() or 1)

        def one(i):
            try:
                return judge_code(as_text(completions[i]), tests[i], entry[i] or None, prompts[i], **limits)
            except R1kitError:
                raise
            except Exception as e:  # noqa: BLE001  the host could not run a sandbox (no processes, fds, disk)
                if "sandbox_error" not in _warned:
                    _warned.add("sandbox_error")
                    logger.warning(
                        "code reward: a sandbox could not run (%s: %s); such rows are left unscored "
                        "and counted in %s/sandbox_error",
                        type(e).__name__,
                        e,
                        name,
                    )
                return Verdict(False, 0.0, "sandbox_error")

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, verdict in zip(jobs, pool.map(one, jobs)):
                out[i] = verdict
    _log_reasons(name, [v.reason for v in out if v is not None], kwargs.get("log_metric"))
    return out


def _log_reasons(name: str, reasons: list[str], log_metric) -> None:
    """Share of the batch's scored rows per reason, through trl's `log_metric` (when given).

    Every reason seen so far in the run is logged on every call (0 when absent), so that trl's
    average over a logging step is the share over all calls, not over the calls that had it.
    """
    if not callable(log_metric) or not reasons:
        return
    sink = getattr(log_metric, "__self__", log_metric)
    try:
        seen = _seen_reasons.setdefault(sink, {}).setdefault(name, set())
    except TypeError:  # not weak-referenceable: no memory across calls
        seen = set()
    seen.update(reasons)
    for reason in sorted(seen):
        log_metric(f"{name}/{reason}", reasons.count(reason) / len(reasons))


def _score(verdict: Verdict | None, attr: str) -> float | None:
    if verdict is None or verdict.reason == "sandbox_error":
        return None
    return float(getattr(verdict, attr))


def code_reward(
    prompts, completions, completion_ids=None, *, tests=None, entry_point=None, max_workers=None, **kwargs
) -> list[float | None]:
    """1.0 when the completion's code passes all of the row's tests, else 0.0; None for rows without tests.
    Sandbox limits by keyword: timeout_s, cpu_s, memory_mb, max_procs, max_output_bytes."""
    return _scores("code", "passed", prompts, completions, tests, entry_point, max_workers, kwargs)


def code_pass_rate(
    prompts, completions, completion_ids=None, *, tests=None, entry_point=None, max_workers=None, **kwargs
) -> list[float | None]:
    """Share of the row's test cases (MBPP asserts; HumanEval's one check()) passed; None without tests.
    Sandbox limits as for `code_reward`."""
    return _scores(
        "code_pass_rate", "pass_rate", prompts, completions, tests, entry_point, max_workers, kwargs
    )


_LIMIT_KEYS = ("timeout_s", "cpu_s", "memory_mb", "max_procs", "max_output_bytes")


def _scores(name, attr, prompts, completions, tests, entry_point, max_workers, kwargs) -> list[float | None]:
    limits = {key: kwargs.pop(key, None) for key in _LIMIT_KEYS}
    verdicts = _score_all(name, prompts, completions, tests, entry_point, max_workers, limits, kwargs)
    return [_score(v, attr) for v in verdicts]


def _time_bound(n: int, kwargs: dict) -> float:
    """Longest an honest call can take: rounds of sandbox runs, each within its deadline plus clean-up.
    The registry's guard never cuts the code reward short of this (r1kit.rewards.guard)."""
    timeout = float(kwargs.get("timeout_s") or DEFAULT_LIMITS["timeout_s"])
    workers = int(kwargs.get("max_workers") or os.cpu_count() or 1)
    return math.ceil(max(n, 1) / max(workers, 1)) * (timeout + 5.0) + 30.0


code_reward.r1kit_time_bound = _time_bound
code_pass_rate.r1kit_time_bound = _time_bound
