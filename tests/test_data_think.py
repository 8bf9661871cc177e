"""`r1kit data think`: worked-answer datasets -> cold-start SFT rows in the R1-Zero format, through the
real command line; the format reward and the judge accept every row; `r1kit sft` trains on it."""

import json

import pytest
from conftest import run_cli

from r1kit.answers import check_answer
from r1kit.data.templates import render_prompt
from r1kit.rewards.format import format_reward

GSM = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
        "altogether in April and May.\n#### 72",
    },
    {
        "question": "A shop sells 1,000 pens a day for 2 days. How many pens?",
        "answer": "It sells 1,000 * 2 = <<1000*2=2000>>2,000 pens.\n\n#### 2,000",
    },
    {"question": "No final answer here?", "answer": "Some steps but no marker."},
]


def load_rows(out, split="train"):
    from datasets import load_from_disk

    return load_from_disk(str(out / "data"))[split].to_list()


def test_gsm8k_rows_become_r1_zero_sft_data(tmp_path):
    src = tmp_path / "gsm8k_train.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in GSM))
    out = tmp_path / "think"
    res = run_cli("data", "think", "--data", src, "--output", out)
    assert res.returncode == 0, res.stderr
    assert "2 rows written, 1 skipped" in res.stdout
    rows = load_rows(out)
    assert [r["answer"] for r in rows] == ["72", "2000"]
    assert rows[0]["completion"] == (
        " <think>\nNatalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May."
        "\n</think>\n<answer> 72 </answer>"
    )
    assert (
        rows[1]["completion"]
        == " <think>\nIt sells 1,000 * 2 = 2,000 pens.\n</think>\n<answer> 2000 </answer>"
    )
    for r in rows:
        assert set(r) == {"question", "answer", "completion", "prompt", "task"}
        assert r["prompt"] == render_prompt("r1-zero", r["question"]) and r["task"] == "numeric"
        assert "<<" not in r["completion"] and "####" not in r["completion"]
    completions = [r["completion"] for r in rows]
    assert format_reward(prompts=[r["prompt"] for r in rows], completions=completions) == [1.0, 1.0]
    assert all(check_answer(r["completion"], r["answer"], kind="numeric") for r in rows)
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"rows": 2, "skipped": 1, "source_rows": 3}.items() <= log[-1].items()

    # `r1kit sft` trains on the output as it is (prompt/completion columns, loss on the completion)
    sft = run_cli(
        "sft",
        "--model",
        "tiny",
        "--data",
        out,
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--logging-steps",
        "1",
        "--output",
        tmp_path / "sft",
    )
    assert sft.returncode == 0, sft.stderr
    steps = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    losses = [s["loss"] for s in steps if "loss" in s]
    assert len(losses) == 2 and all(3 < x < 6 for x in losses)  # ~ln(106): an untrained char-level model


def test_generic_columns_chat_template_and_errors(tmp_path):
    src = tmp_path / "math.jsonl"
    rows = [
        {
            "problem": "Half of one?",
            "solution": "One split in two is $\\frac{1}{2}$.",
            "final": "\\frac{1}{2}",
        },
        {"problem": "What is 3 times 4?", "solution": "3 x 4 = 12\n", "final": "12"},
        {"problem": "Broken", "solution": "", "final": "1"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "think"
    res = run_cli(
        "data",
        "think",
        "--data",
        src,
        "--question-field",
        "problem",
        "--solution-field",
        "solution",
        "--answer-field",
        "final",
        "--template",
        "chat",
        "--output",
        out,
    )
    assert res.returncode == 0, res.stderr
    got = load_rows(out)
    assert [r["answer"] for r in got] == ["\\frac{1}{2}", "12"] and [r["task"] for r in got] == [
        "math",
        "numeric",
    ]
    assert (
        got[0]["completion"]
        == "<think>\nOne split in two is $\\frac{1}{2}$.\n</think>\n<answer> \\frac{1}{2} </answer>"
    )
    assert got[0]["messages"] == [
        {"role": "user", "content": "Half of one?"},
        {"role": "assistant", "content": got[0]["completion"]},
    ]
    assert format_reward(completions=[r["completion"] for r in got]) == [1.0, 1.0]
    assert check_answer(got[0]["completion"], "0.5", kind="math") is True

    bad = run_cli("data", "think", "--data", src, "--output", tmp_path / "bad")
    assert bad.returncode == 2 and not (tmp_path / "bad").exists()
    assert bad.stderr.count("\n") == 1 and "has no column(s) 'question', 'answer'" in bad.stderr
    assert "--question-field" in bad.stderr


@pytest.mark.parametrize("template, lead", [("raw", "\n"), ("r1-zero", " ")])
def test_think_record_leads_the_completion_by_template(template, lead):
    from r1kit.data.think import think_record

    rec = think_record("Q?", "a\n#### 5", template=template)
    assert rec["completion"] == lead + "<think>\na\n</think>\n<answer> 5 </answer>"
    assert think_record("Q?", "<think> sneaky\n#### 5") is None
