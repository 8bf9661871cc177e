"""The judge against math-verify on every GSM8K test and MATH-500 problem, in 38 answer styles.

For each problem (1319 GSM8K test, 500 MATH-500) completions are built in the ways models write
answers, right and wrong, so the correct verdict is known by construction:

  right  boxed, r1zero_tag, answer_is, answer_is_no_period, final_answer_colon, bold, hash_line,
         boxed_in_statement, two_boxes_last_right, prefilled_think, bare_after_think,
         free_text_statement, rewritten_latex, llama_final, display_box, raw_latex_statement,
         answer_colon_line, final_then_verify, tag_inline_math, dollar_box, text_box, unit_words,
         dollar_period, decimal_or_fraction, thousands, x_equals
  wrong  boxed_wrong, tag_wrong, statement_wrong, two_boxes_last_wrong, statement_then_box_wrong,
         hedge, right_only_in_reasoning, cut_in_reasoning, cut_in_prefilled_reasoning, cut_off_box,
         not_x_but_y, empty_after_think

(the number-only right styles apply to golds that are numbers; every other style to every gold).
The reasoning is the problem's reference solution (GSM8K calculator notes removed, MATH boxes
unwrapped), so the text around the answer is real. A wrong answer is the gold + 1 for numbers,
and another problem's gold (textually and numerically different) otherwise.

Each completion is judged three ways:
  reward    the accuracy reward as `r1kit grpo` calls it (prompts=, completions=, completion_ids=,
            answer/task/prefill columns; a prefilled style's prompt ends with "<think>\\n" and the
            completion lacks it, as trl passes them)
  evaluate  r1kit.evaluation.score_rows, as `r1kit evaluate` scores samples (the completion starts
            with the prefill, as r1kit's backends return it)
  mv        math-verify used directly: verify(parse("$gold$"), parse(completion)) with its default
            extraction, in parallel worker processes

Reported: per dataset and style, how often each is right; reward vs evaluate agreement (must be
100%); every disagreement between the judge and math-verify, with the side that is right, in
OUT/disagreements.jsonl (summary in OUT/summary.json, a markdown table with --markdown).

Run:  .venv/bin/python bench/bench_judge.py [--data ../shared/data] [--limit N] [--out /tmp/bench_judge]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

PREFILL = "<think>\n"


# --------------------------------------------------------------------------- data


def gsm8k(path: Path, limit: int | None) -> list[dict]:
    rows = []
    for i, line in enumerate(path.read_text().splitlines()[:limit]):
        r = json.loads(line)
        solution, final = r["answer"].rsplit("####", 1)
        reason = re.sub(r"<<[^<>]*>>", "", solution).strip()
        rows.append({"dataset": "gsm8k", "idx": i, "gold": final.strip().replace(",", ""), "reason": reason})
    return rows


def math500(path: Path, limit: int | None) -> list[dict]:
    from r1kit.answers import _matching_braces

    rows = []
    for i, line in enumerate(path.read_text().splitlines()[:limit]):
        r = json.loads(line)
        rows.append(
            {
                "dataset": "math500",
                "idx": i,
                "gold": r["answer"],
                "reason": unbox(r["solution"], _matching_braces),
            }
        )
    return rows


def unbox(text: str, matching) -> str:
    r"""The solution with every \boxed{X} replaced by X (so the reasoning holds no answer box)."""
    pairs = matching(text)
    out, i = [], 0
    for m in re.finditer(r"\\boxed\s*\{", text):
        if m.start() < i:
            continue
        close = pairs.get(m.end() - 1)
        if close is None:
            continue
        out.append(text[i : m.start()])
        out.append(text[m.end() : close])
        i = close + 1
    out.append(text[i:])
    return "".join(out)


# --------------------------------------------------------------------------- answers


def fmt_number(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    d = v.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:  # terminating decimal
        return format(float(v), ".10f").rstrip("0").rstrip(".") if abs(v) < 10**9 else str(float(v))
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def other_form(v: Fraction) -> str:
    """The same value written differently: 72 -> 72.0, 0.5 -> \\frac{1}{2}, \\frac{1}{3} stays."""
    if v.denominator == 1:
        return f"{v.numerator}.0"
    text = fmt_number(v)
    if "frac" in text:
        return text.replace("\\frac", "\\dfrac")
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def thousands(v: Fraction) -> str:
    if v.denominator != 1 or abs(v) < 1000:
        return fmt_number(v)
    return f"{v.numerator:,}"


def rewritten(latex: str) -> str:
    """An equivalent LaTeX spelling: \\dfrac for \\frac, no \\left/\\right, no spaces."""
    s = latex.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\\frac(?=[{\s\d])", r"\\dfrac", s)
    return re.sub(r"\s+", "", s) if "\\text" not in s and "\\mbox" not in s else s


def _mv_equal(a: str, b: str) -> bool:
    """math-verify finds the two golds equal in either direction (then neither is a wrong answer
    to the other: {1, -2} and (-2, 1) list the same solutions)."""
    from math_verify import parse, verify

    pa, pb = parse(f"${a}$"), parse(f"${b}$")
    return bool(verify(pa, pb) or verify(pb, pa))


def wrong_answers(rows: list[dict]) -> None:
    """rows[i]["wrong"]: gold + 1 for numbers; else another row's gold, different in text and value."""
    from r1kit.answers import normalize_latex, parse_number

    rng = random.Random(0)
    others = [r["gold"] for r in rows]
    for r in rows:
        v = parse_number(r["gold"])
        r["value"] = v
        if v is not None:
            r["wrong"] = fmt_number(v + 1)
            continue
        while True:
            cand = rng.choice(others)
            if (
                normalize_latex(cand) != normalize_latex(r["gold"])
                and parse_number(cand) is None
                and cand.strip() != r["gold"].strip()
                and not _mv_equal(r["gold"], cand)
            ):
                r["wrong"] = cand
                break


# --------------------------------------------------------------------------- styles


def _num(r):
    return r["value"] is not None


def styles() -> list[tuple[str, bool, object, object]]:
    """(name, expected correct, applies(row) -> bool, build(row) -> (completion, prefilled))."""

    def math(a):  # an answer in inline math, as models write LaTeX answers in prose
        return f"${a}$"

    every = lambda r: True
    think = "<think>\n{reason}\n</think>\n\n"

    def after_think(answer):  # the closed reasoning block, then what answer(row) writes
        return lambda r: (think.format(**r) + answer(r), False)

    out = [
        ("boxed", True, every, after_think(lambda r: f"The answer is $\\boxed{{{r['gold']}}}$.")),
        (
            "r1zero_tag",
            True,
            every,
            lambda r: (f"<think>{r['reason']}</think> <answer>{r['gold']}</answer>", False),
        ),
        ("answer_is", True, every, after_think(lambda r: f"The answer is {math(r['gold'])}.")),
        ("answer_is_no_period", True, every, after_think(lambda r: f"The answer is {math(r['gold'])}")),
        ("final_answer_colon", True, every, after_think(lambda r: f"Final Answer: {math(r['gold'])}")),
        ("bold", True, every, after_think(lambda r: f"**Answer:** **{math(r['gold'])}**")),
        ("hash_line", True, every, lambda r: (f"{r['reason']}\n#### {r['gold']}", False)),
        (
            "boxed_in_statement",
            True,
            every,
            lambda r: (f"{r['reason']}\n\nSo the final answer is $\\boxed{{{r['gold']}}}$.", False),
        ),
        (
            "two_boxes_last_right",
            True,
            every,
            lambda r: (
                think.format(**r) + f"First I got $\\boxed{{{r['wrong']}}}$, but correcting a slip: "
                f"$\\boxed{{{r['gold']}}}$",
                False,
            ),
        ),
        (
            "prefilled_think",
            True,
            every,
            lambda r: (f"{r['reason']}\n</think>\n\n$\\boxed{{{r['gold']}}}$", True),
        ),
        ("bare_after_think", True, every, lambda r: (think.format(**r) + math(r["gold"]), False)),
        (
            "free_text_statement",
            True,
            every,
            lambda r: (f"{r['reason']}\n\nTherefore, the answer is {math(r['gold'])}.", False),
        ),
        ("rewritten_latex", True, every, after_think(lambda r: f"\\boxed{{{rewritten(r['gold'])}}}")),
        (
            "llama_final",
            True,
            every,
            lambda r: (
                think.format(**r)
                + f"Therefore, the final answer is: $\\boxed{{{r['gold']}}}$. I hope it is correct.",
                False,
            ),
        ),
        (
            "display_box",
            True,
            every,
            after_think(lambda r: f"**Final Answer**\n\\[\n\\boxed{{{r['gold']}}}\n\\]"),
        ),
        ("raw_latex_statement", True, every, after_think(lambda r: f"The answer is {r['gold']}.")),
        ("answer_colon_line", True, every, lambda r: (f"{r['reason']}\n\nAnswer: {r['gold']}", False)),
        (
            "final_then_verify",
            True,
            every,
            lambda r: (
                think.format(**r)
                + f"So, the final answer is {math(r['gold'])}.\n\nLet me verify: 1 + 2 = 3, "
                + "and 7 - 4 = 3.",
                False,
            ),
        ),
        (
            "tag_inline_math",
            True,
            every,
            lambda r: (f"<think>{r['reason']}</think>\n<answer>\n{math(r['gold'])}\n</answer>", False),
        ),
        ("dollar_box", True, _num, after_think(lambda r: f"\\boxed{{\\${fmt_number(r['value'])}}}")),
        ("text_box", True, _num, after_think(lambda r: f"\\boxed{{\\text{{{fmt_number(r['value'])}}}}}")),
        ("unit_words", True, _num, after_think(lambda r: f"{fmt_number(r['value'])} minutes")),
        (
            "dollar_period",
            True,
            _num,
            lambda r: (f"{r['reason']}\nShe pays ${fmt_number(r['value'])}.", False),
        ),
        ("decimal_or_fraction", True, _num, after_think(lambda r: f"\\boxed{{{other_form(r['value'])}}}")),
        ("thousands", True, _num, after_think(lambda r: f"The answer is {thousands(r['value'])}.")),
        ("x_equals", True, _num, after_think(lambda r: f"\\boxed{{x = {fmt_number(r['value'])}}}")),
        # wrong, by construction
        ("boxed_wrong", False, every, after_think(lambda r: f"The answer is $\\boxed{{{r['wrong']}}}$.")),
        (
            "tag_wrong",
            False,
            every,
            lambda r: (f"<think>{r['reason']}</think> <answer>{r['wrong']}</answer>", False),
        ),
        ("statement_wrong", False, every, after_think(lambda r: f"The answer is {math(r['wrong'])}.")),
        (
            "two_boxes_last_wrong",
            False,
            every,
            lambda r: (
                think.format(**r)
                + f"I had $\\boxed{{{r['gold']}}}$, but on reflection $\\boxed{{{r['wrong']}}}$",
                False,
            ),
        ),
        (
            "statement_then_box_wrong",
            False,
            every,
            lambda r: (
                think.format(**r)
                + f"The answer is {math(r['gold'])}. "
                + f"Rechecking, I get $\\boxed{{{r['wrong']}}}$.",
                False,
            ),
        ),
        (
            "hedge",
            False,
            every,
            after_think(lambda r: f"The answer is {math(r['gold'])} or {math(r['wrong'])}."),
        ),
        (
            "right_only_in_reasoning",
            False,
            every,
            lambda r: (
                f"<think>\n{r['reason']}\nSo $\\boxed{{{r['gold']}}}$.\n</think>\n\n"
                + f"The answer is {math(r['wrong'])}.",
                False,
            ),
        ),
        (
            "cut_in_reasoning",
            False,
            every,
            lambda r: (
                f"<think>\n{r['reason']}\nSo far: $\\boxed{{{r['gold']}}}$, now let me double-check",
                False,
            ),
        ),
        (
            "cut_in_prefilled_reasoning",
            False,
            every,
            lambda r: (f"{r['reason']}\nSo far: $\\boxed{{{r['gold']}}}$, now let me double-check", True),
        ),
        ("cut_off_box", False, every, after_think(lambda r: f"The answer is $\\boxed{{{r['gold']}")),
        (
            "not_x_but_y",
            False,
            every,
            lambda r: (
                think.format(**r) + f"The answer is not {math(r['gold'])} but {math(r['wrong'])}.",
                False,
            ),
        ),
        (
            "empty_after_think",
            False,
            every,
            lambda r: (
                f"<think>\n{r['reason']}\nThe answer is $\\boxed{{{r['gold']}}}$.\n</think>\n\n",
                False,
            ),
        ),
    ]
    return out


def build(rows: list[dict]) -> list[dict]:
    samples = []
    for r in rows:
        for name, expected, applies, make in styles():
            if not applies(r):
                continue
            completion, prefilled = make(r)
            samples.append(
                {
                    "dataset": r["dataset"],
                    "idx": r["idx"],
                    "style": name,
                    "expected": expected,
                    "gold": r["gold"],
                    "completion": completion,
                    "prefilled": prefilled,
                }
            )
    return samples


# --------------------------------------------------------------------------- the three judges


def _mv_init():
    import logging

    logging.disable(logging.CRITICAL)


def _mv_one(item: tuple[str, str]) -> bool:
    from math_verify import parse, verify

    gold, completion = item
    try:
        return bool(verify(parse(f"${gold}$"), parse(completion)))
    except Exception:  # noqa: BLE001  a failure to parse or verify is a "not correct"
        return False


def math_verify_direct(samples: list[dict], workers: int) -> list[bool]:
    items = [(s["gold"], s["completion"]) for s in samples]
    with ProcessPoolExecutor(workers, initializer=_mv_init) as pool:
        return list(pool.map(_mv_one, items, chunksize=64))


def reward_path(samples: list[dict]) -> list[bool | None]:
    """The accuracy reward as `r1kit grpo` calls it, in batches like trl's."""
    from r1kit.rewards import resolve_reward

    fn = resolve_reward("accuracy", {"prefill": None}).fn
    out: list[bool | None] = []
    for i in range(0, len(samples), 64):
        batch = samples[i : i + 64]
        prompts = [
            ("User: solve it.\nAssistant: " + PREFILL) if s["prefilled"] else "User: solve it.\nAssistant:"
            for s in batch
        ]
        scores = fn(
            prompts=prompts,
            completions=[s["completion"] for s in batch],
            completion_ids=None,
            answer=[s["gold"] for s in batch],
            task=["math"] * len(batch),
            prefill=[PREFILL if s["prefilled"] else "" for s in batch],
        )
        out.extend(None if v is None else v >= 1.0 for v in scores)
    return out


def evaluate_path(samples: list[dict]) -> list[bool | None]:
    """r1kit.evaluation.score_rows, as `r1kit evaluate` scores samples (prefill already in the text)."""
    from r1kit.evaluation import score_rows

    rows = [
        {
            "prompt": "solve it",
            "answer": s["gold"],
            "task": "math",
            "prompt_index": i,
            "completion": (PREFILL + s["completion"]) if s["prefilled"] else s["completion"],
        }
        for i, s in enumerate(samples)
    ]
    return [r["correct"] for r in score_rows(rows)]


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)))
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_judge"))
    parser.add_argument("--markdown", action="store_true", help="print the per-style table as markdown")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    samples = []
    for rows in (
        gsm8k(args.data / "gsm8k_test.jsonl", args.limit),
        math500(args.data / "math500_test.jsonl", args.limit),
    ):
        wrong_answers(rows)
        samples.extend(build(rows))
    print(f"{len(samples)} completions, {len({s['style'] for s in samples})} styles")
    timings = {}
    t = time.perf_counter()
    mv = math_verify_direct(samples, args.workers)
    timings["math_verify_s"] = time.perf_counter() - t
    t = time.perf_counter()
    reward = reward_path(samples)
    timings["reward_s"] = time.perf_counter() - t
    t = time.perf_counter()
    evaluate = evaluate_path(samples)
    timings["evaluate_s"] = time.perf_counter() - t

    table: dict[tuple[str, str], Counter] = defaultdict(Counter)
    disagreements, judge_wrong = [], []
    for s, m, rw, ev in zip(samples, mv, reward, evaluate):
        if rw is not s["expected"]:
            judge_wrong.append(
                {
                    "dataset": s["dataset"],
                    "idx": s["idx"],
                    "style": s["style"],
                    "gold": s["gold"],
                    "expected": s["expected"],
                    "judge": rw,
                    "math_verify": m,
                    "completion_tail": s["completion"][-160:],
                }
            )
        key = (s["dataset"], s["style"])
        c = table[key]
        c["n"] += 1
        c["judge_right"] += rw is s["expected"]
        c["mv_right"] += m is s["expected"]
        c["reward_eq_evaluate"] += rw is ev
        c["unscorable"] += rw is None
        if rw is not m:
            c["disagree"] += 1
            c["judge_right_in_disagreement"] += rw is s["expected"]
            disagreements.append(
                {
                    "dataset": s["dataset"],
                    "idx": s["idx"],
                    "style": s["style"],
                    "gold": s["gold"],
                    "expected": s["expected"],
                    "judge": rw,
                    "math_verify": m,
                    "right": "judge"
                    if rw is s["expected"]
                    else ("math-verify" if m is s["expected"] else "neither"),
                    "completion_tail": s["completion"][-160:],
                }
            )
    with (args.out / "disagreements.jsonl").open("w") as f:
        for d in disagreements:
            f.write(json.dumps(d) + "\n")
    total = Counter()
    for c in table.values():
        total.update(c)
    summary = {
        "completions": total["n"],
        "styles": len({s for _, s in table}),
        "judge_right": total["judge_right"] / total["n"],
        "math_verify_right": total["mv_right"] / total["n"],
        "reward_equals_evaluate": total["reward_eq_evaluate"] / total["n"],
        "unscorable": total["unscorable"],
        "disagreements": total["disagree"],
        "judge_right_in_disagreements": total["judge_right_in_disagreement"],
        "judge_wrong_overall": total["n"] - total["judge_right"],
        "judge_wrong": judge_wrong[:200],
        **{k: round(v, 1) for k, v in timings.items()},
        "per_style": {f"{d}/{s}": dict(c) for (d, s), c in sorted(table.items())},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "per_style"}, indent=2))
    if args.markdown:
        print(
            "\n| dataset | style | n | judge right | math-verify right | disagree | judge right there | reward = evaluate |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for (d, s), c in sorted(
            table.items(),
            key=lambda kv: (kv[0][0], list(dict.fromkeys(x[0] for x in styles())).index(kv[0][1])),
        ):
            print(
                f"| {d} | {s} | {c['n']} | {c['judge_right']} | {c['mv_right']} | {c['disagree']} | "
                f"{c['judge_right_in_disagreement']} | {c['reward_eq_evaluate']} |"
            )


if __name__ == "__main__":
    main()
