"""pass@k (unbiased estimator), R1's pass@1 and cons@k against hand-computed values."""

from math import comb

import pytest

from r1kit.errors import R1kitError
from r1kit.metrics import cons_at_k, majority_index, pass_at_1_mean, pass_at_k, summarize_samples


def test_pass_at_k_hand_values():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 10, 3) == 1.0
    assert pass_at_k(10, 8, 3) == 1.0  # only 2 wrong samples: any 3 contain a correct one


def test_pass_at_1_is_fraction_correct():
    for n in (1, 3, 16):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_matches_binomials_for_large_n():
    # the product form must agree with the exact ratio where the binomials are huge
    n, c, k = 200, 37, 64
    exact = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12)


def test_pass_at_k_rejects_bad_input():
    with pytest.raises(R1kitError, match="pass@8 needs at least 8 samples"):
        pass_at_k(4, 1, 8)
    with pytest.raises(R1kitError):
        pass_at_k(4, 5, 1)


def test_pass_at_1_mean():
    assert pass_at_1_mean([True, False, True, True]) == 0.75
    with pytest.raises(R1kitError):
        pass_at_1_mean([])


def _key(text: str) -> str:  # a stand-in answer_key for the vote logic alone
    return text.strip().lower()


def test_cons_at_k_majority_and_ties():
    assert cons_at_k(["7", "8", "7"], [True, False, True], key=_key) is True
    assert cons_at_k(["7", "8", "8"], [True, False, False], key=_key) is False
    # tie 1-1: the answer seen first wins
    assert cons_at_k(["8", "7"], [False, True], key=_key) is False
    assert cons_at_k(["7", "8"], [True, False], key=_key) is True
    # None does not vote: "8" has one vote, three Nones none
    assert cons_at_k([None, None, "8", None], [False, False, True, False], key=_key) is True
    assert cons_at_k([None, None], [False, False], key=_key) is False
    assert majority_index([" A", "b", "a"], key=_key) == 0


def test_cons_at_k_empty_answers_do_not_vote():
    # "$$" and blank answers have an empty key: two of them must not outvote the one real answer
    assert cons_at_k(["$$", "$$", "7"], [False, False, True]) is True
    assert cons_at_k(["", "  ", "7"], [False, False, True]) is True
    assert majority_index(["$$", "<think>cut off"]) is None
    assert cons_at_k(["$$", "$$"], [False, False]) is False


def test_cons_at_k_groups_equivalent_answers():
    # "0.5" and "1/2" are one answer under r1kit.answers.answer_key: its 2 votes beat the 1 vote of
    # "0.25", which comes first
    answers = ["0.25", "0.5", "1/2"]
    assert cons_at_k(answers, [False, True, True]) is True
    # and \frac{1}{2} joins them too
    assert cons_at_k(["3", "\\frac{1}{2}", "3", "0.5", "1/2"], [False, True, False, True, True]) is True


def test_summarize_samples_hand_rows():
    def row(p, correct, extracted, tokens, trunc=False, fmt=True):
        return {
            "prompt_index": p,
            "correct": correct,
            "extracted": extracted,
            "num_tokens": tokens,
            "truncated": trunc,
            "format_ok": fmt,
        }

    rows = [
        # prompt 0: 2 of 4 correct, vote "5" (2) vs "6" (1) -> correct
        row(0, True, "5", 10),
        row(0, False, "6", 20),
        row(0, True, "5", 30),
        row(0, False, None, 40, True, False),
        # prompt 1: 0 of 4 correct
        row(1, False, "1", 10),
        row(1, False, "2", 10),
        row(1, False, "1", 10),
        row(1, False, "3", 10),
        # prompt 2: unparseable gold -> excluded from rates, still counted in tokens
        row(2, None, "x", 50),
        row(2, None, "x", 50),
        row(2, None, "x", 50),
        row(2, None, "x", 50),
    ]
    m = summarize_samples(rows, pass_k=[1, 2, 4], key=_key)
    assert m["num_prompts"] == 2 and m["excluded_unparseable_gold"] == 1 and m["num_samples"] == 4
    assert m["pass@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["accuracy"] == m["pass@1"]
    # prompt 0: 1 - C(2,2)/C(4,2) = 1 - 1/6 ; prompt 1: 0
    assert m["pass@2"] == pytest.approx((5 / 6) / 2)
    assert m["pass@4"] == pytest.approx(0.5)
    assert m["cons@4"] == pytest.approx(0.5)
    assert m["mean_tokens"] == pytest.approx((100 + 40 + 200) / 12)
    assert m["median_tokens"] == pytest.approx(25.0)  # sorted: 10 x5, 20, 30, 40, 50 x4 -> (20 + 30) / 2
    assert m["truncation_rate"] == pytest.approx(1 / 12)
    assert m["format_rate"] == pytest.approx(11 / 12)
