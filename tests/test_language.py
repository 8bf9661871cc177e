"""Language-consistency reward: unit cases and the 11 MGSM languages."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

import pytest

from r1kit.errors import R1kitError
from r1kit.rewards import cot_text, language_reward, language_share, make_language_reward
from r1kit.rewards.language import _words, normalize_lang

MGSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "mgsm.jsonl"


@pytest.fixture(scope="module")
def mgsm() -> dict[str, list[str]]:
    if not MGSM.exists():
        pytest.skip(f"MGSM not found at {MGSM}")
    by_lang: dict[str, list[str]] = defaultdict(list)
    with MGSM.open() as f:
        for line in f:
            row = json.loads(line)
            by_lang[row["lang"]].append(row["question"])
    return by_lang


def test_cot_text():
    assert cot_text("<think>abc</think> answer") == "abc"
    assert cot_text("prefilled reasoning</think> answer") == "prefilled reasoning"
    assert cot_text("<think>cut off") == "cut off"
    assert cot_text("no tags") == "no tags"


def test_words_are_counted_per_script():
    # 6 English words; digits, LaTeX commands, single-letter variables and symbols are neutral
    assert language_share("We compute \\frac{1}{2} + x = 3.5 then add 7 to it", "en") == 1.0
    assert language_share("12 + 7 = 19", "en") is None  # nothing to count
    assert language_share("我们把两个数相加", "zh") == 1.0  # 8 characters, each a word
    assert language_share("我们 add 它们", "zh") == pytest.approx(4 / 5)
    assert language_share("Сложим два числа and done", "ru") == pytest.approx(3 / 5)
    assert language_share("Let us add the numbers", "zh") == 0.0


def test_han_is_japanese_only_in_sentences_with_kana():
    japanese, chinese = "二つの数を足します。", "我们把两个数相加。"
    assert language_share(japanese, "ja") == 1.0
    assert language_share(japanese, "zh") == 0.0
    assert language_share(chinese, "ja") == 0.0
    assert language_share(japanese + chinese, "ja") == pytest.approx(9 / 17)


def test_reward_uses_lang_column_or_fixed_lang():
    comps = [
        "<think>Wir addieren die beiden Zahlen und teilen dann durch zwei</think> 4",
        [
            {
                "role": "assistant",
                "content": "<think>Nous additionnons les deux nombres puis divisons</think>4",
            }
        ],
    ]
    assert language_reward(prompts=["q", "q"], completions=comps, lang=["de", "fr"]) == [1.0, 1.0]
    assert language_reward(prompts=["q", "q"], completions=comps, lang=["en", None]) == [0.0, None]
    english_only = make_language_reward(lang="en-US")
    assert english_only(prompts=["q"], completions=comps[:1]) == [0.0]
    assert language_reward.__name__ == "language"
    with pytest.raises(R1kitError, match="lang"):
        language_reward(prompts=["q"], completions=["x"])
    with pytest.raises(R1kitError, match="not supported"):
        make_language_reward(lang="klingon")
    assert normalize_lang("zh-CN") == "zh" and normalize_lang("PT_br") == "pt"


def test_long_cot_is_fast():
    cot = ("Let us add the numbers carefully and check each step again. " * 400)[:20000]
    start = time.perf_counter()
    assert language_share(cot, "en") == 1.0
    assert language_share(cot, "zh") == 0.0
    assert time.perf_counter() - start < 1.0


def test_mgsm_questions_score_high_in_their_language(mgsm):
    means = {lang: statistics.mean(language_share(q, lang) for q in qs) for lang, qs in mgsm.items()}
    assert set(means) == {"en", "es", "fr", "de", "ru", "zh", "ja", "th", "sw", "bn", "te"}
    # measured (window 5): en .999 es .992 fr .995 de .998 ru .998 zh .998 ja .999 th .999 sw .998 bn .997 te .999
    assert all(m > 0.98 for m in means.values()), means


def test_mgsm_mixed_texts_score_the_word_share(mgsm):
    rng = random.Random(0)
    langs = sorted(mgsm)
    errors = []
    for a in langs:
        for b in langs:
            if a == b:
                continue
            for _ in range(3):
                qa, qb = rng.choice(mgsm[a]), rng.choice(mgsm[b])
                na, nb = len(_words(qa)), len(_words(qb))
                got = language_share(cot_text(f"<think>{qa}\n{qb}</think>"), a)
                errors.append(abs(got - na / (na + nb)))
    # measured on these 330 texts: mean abs error ~0.005, max ~0.1
    assert statistics.mean(errors) < 0.02
    assert max(errors) < 0.2
