"""The judge (r1kit/judge.py): answer styles against real golds, prefill and truncation, unscorable
golds, words that are not math, bounds, and the accuracy reward called the way `r1kit grpo` calls it.

Golds come from the fixtures: GSM8K (numbers), MATH-500 (LaTeX, choices, words, bases) and a
multiple-choice task.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1kit.errors import R1kitError
from r1kit.judge import (
    Verdict,
    exclusion_summary,
    gold_problem,
    judge,
    judge_many,
    judged_text,
    screen,
)
from r1kit.rewards import resolve_reward

FIXTURES = Path(__file__).parent / "fixtures"
TRL_EXTRAS = {"trainer_state": SimpleNamespace(global_step=3), "log_extra": None, "log_metric": None}


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


GSM8K = [r["answer"].rsplit("####", 1)[1].strip().replace(",", "") for r in _jsonl("gsm8k_sample.jsonl")]
MATH500 = [r["answer"] for r in _jsonl("math500_sample.jsonl")] + [
    r["answer"] for r in _jsonl("math500_golds.jsonl")
]
THINK = "<think>\nLet me work it out step by step.\n</think>\n\n"


def _gold(answer: str) -> str:
    assert answer in GSM8K + MATH500, answer  # every gold below is a real benchmark answer
    return answer


# ----------------------------------------------------------------------------- styles, numbers
# (style, completion with {a} = the answer as the model writes it, task, expected)
NUMBER_STYLES = [
    ("boxed", THINK + "The answer is $\\boxed{{{a}}}$.", True),
    ("boxed_dollar", THINK + "\\boxed{{\\${a}}}", True),
    ("boxed_text", THINK + "\\boxed{{\\text{{{a}}}}}", True),
    ("boxed_unit_text", THINK + "\\boxed{{{a} \\text{{ eggs}}}}", True),
    ("answer_is_no_period", THINK + "The answer is {a}", True),
    ("answer_is_period", THINK + "The answer is {a}.", True),
    ("answer_is_colon", THINK + "The answer is: {a}", True),
    ("bold", THINK + "**{a}**", True),
    ("dollar_period", "She makes 9 * 2 dollars a day.\nSo she makes ${a}.", True),
    ("unit_words", THINK + "{a} minutes", True),
    ("r1zero_tag", "<think>9 * 2</think> <answer>{a}</answer>", True),
    ("tag_with_box", "<think>9 * 2</think><answer>\\boxed{{{a}}}</answer>", True),
    ("hash_line", "16 - 3 - 4 = 9 eggs are sold.\n#### {a}", True),
    ("x_equals", THINK + "\\boxed{{x = {a}}}", True),
    ("equation_chain", THINK + "\\boxed{{{a} - 1 + 1 = {a}}}", True),
    ("display_box", THINK + "**Final Answer**\n\\[\n\\boxed{{{a}}}\n\\]", True),
    ("inline_math_only", THINK + "${a}$", True),
    ("minerva", "Final Answer: The final answer is {a}. I hope it is correct.", True),
    ("statement_then_check", THINK + "The answer is {a}. Check: {a} - 4 = something else entirely.", True),
    ("several_boxes_last_right", THINK + "\\boxed{{123456}} no, redo: \\boxed{{{a}}}", True),
    ("several_boxes_last_wrong", THINK + "\\boxed{{{a}}} no, redo: \\boxed{{123456}}", False),
    ("cut_in_reasoning", "<think>\nSo far \\boxed{{{a}}}, let me double", False),
    ("cut_off_box", THINK + "The answer is \\boxed{{{a}", False),
    ("only_in_reasoning", "<think>\n\\boxed{{{a}}}\n</think>\n\nThe answer is 123456.", False),
    ("empty_after_reasoning", "<think>\nThe answer is \\boxed{{{a}}}.\n</think>\n\n", False),
    ("not_x_but_y", THINK + "The answer is not {a} but 123456.", False),
    ("wrong_number", THINK + "\\boxed{{123456}}", False),
]


@pytest.mark.parametrize("gold", ["18", "2125", "-10"])
@pytest.mark.parametrize("style,template,expected", NUMBER_STYLES, ids=[s[0] for s in NUMBER_STYLES])
def test_number_styles(style, template, expected, gold):
    completion = template.format(a=_gold(gold))
    # the task label does not matter for a number gold
    assert {judge(completion, gold, task).correct for task in ("math", "numeric", None)} == {expected}, (
        completion
    )


def test_number_forms():
    cases = [
        ("\\boxed{2,125}", "2125"),
        ("\\boxed{2125.0}", "2125"),
        ("\\boxed{\\frac{4250}{2}}", "2125"),
        ("\\boxed{-10.00}", "-10"),
        ("\\boxed{\u221210}", "-10"),
        ("The answer is $-3$.", "-3"),
        ("\\boxed{\\frac{28}{6}}", "\\frac{14}{3}"),
        ("\\boxed{4\\frac{2}{3}}", "\\frac{14}{3}"),
        ("\\boxed{14/3}", "\\frac{14}{3}"),
        ("\\boxed{4.666667}", "\\frac{14}{3}"),
        ("\\boxed{1.8}", "1\\frac{4}{5}"),
        ("\\boxed{\\frac95}", "1\\frac{4}{5}"),
        ("\\boxed{18.9}", "\\$18.90"),
        ("The answer is \\$18.90.", "\\$18.90"),
        ("\\boxed{10080}", "10,\\!080"),
        ("\\boxed{15}", "15\\mbox{ cm}^2"),
        ("\\boxed{15 \\text{ cm}^2}", "15\\mbox{ cm}^2"),
        ("$15\\mbox{ cm}^2$", "15\\mbox{ cm}^2"),
        ("\\boxed{106^\\circ}", "106^\\circ"),
        ("\\boxed{106}", "106^\\circ"),
        ("\\boxed{0.0000672}", ".0000672"),
        ("\\boxed{2\\cdot 9}", "18"),
        ("\\boxed{\\sqrt{324}}", "18"),
    ]
    for completion, gold in cases:
        assert judge(THINK + completion, _gold(gold), "math").correct is True, (completion, gold)
    assert judge(THINK + "\\boxed{4.67}", "\\frac{14}{3}", "math").correct is False  # rounded: not the value
    assert judge(THINK + "\\boxed{2x}", "18", "math").correct is False
    assert judge(THINK + "\\boxed{18i}", "18", "math").correct is False


# ----------------------------------------------------------------------------- styles, LaTeX and others
POLAR = "\\left( 3, \\frac{\\pi}{2} \\right)"
LATEX_CASES = [
    ("boxed", THINK + f"\\boxed{{{POLAR}}}", POLAR, True),
    ("rewritten", THINK + "\\boxed{(3,\\dfrac{\\pi}{2})}", POLAR, True),
    ("statement_inline", THINK + "The answer is $(3, \\frac{\\pi}{2})$.", POLAR, True),
    ("statement_raw_latex", THINK + "The final answer is (3, \\pi/2)", POLAR, True),
    ("free_text_last_math", "So the polar coordinates are $(3, \\frac{\\pi}{2})$.", POLAR, True),
    ("words_in_box", THINK + "\\boxed{\\text{the point } (3, \\frac{\\pi}{2})}", POLAR, True),
    ("not_x_but_y", THINK + "The answer is not $(3, \\frac{\\pi}{2})$ but $(3, \\pi)$.", POLAR, False),
    ("wrong_point", THINK + "\\boxed{(3, \\pi)}", POLAR, False),
    ("cut_in_reasoning", f"<think>\\boxed{{{POLAR}}}", POLAR, False),
    ("expression", THINK + "\\boxed{-q + p}", "p - q", True),
    ("expression_wrong", THINK + "\\boxed{q - p}", "p - q", False),
    ("interval", THINK + "\\boxed{[-2, 7]}", "x \\in [-2,7]", True),
    ("interval_wrong", THINK + "\\boxed{(-2, 7)}", "x \\in [-2,7]", False),
    ("list_any_order", THINK + "The roots are $7, 5, 3$.", "3, 5, 7", True),
    ("list_or", THINK + "\\boxed{x = 3 \\text{ or } x = 5 \\text{ or } x = 7}", "3, 5, 7", True),
    ("plus_minus", THINK + "\\boxed{1 + \\sqrt{19}, 1 - \\sqrt{19}}", "1 \\pm \\sqrt{19}", True),
    ("complex", THINK + "\\boxed{6-5i}", "6 - 5i", True),
    ("complex_wrong", THINK + "\\boxed{6+5i}", "6 - 5i", False),
    ("equation", THINK + "\\boxed{y=2x+3}", "y = 2x + 3", True),
    (
        "matrix",
        THINK + "\\boxed{\\begin{pmatrix}-1/3\\\\2/3\\\\5/3\\end{pmatrix}}",
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        True,
    ),
    ("sqrt", THINK + "The answer is $\\sqrt{51}$.", "\\sqrt{51}", True),
    ("sqrt_wrong", THINK + "The answer is $\\sqrt{52}$.", "\\sqrt{51}", False),
    ("variable", THINK + "\\boxed{2(k+1)}", "2k+2", True),
    ("base_digits", THINK + "\\boxed{204_5}", "204_5", True),
    ("base_digits_no_subscript", THINK + "\\boxed{204}", "204_5", True),
    ("base_decimal_value", THINK + "\\boxed{54}", "204_5", False),
    ("words_gold", THINK + "\\boxed{Evelyn}", "\\text{Evelyn}", True),
    ("words_gold_statement", THINK + "The answer is Evelyn.", "\\text{Evelyn}", True),
    ("words_gold_wrong", THINK + "\\boxed{\\text{Navin}}", "\\text{Evelyn}", False),
    ("choice_boxed_letter", THINK + "\\boxed{C}", "\\text{(C)}", True),
    ("choice_paren_text", THINK + "The answer is $\\text{(C)}$.", "\\text{(C)}", True),
    ("choice_wrong", THINK + "\\boxed{(B)}", "\\text{(C)}", False),
    (
        "choice_not_x_but_y",
        THINK + "The answer is not $\\text{(C)}$ but $16 \\sqrt{3}$.",
        "\\text{(C)}",
        False,
    ),
]


@pytest.mark.parametrize("style,completion,gold,expected", LATEX_CASES, ids=[c[0] for c in LATEX_CASES])
def test_latex_and_other_golds(style, completion, gold, expected):
    assert judge(completion, _gold(gold), "math").correct is expected


CHOICE_CASES = [
    ("boxed", "\\boxed{B}", True),
    ("boxed_paren", "\\boxed{(B)}", True),
    ("answer_colon", "Answer: B", True),
    ("answer_is", "The correct answer is (B).", True),
    ("option", "\\boxed{\\text{Option B}}", True),
    ("lead_letter", "\\boxed{B) 12}", True),
    ("bold", "**B**", True),
    ("free_text_paren", "I pick (B) here.", True),
    ("last_letter", "So I choose B.", True),
    ("wrong", "\\boxed{C}", False),
    ("letter_only_in_reasoning", "<think>\\boxed{B}</think> I choose C.", False),
    ("cut_in_reasoning", "<think>The answer is (B)", False),
]


@pytest.mark.parametrize("style,completion,expected", CHOICE_CASES, ids=[c[0] for c in CHOICE_CASES])
def test_multiple_choice(style, completion, expected):
    text = completion if completion.startswith("<think>") else THINK + completion
    assert judge(text, "B", "choice").correct is expected


def test_at_least_forty_styles():
    assert len(NUMBER_STYLES) + len(LATEX_CASES) + len(CHOICE_CASES) >= 40


# ----------------------------------------------------------------------------- the old bugs, one by one


def test_numbers_are_numbers_whatever_the_task_label():
    # `evaluate` marked these wrong on math tasks (the text went to math-verify inside a \boxed{})
    for completion in (
        "The answer is 204",
        "The answer is 204.",
        "**204**",
        "$204.",
        "204 minutes",
        THINK + "The answer is 204",
    ):
        assert judge(completion, "204", "math").correct is True, completion
    assert judge("\\boxed{\\$10}", "10", "math").correct is True
    assert judge("\\boxed{\\text{27}}", "27.0", "math").correct is True
    assert judge("\\boxed{\\frac{1}{2}}", "0.5", "math").correct is True


def test_words_never_become_a_product_of_symbols():
    for completion in (
        "Not 0 but 5",
        "\\boxed{Not 0 but 5}",
        "<answer>Not 0 but 5</answer>",
        "The answer is not 0 but 5.",
        "\\boxed{\\text{no solution}}",
        "\\boxed{none}",
    ):
        v = judge(completion, "0", "math")
        assert v.correct is False, completion
    assert judge("\\boxed{five}", "\\text{even}", "math").correct is False
    assert judge("\\boxed{Not 0 but 5}", "5", "math").correct is True  # its number is 5


def test_prefill_and_truncation():
    box = "so the answer is \\boxed{204}"
    # the template pre-filled "<think>": a completion cut inside the reasoning is no answer
    for prefill in ("<think>\n", "<think>"):
        v = judge(box, "204", "math", prefill=prefill)
        assert v == Verdict(False, None, False, "reasoning not closed")
        assert judge("reasoning</think>\n" + box, "204", "math", prefill=prefill).correct is True
    # the same, read from a rendered prompt string (chat-think, R1-distill chat templates)
    prompt = "<｜User｜>What is 200+4?<｜Assistant｜><think>\n"
    assert judge(box, "204", "math", prompt=prompt).correct is False
    assert judge("ok</think>" + box, "204", "math", prompt=prompt).correct is True
    # without any prefill the plain text is an answer; starting with <think> and not closing it is not
    assert judge(box, "204", "math").correct is True
    assert judge("<think>" + box, "204", "math").correct is False
    # a completion that already carries the prefill is not given it twice
    assert judged_text("<think>\nx</think>4", prefill="<think>\n") == "<think>\nx</think>4"
    assert judged_text("x</think>4", prefill="<think>\n") == "<think>\nx</think>4"
    # re-opened reasoning that never closes: no answer either
    assert judge("<think>a</think>\\boxed{204} <think>wait", "204", "math").correct is False
    # format: never ok while the reasoning is open
    assert judge("x</think> 204", "204", "math", prefill="<think>\n").format_ok is True
    assert judge("x \\boxed{204}", "204", "math", prefill="<think>\n").format_ok is False


def test_unscorable_gold_is_excluded_not_wrong():
    for gold, task in (
        ("\\frac{", "math"),
        ("", "math"),
        (None, None),
        ("   ", "math"),
        ("five", "numeric"),
        ("maybe", "choice"),
        ("\\sqrt{", "math"),
        ("}{", "math"),
    ):
        v = judge("\\boxed{1}", gold, task)
        assert v.correct is None and v.reason.startswith("unscorable gold"), (gold, v)
        assert gold_problem(gold, task)
    assert judge("```python\nprint(1)\n```", None, "code").correct is None  # code without tests
    assert gold_problem("\\frac{1}{2}", "math") is None and gold_problem("E", "math") is None
    assert screen(["1", "\\frac{", "x^2", ""], ["math"] * 4) == {
        1: "unbalanced braces in '\\\\frac{'",
        3: "no gold answer",
    }
    assert exclusion_summary([1, 3]) == {"unscorable_gold": 2, "unscorable_gold_ids": [1, 3]}


def test_extract_modes_read_after_the_reasoning():
    text = "<think>\\boxed{1}</think> <answer>3</answer> \\boxed{2}"
    assert judge(text, "3", "math", extract="answer_tag").correct is True
    assert judge(text, "2", "math", extract="boxed").correct is True
    assert judge(text, "1", "math", extract="boxed").correct is False  # the box in the reasoning is not read
    assert judge("no think 7", "7", "math", extract="after_think").correct is False
    assert judge("Question: 1+1\nAnswer: it is 2, then 3", "3", "math", extract="last_number").correct is True
    with pytest.raises(R1kitError, match="extraction mode"):
        judge("x", "1", "math", extract="first")


def test_adversarial_megabyte_inputs_are_bounded():
    big = 1_000_000
    texts = [
        "\\boxed{" * (big // 7),
        "{" * big,
        "1" * big,
        "1 " * (big // 2),
        "$" * big,
        "The answer is " * (big // 14),
        "<think>" * (big // 7),
        "\\frac{1}{2}" * (big // 11),
        "\\boxed{" + "(" * big + "}",
        "(A) " * (big // 4),
    ]
    for text in texts:
        for gold, task in (("18", "math"), ("\\frac{\\pi}{2}", "math"), ("B", "choice")):
            start = time.perf_counter()
            v = judge("<think>x</think>" + text, gold, task)
            assert time.perf_counter() - start < 5.0 and v.correct is not None, (text[:20], gold)


# ----------------------------------------------------------------------------- the reward as `r1kit grpo` calls it


def test_accuracy_reward_as_grpo_calls_it_reads_the_prefill():
    accuracy = resolve_reward("accuracy", {"prefill": "<think>\n"}).fn
    chat = [{"role": "user", "content": "What is 200+4?"}]
    completions = [
        "so \\boxed{204}",
        "done</think> \\boxed{204}",
        "done</think> The answer is 204",
        "done</think> Not 204 but 205",
        "done</think> \\boxed{204}",
    ]
    scores = accuracy(
        prompts=[chat] * 5,
        completions=completions,
        completion_ids=[[1]] * 5,
        answer=["204", "204", "204", "204", "\\frac{"],
        task=["math"] * 5,
        prefill=["<think>\n"] * 5,
        **TRL_EXTRAS,
    )
    assert scores == [0.0, 1.0, 1.0, 0.0, None]
    # the rendered-prompt form trl passes for chat-think (grpo renders those prompts to text)
    rendered = "<|im_start|>user\nWhat is 200+4?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    plain = resolve_reward("accuracy").fn
    assert plain(
        prompts=[rendered] * 2,
        completions=completions[:2],
        completion_ids=None,
        answer=["204"] * 2,
        **TRL_EXTRAS,
    ) == [0.0, 1.0]
    # conversational completions
    msgs = [[{"role": "assistant", "content": c}] for c in completions[:2]]
    assert accuracy(prompts=[chat] * 2, completions=msgs, answer=["204"] * 2, prefill="<think>\n") == [
        0.0,
        1.0,
    ]


def test_code_reward_is_judged_after_the_reasoning():
    code = resolve_reward("code", {"prefill": "<think>\n"}).fn
    body = "```python\ndef add(a, b):\n    return a + b\n```"
    tests = "assert add(1, 2) == 3\nassert add(2, 2) == 4"
    scores = code(
        prompts=["Write add."] * 3,
        completions=[body, "plan</think>\n" + body, "plan</think> no code"],
        completion_ids=None,
        tests=[tests] * 3,
        **TRL_EXTRAS,
    )
    assert scores == [0.0, 1.0, 0.0]  # code inside unfinished reasoning is never run as the answer
    assert code(prompts=["q"], completions=[body], tests=[None]) == [None]


def test_judge_many_matches_judge_and_keeps_order():
    rows = [
        {"completion": THINK + f"\\boxed{{{g}}}", "answer": g, "task": "math"} for g in GSM8K + MATH500[:6]
    ]
    rows.append(
        {"completion": "```python\ndef f():\n    return 1\n```", "task": "code", "tests": "assert f() == 1"}
    )
    rows.append({"completion": "cut \\boxed{18}", "answer": "18", "task": "math", "prefill": "<think>\n"})
    got = judge_many(rows)
    assert [v.correct for v in got] == [True] * (len(rows) - 1) + [False]
    assert got == [
        judge(r["completion"], r.get("answer"), r["task"], prefill=r.get("prefill"), tests=r.get("tests"))
        for r in rows
    ]
