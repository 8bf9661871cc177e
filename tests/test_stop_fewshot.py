"""Stop strings, few-shot prompts and last-number extraction: what base models (Gemma 3 270M) need."""

import json

import pytest

from r1kit.answers import check_answer, extract_answer
from r1kit.data.templates import (
    FEW_SHOT_STOP,
    few_shot_example,
    few_shot_examples,
    render_few_shot,
)
from r1kit.errors import R1kitError
from r1kit.generation import SamplingParams, get_backend
from r1kit.generation.base import cut_at_stop
from r1kit.models import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer()
    return build_tiny_model(tok, seed=0), tok


# ----------------------------------------------------------------------------- stop strings


def test_cut_at_stop_takes_the_earliest_of_several():
    assert cut_at_stop("abc Question: x\n\nQ2", ["\n\n", "Question:"]) == ("abc ", 4)
    assert cut_at_stop("no stop here", ["Question:"]) == ("no stop here", None)
    assert cut_at_stop("Question: at once", ["Question:"]) == ("", 0)


def test_sampling_params_stop_validation():
    assert SamplingParams(stop="Question:").stop == ["Question:"]
    assert SamplingParams().stop == []
    with pytest.raises(R1kitError, match="non-empty"):
        SamplingParams(stop=["ok", ""])


def test_hf_stop_string_cuts_text_and_counts_tokens_to_the_stop(tiny):
    model, tok = tiny
    backend = get_backend("hf", model, tok)
    prompt = "123+4567="
    (free,) = backend.generate([prompt], SamplingParams(greedy=True, max_new_tokens=16))[0]
    # The seeded tiny model writes twelve "=" then "~"s; one character is one token.
    assert free.text == "=" * 12 + "~" * 4 and free.num_tokens == 16 and free.truncated

    widths = []
    original = model.generate

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        widths.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    model.generate = spy
    try:
        (cut,) = backend.generate(
            [prompt], SamplingParams(greedy=True, max_new_tokens=16, stop=["zz", "=~"])
        )[0]
    finally:
        del model.generate
    # text stops before "=~" (index 11); tokens run up to and including the "~" at index 12
    assert cut.text == "=" * 11
    assert cut.num_tokens == 13 and cut.token_ids == free.token_ids[:13]
    assert cut.truncated is False
    assert widths == [13]  # generate itself stopped there, it did not run to 16 tokens


def test_hf_stop_in_a_batch_and_with_prefill(tiny):
    model, tok = tiny
    backend = get_backend("hf", model, tok)
    prompts = ["7+5=", "123+4567=", "1"]
    # After the prefill "ab" the seeded tiny model writes "b"*10, "b"*10 and "bb" + "e"*8.
    out = backend.generate(prompts, SamplingParams(greedy=True, max_new_tokens=10, stop=["be"]), prefill="ab")
    (a,), (b,), (c,) = out
    assert (a.text, a.num_tokens, a.truncated) == ("ab" + "b" * 10, 10, True)  # no stop: unchanged
    assert (b.text, b.num_tokens, b.truncated) == ("ab" + "b" * 10, 10, True)
    # "be" starts at generated index 1: the prefill stays, the stop string goes, tokens "b", "b", "e" count
    assert (c.text, c.num_tokens, c.truncated) == ("abb", 3, False)


# ----------------------------------------------------------------------------- few-shot prompts

GSM_ROWS = [
    {
        "question": "Tom has 3 apples and buys 4 more. How many apples? ",
        "answer": "Tom has 3+4 = <<3+4=7>>7 apples.\nSo he has 7.\n#### 7",
    },
    {"question": "A pen costs $1,200. Two pens?", "answer": "2 * 1200 = <<2*1200=2400>>2400\n#### 2,400"},
]


def test_render_few_shot_exact_string():
    examples = [few_shot_example(r["question"], r["answer"]) for r in GSM_ROWS]
    assert examples[0] == {
        "question": "Tom has 3 apples and buys 4 more. How many apples?",
        "solution": "Tom has 3+4 = 7 apples. So he has 7.",
        "answer": "7",
    }
    assert render_few_shot(examples, "What is 2+2?") == (
        "Question: Tom has 3 apples and buys 4 more. How many apples?\n"
        "Answer: Tom has 3+4 = 7 apples. So he has 7. The answer is 7.\n\n"
        "Question: A pen costs $1,200. Two pens?\n"
        "Answer: 2 * 1200 = 2400 The answer is 2400.\n\n"
        "Question: What is 2+2?\n"
        "Answer:"
    )
    # an example without a worked solution; no examples; the stop string it pairs with
    assert render_few_shot([few_shot_example("1+1?", "", "2")], "Q") == (
        "Question: 1+1?\nAnswer: The answer is 2.\n\nQuestion: Q\nAnswer:"
    )
    assert render_few_shot([], " Q ") == "Question: Q\nAnswer:"
    assert FEW_SHOT_STOP == "Question:"


def test_few_shot_examples_take_the_first_rows_and_skip_evaluated_questions():
    rows = GSM_ROWS + [{"problem": "x", "solution": "It is 5.", "answer": "5"}]
    got = few_shot_examples(rows, 2, exclude=["Tom has 3 apples and buys 4 more. How many apples?"])
    assert [e["answer"] for e in got] == ["2400", "5"]
    assert got[1] == {"question": "x", "solution": "It is 5.", "answer": "5"}
    with pytest.raises(R1kitError, match="only 1 usable"):
        few_shot_examples(GSM_ROWS[:1], 2)


def test_evaluate_builds_few_shot_prompts_from_the_train_file(shared_data, tmp_path):
    from r1kit.evaluation import load_eval_dataset
    from r1kit.stages.evaluate import Config

    train = shared_data / "gsm8k_train.jsonl"
    cfg = Config(
        model=["tiny"],
        data=str(shared_data / "gsm8k_test.jsonl"),
        task="gsm8k",
        limit=3,
        few_shot=2,
        few_shot_data=str(train),
        stop=["Question:"],
        extract="last_number",
        greedy=True,
        output=str(tmp_path / "out"),
    )
    ds = load_eval_dataset(cfg, "raw")
    first = json.loads(train.open().readline())
    head = (
        f"Question: {first['question']}\nAnswer: Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 "
        "clips altogether in April and May. The answer is 72.\n\n"
    )
    for row in ds:
        assert row["prompt"].startswith(head)
        assert row["prompt"].endswith(f"Question: {row['question']}\nAnswer:")
        assert row["prompt"].count("Question: ") == 3 and "<<" not in row["prompt"]

    with pytest.raises(R1kitError, match="drop --template chat"):  # a Config built in Python is validated
        Config(
            model=["tiny"],
            data=str(shared_data / "gsm8k_test.jsonl"),
            few_shot=2,
            template="chat",
            output=str(tmp_path / "o2"),
        )
    no_train = Config(
        model=["tiny"],
        data=str(shared_data / "gsm8k_test.jsonl"),
        few_shot=2,
        limit=2,
        output=str(tmp_path / "o3"),
    )
    with pytest.raises(R1kitError, match="no train split"):
        load_eval_dataset(no_train, "raw")


# ----------------------------------------------------------------------------- last number


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She pays 3 * 400 = $1,200, plus 34. The answer is 1,234.", "1234"),
        ("The temperature drops 10-3 = 7 degrees, so it is -5 now.", "-5"),
        ("Each costs $2.50", "2.50"),
        ("She gets 3/4 of it", "3/4"),
        ("10-3", "3"),
        ("no digits at all", None),
    ],
)
def test_last_number_extraction(text, expected):
    assert extract_answer(text, "last_number") == expected


def test_check_answer_with_last_number():
    assert check_answer(" So 617 + 617 = 1,234. The answer is 1,234.", "1234", extract="last_number") is True
    assert check_answer("It costs 2.50 dollars", "2.5", extract="last_number") is True
    assert check_answer("it went down to -5", "5", extract="last_number") is False
    assert check_answer("no number", "5", extract="last_number") is False
