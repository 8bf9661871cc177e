"""Answer extraction and checking (r1kit.answers): hand-made cases and real GSM8K / MATH-500 rows."""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest

from r1kit import answers
from r1kit.answers import answer_key, check_answer, extract_answer, parse_number, same_answer
from r1kit.errors import R1kitError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _rows(name: str, n: int) -> list[dict]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path}")
    with path.open() as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


# ----------------------------------------------------------------------------- extraction


def test_answer_tag_takes_last_complete_tag():
    text = "<think>try <answer>1</answer></think> <answer> 2 </answer> <answer>3"
    assert extract_answer(text, "answer_tag") == "2"
    assert extract_answer("<answer>\\boxed{7}</answer>", "answer_tag") == "7"
    assert extract_answer("<answer>   </answer>", "answer_tag") is None
    assert extract_answer("no tags", "answer_tag") is None


def test_boxed_nested_braces_and_last_box_wins():
    assert extract_answer(r"so \boxed{\frac{1}{2}}.", "boxed") == r"\frac{1}{2}"
    assert extract_answer(r"\boxed{1} then \boxed{\sqrt{x^{2}}}", "boxed") == r"\sqrt{x^{2}}"
    assert extract_answer(r"\fbox{42}", "boxed") == "42"
    assert extract_answer(r"\boxed 5", "boxed") == "5"
    assert extract_answer(r"\boxed{\{1,2\}}", "boxed") == r"\{1,2\}"
    # an unclosed last box (truncated output) is skipped, an earlier complete one counts
    assert extract_answer(r"\boxed{3} and \boxed{\frac{1}{", "boxed") == "3"
    assert extract_answer("\\boxed{" + "(" * 10000, "boxed") is None


def test_after_think_and_auto():
    assert (
        extract_answer("<think>a \\boxed{1}</think>\n The answer is 12. ", "after_think")
        == "The answer is 12."
    )
    assert extract_answer("<think>a</think> so \\boxed{12}", "after_think") == "12"
    assert extract_answer("<think>no end", "after_think") is None
    # auto looks only after </think>: a box inside the reasoning does not count
    assert extract_answer("<think>\\boxed{1}</think> 12", "auto") == "12"
    assert extract_answer("<think>x</think><answer>5</answer>", "auto") == "5"
    assert extract_answer("reasoning then \\boxed{9}", "auto") == "9"
    assert extract_answer("<think>cut off mid-reasoning", "auto") is None
    assert extract_answer("  42 ", "auto") == "42"
    assert extract_answer("", "auto") is None
    with pytest.raises(R1kitError, match="boxed"):
        extract_answer("x", "last_line")


def test_parse_number():
    assert (
        parse_number("0.5")
        == parse_number("1/2")
        == parse_number(".5")
        == parse_number(r"\frac{1}{2}")
        == Fraction(1, 2)
    )
    assert parse_number("2,125") == 2125
    assert parse_number("$1,000.50") == Fraction(200100, 200)
    assert parse_number("50%") == 50
    assert parse_number("18.") == 18
    assert parse_number("-\\dfrac{3}{4}") == Fraction(-3, 4)
    assert parse_number("1, 2, 3") is None  # a list, not a thousands separator
    assert parse_number("abc") is None
    start = time.perf_counter()
    assert parse_number("1e999999999") is None  # would build a billion-digit integer
    assert time.perf_counter() - start < 0.1


# ----------------------------------------------------------------------------- checking


def test_numeric_check():
    c = "<think>...</think><answer>{}</answer>"
    assert check_answer(c.format("0.5"), "1/2", kind="numeric") is True
    assert check_answer(c.format(".5"), "0.5") is True
    assert check_answer(c.format("2,125"), "2125") is True
    assert check_answer(c.format("$18.00"), "18") is True
    assert check_answer(c.format("18 dollars"), "18") is True
    assert check_answer(c.format("17"), "18") is False
    assert check_answer("<think>never finished", "18") is False
    # numeric kind reads the last number of an expression; auto leaves expressions to math-verify
    assert check_answer(c.format("16 - 3 - 4 = 9, 9 * 2 = 18"), "18", kind="numeric") is True
    assert check_answer(c.format("1+2i"), "2") is False
    assert check_answer(c.format("2x"), "2") is False


def test_unparseable_gold_is_none_never_a_free_pass():
    assert check_answer("<answer>5</answer>", None) is None
    assert check_answer("<answer>5</answer>", "   ") is None
    assert check_answer("<answer>5</answer>", "five", kind="numeric") is None
    assert check_answer("<answer>B</answer>", "maybe", kind="choice") is None
    with pytest.raises(R1kitError, match="numeric"):
        check_answer("x", "1", kind="exact")


def test_choice_check():
    assert check_answer("<answer>B</answer>", "B", kind="choice") is True
    assert check_answer("<answer>\\text{(B)}</answer>", "(B)", kind="choice") is True
    assert check_answer("I think the answer is (C).", "C", kind="choice") is True
    assert check_answer("<answer>A</answer>", "C", kind="choice") is False


def test_math_check_equivalences():
    c = "<answer>{}</answer>"
    assert check_answer(c.format("\\frac12"), "0.5") is True
    assert check_answer(c.format("x = 5"), "5") is True
    assert check_answer(c.format("\\dfrac{3}{4}"), "0.75", kind="math") is True
    assert check_answer(c.format("(x+1)^2"), "x^2+2x+1") is True
    assert check_answer(c.format("2\\sqrt{2}"), "\\sqrt{8}") is True
    assert check_answer(c.format("\\sqrt{7}"), "\\sqrt{8}") is False
    assert check_answer("<think>no answer", "\\pi") is False


def test_math_verify_gets_gold_first():
    # math-verify is asymmetric: a relation in the gold matches an interval in the prediction,
    # not the other way round. The reversed call (open-r1's bug) would flip both results.
    assert check_answer("<answer>(1,2)</answer>", "1<x<2", kind="math") is True
    assert check_answer("<answer>1<x<2</answer>", "(1,2)", kind="math") is False


def test_checks_work_from_threads():
    cases = [
        ("\\frac{1}{3}", "\\dfrac13", True),
        ("\\sqrt{2}", "\\sqrt{3}", False),
        ("x^2-1", "(x-1)(x+1)", True),
        ("\\pi", "3\\pi/3", True),
    ] * 4
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda c: check_answer(f"<answer>{c[1]}</answer>", c[0]), cases))
    assert got == [c[2] for c in cases]


def test_pathological_inputs_are_bounded_and_false(monkeypatch):
    # 9^{9^{9^9}} hangs math-verify's verify and 10,000 "(" its parser (both > 20 s when run
    # directly); the helper is killed at the timeout and the check is False.
    monkeypatch.setenv("R1KIT_MATH_TIMEOUT", "1.5")
    answers.shutdown_math_helpers()
    try:
        assert check_answer("<answer>2</answer>", "\\sqrt{4}") is True  # helper started and warm
        for completion in (
            "<answer>9^{9^{9^{9}}}</answer>",
            "\\boxed{" + "(" * 10000,
            "<answer>" + "(" * 10000 + "</answer>",
        ):
            start = time.perf_counter()
            assert check_answer(completion, "\\pi") is False
            assert time.perf_counter() - start < 5.0
        assert check_answer("<answer>\\frac{\\pi}{1}</answer>", "\\pi") is True  # a fresh helper took over
    finally:
        answers.shutdown_math_helpers()


def test_answer_key_groups_equivalent_answers():
    assert (
        len({answer_key(a) for a in ["1/2", "0.5", "\\frac{1}{2}", "\\dfrac12", "<answer>.5</answer>"]}) == 1
    )
    assert answer_key("2,125") == answer_key("2125") == "2125"
    assert answer_key("<think>x</think> \\boxed{x = 3}") == answer_key("3")
    assert answer_key("\\left( 1, 2 \\right)") == "(1,2)"
    assert answer_key("<think>unfinished") == ""
    assert answer_key("7") != answer_key("8")
    assert same_answer("\\boxed{x^2-1}", "(x-1)(x+1)") is True
    assert same_answer("1/2", "0.25") is False


# ----------------------------------------------------------------------------- real data


def test_gsm8k_reference_answers_check_against_their_gold():
    rows = _rows("gsm8k_test.jsonl", 50)
    items = []
    for r in rows:
        solution, final = r["answer"].rsplit("####", 1)
        gold = final.strip().replace(",", "")
        items.append((f"<think>{solution.strip()}</think><answer>{gold}</answer>", gold))
    assert all(check_answer(c, g) is True for c, g in items)
    golds = [g for _, g in items]
    shuffled = golds[1:] + golds[:1]
    hits = sum(check_answer(c, g) is True for (c, _), g in zip(items, shuffled))
    same = sum(a == b for a, b in zip(golds, shuffled))
    assert hits == same  # only rows whose neighbour has the very same answer
    assert hits <= 3


def test_math500_reference_answers_check_against_their_gold():
    rows = _rows("math500_test.jsonl", 50)
    items = [(f"<think>{r['solution']}</think><answer>{r['answer']}</answer>", r["answer"]) for r in rows]
    assert all(check_answer(c, g) is True for c, g in items)
    # the reference solution itself ends in the boxed answer
    assert all(check_answer(r["solution"], r["answer"], extract="boxed") is True for r in rows[:20])
    golds = [g for _, g in items]
    rng = random.Random(0)
    shuffled = golds[:]
    rng.shuffle(shuffled)
    hits = sum(check_answer(c, g) is True for (c, _), g in zip(items, shuffled))
    same = sum(a == b for a, b in zip(golds, shuffled))
    assert hits - same <= 1 and hits <= 5
