"""R1 rejection filters (r1kit/filters.py) and the sample selection / pairing logic (r1kit/sampling.py),
on hand-made texts and rows with hand-computed expectations."""

import pytest

from r1kit.errors import R1kitError
from r1kit.filters import (
    FilterSettings,
    filter_failures,
    first_failing_filter,
    has_code_block,
    longest_paragraph,
)
from r1kit.sampling import build_pairs, pass_rates, select, to_messages

ENGLISH = (
    "<think>First add the ones digits and carry the one, then add the tens digits.</think><answer>12</answer>"
)
MIXED = (
    "<think>First add the ones digits 然后我们把十位数字加起来并检查结果是否正确</think><answer>12</answer>"
)
REPEATED = "<think>" + "add the digits again.\n\n" * 30 + "</think><answer>12</answer>"  # short paragraphs
CODE = "<think>Let me compute.\n```python\nprint(5+7)\n```\n</think><answer>12</answer>"


def test_longest_paragraph_in_chars_and_words():
    text = "one two three\n\nfour five\n  \nsix seven eight nine"
    assert longest_paragraph(text, "chars") == len("six seven eight nine")  # 20
    assert longest_paragraph(text, "words") == 4
    assert longest_paragraph("", "chars") == 0


def test_code_block_detection():
    assert has_code_block(CODE)
    assert has_code_block("text\n   ```\nx\n```")
    assert not has_code_block("inline `x` and ``y`` only")


def test_each_filter_catches_its_case_and_passes_clean_text():
    texts = [ENGLISH, MIXED, "<think>" + "x" * 200 + "</think>", CODE, REPEATED, CODE]
    tasks = ["math", "math", "math", "math", "math", "code"]
    langs = ["en", "en", None, None, None, None]
    settings = FilterSettings(max_paragraph=150)  # only the 215-character paragraph is too long
    fails = filter_failures(texts, tasks, langs, settings)
    assert fails["language"] == [False, True, False, False, False, False]  # only rows with a target language
    assert fails["paragraph"] == [False, False, True, False, False, False]
    assert fails["code_block"] == [False, False, False, True, False, False]  # code tasks may hold code
    assert fails["repetition"] == [False, False, False, False, True, False]
    # first failing filter in R1's order: language, paragraph, code_block, repetition
    assert first_failing_filter(fails, 0) is None
    assert first_failing_filter(fails, 1) == "language"
    assert first_failing_filter(fails, 2) == "paragraph"
    assert first_failing_filter(fails, 3) == "code_block"
    assert first_failing_filter(fails, 4) == "repetition"
    assert first_failing_filter(fails, 5) is None


def test_global_lang_applies_to_rows_without_one_and_filters_can_be_disabled():
    fails = filter_failures([MIXED], ["math"], [None], FilterSettings(lang="en"))
    assert fails["language"] == [True]
    off = FilterSettings(language=False, paragraph=False, code_block=False, repetition=False)
    assert filter_failures([MIXED, CODE, REPEATED], ["math"] * 3, ["en"] * 3, off) == {}


def test_filter_settings_validation():
    with pytest.raises(R1kitError, match="min-language-share"):
        FilterSettings(min_language_share=1.5).validate()
    with pytest.raises(R1kitError, match="min-repetition-reward"):
        FilterSettings(min_repetition_reward=0.2).validate()


def _rows():
    # prompt 0: tokens 30 (wrong), 20 (right), 12 (right), 12 (right, later); prompt 1: all wrong
    spec = [
        (0, 0, 30, False),
        (0, 1, 20, True),
        (0, 2, 12, True),
        (0, 3, 12, True),
        (1, 0, 5, False),
        (1, 1, 9, False),
    ]
    return [
        {
            "prompt_index": p,
            "sample_index": s,
            "prompt": f"q{p}",
            "completion": f"c{p}{s}",
            "num_tokens": n,
            "correct": c,
            "answer": str(p),
        }
        for p, s, n, c in spec
    ]


def test_keep_policies():
    rows = _rows()
    eligible = [True] * len(rows)
    assert select(rows, eligible, "all-correct") == [False, True, True, True, False, False]
    assert select(rows, eligible, "shortest-correct") == [
        False,
        False,
        True,
        False,
        False,
        False,
    ]  # tie -> earlier
    assert select(rows, eligible, "first-correct") == [False, True, False, False, False, False]
    assert select(rows, eligible, "all") == eligible
    # a filtered-out shortest sample gives way to the next shortest correct one
    eligible[2] = False
    assert select(rows, eligible, "shortest-correct") == [False, False, False, True, False, False]
    with pytest.raises(R1kitError, match="keep policy"):
        select(rows, eligible, "longest")


def test_pass_rates():
    rates = pass_rates(_rows())
    assert [(r["prompt"], r["pass_rate"], r["num_correct"], r["k"]) for r in rates] == [
        ("q0", 0.75, 3, 4),
        ("q1", 0.0, 0, 2),
    ]
    unscorable = _rows()[:2]
    unscorable[0]["correct"] = None
    assert pass_rates(unscorable)[0]["pass_rate"] is None


def test_build_pairs_by_hand():
    rows = _rows()
    # chosen for q0: sample 2 (12 tokens); 1.5 x 12 = 18 -> sample 1 (20) is "long", sample 3 (12) is not
    pairs, stats = build_pairs(rows, length_ratio=1.5)
    assert [
        (p["chosen"], p["rejected"], p["reason"], p["chosen_tokens"], p["rejected_tokens"]) for p in pairs
    ] == [("c02", "c00", "wrong", 12, 30), ("c02", "c01", "long", 12, 20)]
    assert stats["skipped_no_correct"] == 1 and stats["prompts_with_pairs"] == 1 and stats["pairs"] == 2
    # a ratio of 2 keeps sample 1 (20 <= 24) out of the rejected set
    pairs, _ = build_pairs(rows, length_ratio=2.0)
    assert [p["rejected"] for p in pairs] == ["c00"]
    # cap per prompt, and the paper's stricter "wrong longer" reading
    assert len(build_pairs(rows, max_pairs_per_prompt=1)[0]) == 1
    rows[0]["num_tokens"] = 10  # the wrong answer is now shorter than the chosen
    assert [p["reason"] for p in build_pairs(rows, wrong_longer_only=True)[0]] == ["long"]


def test_messages_from_text_and_chat_prompts():
    assert to_messages("q", "a") == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    assert (
        to_messages(chat, "a")[-1] == {"role": "assistant", "content": "a"}
        and len(to_messages(chat, "a")) == 3
    )
