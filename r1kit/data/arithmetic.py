"""The built-in synthetic reasoning task: multi-digit addition/subtraction with a worked trace.

Each record has a short question ("What is 482+379?"), the gold answer ("861") and a completion
in the R1-Zero format: a digit-by-digit column computation inside <think>...</think>, then the
answer in <answer>...</answer>:

    <think>
    2+9+0=11 w1 c1          column: digit + digit + carry = sum, write 1, carry 1
    8+7+1=16 w6 c1
    4+3+1=8 w8 c0
    so 861
    wait, check 861-379=482 ok
    </think><answer>861</answer>

Subtraction columns read "12-9-0=3 w3 b1" (borrowed 10, wrote 3, borrow 1). Each trace holds
0..max_checks redundant lines, the length that the long2short stages (Kimi k1.5) should cut:

- check_style "verify" (default): re-verification equations after the result, like R1's "wait,
  let me verify" (above); always true, but they hold numbers the model can miscopy into its answer.
- check_style "filler": fixed hesitation sentences after the result ("wait, let me
  double-check."), verbose but without numbers.

What RL does with either kind on the tiny model is measured in bench/RESULTS.md ("long2short at
toy scale"): GRPO at temperature 1 dropped both; at 0.7 it kept the filler.

The vocabulary is plain ASCII so the tiny character-level model can learn it; a 3-digit trace
with 3 checks stays under ~160 characters.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from r1kit.errors import R1kitError


def _digits(n: int, width: int) -> list[int]:
    """Digits of n, least significant first, zero-padded to width."""
    return [int(c) for c in reversed(str(n).rjust(width, "0"))]


def _column_lines(a: int, b: int, op: str) -> tuple[list[str], int]:
    """The per-column lines of a op b and the number of carries/borrows."""
    width = max(len(str(a)), len(str(b)))
    da, db = _digits(a, width), _digits(b, width)
    lines, carry, carries = [], 0, 0
    for x, y in zip(da, db):
        if op == "+":
            s = x + y + carry
            lines.append(f"{x}+{y}+{carry}={s} w{s % 10} c{s // 10}")
            carry = s // 10
        else:
            borrow = 1 if x - y - carry < 0 else 0
            top = x + 10 * borrow
            d = top - y - carry
            lines.append(f"{top}-{y}-{carry}={d} w{d} b{borrow}")
            carry = borrow
        carries += carry
    if op == "+" and carry:
        lines.append(f"0+0+{carry}={carry} w{carry} c0")  # the final carry is one more column
    return lines, carries


def _check_lines(a: int, b: int, op: str, result: int) -> list[str]:
    """True statements that re-derive the result; each check re-verifies it a different way."""
    if op == "+":
        return [f"{result}-{b}={a}", f"{result}-{a}={b}", f"{b}+{a}={result}"]
    return [f"{result}+{b}={a}", f"{a}-{result}={b}", f"{b}+{result}={a}"]


CHECK_STYLES = ("verify", "filler")
FILLER_LINES = ("wait, let me double-check.", "hmm, that seems right.")


def make_record(a: int, b: int, op: str, num_checks: int, check_style: str = "verify") -> dict:
    """One problem with its worked trace (op "+" or "-", with a >= b for "-").

    num_checks redundant lines of `check_style` after the result: "verify" equations or
    "filler" sentences (module docstring).
    """
    if check_style not in CHECK_STYLES:
        raise R1kitError(f"unknown check style {check_style!r}; use one of {', '.join(CHECK_STYLES)}")
    if op not in ("+", "-"):
        raise R1kitError(f"unknown arithmetic operation {op!r}; use '+' or '-'")
    if op == "-" and a < b:
        raise R1kitError(f"subtraction needs a >= b, got {a}-{b}")
    result = a + b if op == "+" else a - b
    lines, carries = _column_lines(a, b, op)
    if check_style == "verify":
        redundant = [f"wait, check {c} ok" for c in _check_lines(a, b, op, result)]
    else:
        redundant = list(FILLER_LINES)
    steps = [*lines, f"so {result}", *(redundant[i % len(redundant)] for i in range(num_checks))]
    return {
        "question": f"What is {a}{op}{b}?",
        "answer": str(result),
        "completion": "<think>\n" + "\n".join(steps) + f"\n</think><answer>{result}</answer>",
        # easy-first curricula sort on this: longer operands and more carries are harder
        "difficulty": max(len(str(a)), len(str(b))) + carries,
        "num_checks": num_checks,
        "task": "numeric",
    }


def _unique_problems(
    n: int, digits: int, ops: tuple[str, ...], rng: random.Random
) -> list[tuple[int, int, str]]:
    if not 1 <= digits <= 18:
        raise R1kitError(f"digits ({digits}) must be between 1 and 18")
    if not ops or set(ops) - {"+", "-"}:
        raise R1kitError(f"ops {ops!r} may only hold '+' and '-'")
    ops = tuple(dict.fromkeys(ops))
    top = 10**digits
    # a+b: all ordered pairs; a-b: pairs with a >= b
    possible = sum(top * top if op == "+" else top * (top + 1) // 2 for op in ops)
    if n > possible:
        raise R1kitError(
            f"asked for {n} distinct problems but only {possible} exist with digits={digits}, ops={ops}"
        )
    seen: set[tuple[int, int, str]] = set()
    out = []
    while len(out) < n:
        op = rng.choice(ops)
        a, b = rng.randrange(top), rng.randrange(top)
        if op == "-" and a < b:
            a, b = b, a
        if (a, b, op) not in seen:
            seen.add((a, b, op))
            out.append((a, b, op))
    return out


def make_arithmetic(
    n: int,
    *,
    digits: int = 3,
    ops: tuple[str, ...] = ("+",),
    max_checks: int = 3,
    check_style: str = "verify",
    seed: int = 0,
) -> list[dict]:
    """n distinct problems with operands below 10**digits; num_checks uniform in 0..max_checks."""
    if n < 0 or max_checks < 0:
        raise R1kitError(f"n ({n}) and max_checks ({max_checks}) must be >= 0")
    problems = _unique_problems(n, digits, ops, random.Random(seed))
    # a separate stream for the checks, so the first k records do not depend on n
    checks = random.Random(seed + 1_000_003)
    return [make_record(a, b, op, checks.randint(0, max_checks), check_style) for a, b, op in problems]


def write_arithmetic(out_dir: str | Path, n_train: int, n_test: int, **problems: Any) -> dict[str, int]:
    """Save a train/test DatasetDict (save_to_disk) with disjoint questions.

    `problems` are make_arithmetic's keyword options (digits, ops, max_checks, check_style, seed),
    with its defaults. Columns: question, answer, completion, difficulty, num_checks, task,
    prompt (= question) and messages (user question + assistant trace, for SFT). Returns the
    split sizes.
    """
    from datasets import Dataset, DatasetDict

    records = make_arithmetic(n_train + n_test, **problems)
    for r in records:
        r["prompt"] = r["question"]
        r["messages"] = [
            {"role": "user", "content": r["question"]},
            {"role": "assistant", "content": r["completion"]},
        ]
    # the problems are distinct, so cutting the list keeps every test question out of train
    splits = DatasetDict(
        train=Dataset.from_list(records[:n_train]), test=Dataset.from_list(records[n_train:])
    )
    splits.save_to_disk(str(out_dir))
    return {"train": n_train, "test": n_test}


_COLUMN = re.compile(r"^(\d+)([+-])(\d)([+-])(\d)=(\d+) w(\d) ([cb])(\d)$")
_CHECK = re.compile(r"^wait, check (\d+)([+-])(\d+)=(\d+) ok$")


def verify_trace(question: str, completion: str) -> bool:
    """Whether a trace is well formed and every step in it is arithmetically true.

    Checks each column line, that the written digits spell the result, the answer, and every
    re-verification line. Used by the tests; handy to audit a generated dataset.
    """
    m = re.fullmatch(r"What is (\d+)([+-])(\d+)\?", question)
    body = re.fullmatch(r"<think>\n(.*)\n</think><answer>(\d+)</answer>", completion, flags=re.DOTALL)
    if not m or not body:
        return False
    a, op, b = int(m[1]), m[2], int(m[3])
    result = a + b if op == "+" else a - b
    lines = body[1].split("\n")
    while lines and lines[-1] in FILLER_LINES:
        lines = lines[:-1]
    written, carry = [], 0
    width = max(len(str(a)), len(str(b))) + (
        1 if op == "+" and len(str(result)) > max(len(str(a)), len(str(b))) else 0
    )
    da, db = _digits(a, width), _digits(b, width)
    for i in range(width):
        c = _COLUMN.match(lines[i]) if i < len(lines) else None
        if not c or c[2] != op or c[4] != op:
            return False
        top, y, cin, total, w, flag, cout = (
            int(c[1]),
            int(c[3]),
            int(c[5]),
            int(c[6]),
            int(c[7]),
            c[8],
            int(c[9]),
        )
        if y != db[i] or cin != carry:
            return False
        if op == "+":
            ok = (
                top == da[i]
                and total == top + y + cin
                and w == total % 10
                and cout == total // 10
                and flag == "c"
            )
        else:
            ok = top == da[i] + 10 * cout and total == top - y - cin == w and flag == "b"
        if not ok:
            return False
        written.append(w)
        carry = cout
    if carry or int("".join(map(str, reversed(written)))) != result:
        return False
    rest = lines[width:]
    if not rest or rest[0] != f"so {result}" or int(body[2]) != result:
        return False
    for line in rest[1:]:
        c = _CHECK.match(line)
        if not c:
            return False
        x, y, z = int(c[1]), int(c[3]), int(c[4])
        if (x + y if c[2] == "+" else x - y) != z:
            return False
    return True
