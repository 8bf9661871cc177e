"""A reward function of your own, passed to r1kit by dotted path.

`digit_credit` gives partial credit on integer answers: the share of digit positions, aligned
from the units digit, where the completion's answer agrees with the gold answer, over the longer
of the two numbers. So for gold 861: "861" -> 1.0, "851" -> 2/3, "61" -> 2/3, "1861" -> 3/4,
"-861" or no answer -> 0.0. It is a denser signal than 0/1 accuracy on the built-in arithmetic
task; an illustration, not a reward from the papers.

The contract is trl's reward signature, which every r1kit reward follows:

    f(prompts=..., completions=..., completion_ids=..., **columns) -> list[float | None]

`completions` are strings, or lists of chat messages when the prompts are chat messages; every
dataset column arrives as a keyword argument holding one value per completion (here `answer`,
the gold). Return None for a completion the reward cannot judge: trl leaves it out of the
weighted sum.

Use it wherever a stage takes `--reward` (grpo, rejection-sample, dpo-shorten), as
`module:function=weight`. The module must be importable: run from the repository root, where
`python -m r1kit` already has the current folder on sys.path and the `r1kit` command needs
PYTHONPATH=. (an installed package of your own works from anywhere):

    r1kit data arithmetic --output runs/data --train-size 200 --test-size 20 --digits 2
    PYTHONPATH=. r1kit grpo --model tiny --data runs/data --output runs/grpo-digits \\
        --reward accuracy=1 --reward examples.custom_reward:digit_credit=0.5 \\
        --num-generations 4 --prompts-per-step 2 --max-steps 2 --max-completion-length 64

trl logs it as `rewards/digit_credit/mean` in runs/grpo-digits/metrics.jsonl. Running this file
scores a few hand-written completions and prints one JSON line:

    python examples/custom_reward.py
"""

from __future__ import annotations

import json
import re

from r1kit.answers import extract_answer, last_number_text

_INTEGER = re.compile(r"-?\d+")


def _reply_text(completion) -> str:
    """The generated text, whether trl passes a string or chat messages (the reply is last)."""
    if isinstance(completion, list):
        return str(completion[-1].get("content", "")) if completion else ""
    return str(completion)


def credit(text: str, gold) -> float | None:
    """Digit-position agreement of the answer in `text` with the integer `gold` (None if gold is
    not an integer: such a row cannot be judged)."""
    gold = "" if gold is None else str(gold).strip().replace(",", "")
    if not _INTEGER.fullmatch(gold):
        return None
    region = extract_answer(text)  # the <answer> tag, \boxed{} or the text after </think>
    guess = last_number_text(region) if region else None
    if guess is None or not _INTEGER.fullmatch(guess) or guess.startswith("-") != gold.startswith("-"):
        return 0.0
    g, p = gold.lstrip("-")[::-1], guess.lstrip("-")[::-1]  # units digit first
    agree = sum(1 for a, b in zip(g, p) if a == b)
    return agree / max(len(g), len(p))


def digit_credit(
    prompts=None, completions=(), completion_ids=None, answer=None, **kwargs
) -> list[float | None]:
    """trl-signature reward: `credit` of each completion against its row's `answer`."""
    golds = answer if answer is not None else [None] * len(completions)
    return [credit(_reply_text(c), gold) for c, gold in zip(completions, golds)]


if __name__ == "__main__":
    completions = [
        "<think>\n2+9+0=11 w1 c1\n...</think><answer>861</answer>",
        "<think>\n...</think><answer>851</answer>",
        "<think>\n...</think><answer>61</answer>",
        "<think>\n...</think><answer>1861</answer>",
        [{"role": "assistant", "content": "<think>\n...</think><answer>-861</answer>"}],
        "<think>\nthe reasoning was cut off before an answer",
    ]
    scores = digit_credit(
        prompts=["What is 482+379?"] * len(completions),
        completions=completions,
        answer=["861"] * len(completions),
    )
    print(json.dumps({"gold": "861", "scores": scores}))
