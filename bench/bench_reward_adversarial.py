"""Time of each rule reward on 1 MB adversarial completions (issue 14: every reward returns within a bound).

Each reward is resolved through the registry (so under its guard) and called as `r1kit grpo`
calls it: keyword arguments prompts=, completions=, completion_ids=None and the dataset columns
(answer, lang, tests). Every input is about 1 MB of text built to hit the reward's worst case:
fences that never close (the old code-block regex rescanned the rest of the text from each one),
expressions nested past the parser's limits, tags repeated or nested, one endless word, many
distinct words, mixed scripts. The code reward also gets a fenced 1 MB program (refused as too
large) and a deep expression small enough to be run (the child's compiler gives up).

The accuracy reward's answer extraction belongs to the one-judge work (issue 14 item 2 is
shared): it is measured here as it is on this branch.

Run:  .venv/bin/python bench/bench_reward_adversarial.py [--mb 1.0] [--repeat 3]
Prints one JSON object: {reward: {input: median seconds of one call}} and the scores. Each reward
is warmed up with one small call (model loads, helper processes) and every timed call gets a
fresh string, so that no cache answers.
"""

from __future__ import annotations

import argparse
import json
import time


def inputs(size: int) -> dict[str, str]:
    def fill(unit: str) -> str:
        return unit * max(1, size // len(unit))

    return {
        "unclosed ```python fences": fill("```python\n"),
        "fence pairs": fill("```python\nx = 1\n```\n"),
        "deep unary (fenced, 100 KB)": "```python\nx = " + "-" * 100_000 + "1\n```",
        "1 MB program": "```python\n" + fill("x = 1\n") + "```",
        "nested brackets, no fence": fill("(["),
        "repeated <think>": fill("<think>"),
        "tags once, whitespace between": "<think>x</think><answer>y</answer>" + " " * size + "z",
        "nested \\boxed{": fill("\\boxed{"),
        "digits": fill("1"),
        "one long word": fill("a"),
        "english prose": fill("the quick brown fox jumps over the lazy dog "),
        "mixed scripts": fill("中文 text русский かな "),
    }


REWARDS = {
    "code": [
        "unclosed ```python fences",
        "fence pairs",
        "deep unary (fenced, 100 KB)",
        "1 MB program",
        "nested brackets, no fence",
        "english prose",
    ],
    "accuracy": [
        "nested \\boxed{",
        "digits",
        "repeated <think>",
        "nested brackets, no fence",
        "english prose",
        "mixed scripts",
    ],
    "format": [
        "repeated <think>",
        "tags once, whitespace between",
        "nested brackets, no fence",
        "english prose",
    ],
    "think_format": ["repeated <think>", "tags once, whitespace between", "english prose"],
    "language": ["repeated <think>", "english prose", "mixed scripts", "one long word", "digits"],
    "repetition": ["english prose", "mixed scripts", "digits", "one long word", "repeated <think>"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from r1kit.rewards import resolve_reward

    texts = inputs(int(args.mb * (1 << 20)))
    out: dict = {"mb": args.mb, "seconds": {}, "scores": {}}
    columns = {"answer": ["42"], "lang": ["en"], "tests": ["assert f(1) == 2"], "entry_point": [None]}
    for name, keys in REWARDS.items():
        fn = resolve_reward(name, {"lang": "en"}).fn
        # one small call first: model loads and helper processes are not what is measured
        fn(prompts=["Solve it."], completions=["<think>we add</think> 42"], completion_ids=None, **columns)
        out["seconds"][name], out["scores"][name] = {}, {}
        for key in keys:
            times = []
            for i in range(args.repeat):
                text = texts[key] + " " * i  # a new string each time: no cache answers twice
                start = time.perf_counter()
                score = fn(prompts=["Solve it."], completions=[text], completion_ids=None, **columns)
                times.append(time.perf_counter() - start)
            out["seconds"][name][key] = round(sorted(times)[len(times) // 2], 3)
            out["scores"][name][key] = score[0]
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
