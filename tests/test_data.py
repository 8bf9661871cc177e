"""Data layer: loading, task adapters on real benchmark records, templates, the arithmetic task."""

import collections
import json
import re
from pathlib import Path

import pytest

from r1kit.data import (
    TASKS,
    TEMPLATE_PREFILL,
    TEMPLATES,
    detect_task,
    gsm8k_gold,
    load_dataset_any,
    make_arithmetic,
    prepare_dataset,
    render_prompt,
    require_columns,
    verify_trace,
    write_arithmetic,
)
from r1kit.data.arithmetic import make_record
from r1kit.data.loading import rename_columns
from r1kit.errors import R1kitError

FIXTURES = Path(__file__).parent / "fixtures"

# Copied from the R1 paper (Table 1) as given in shared/PAPERS.md; "prompt" is where the question goes.
PAPER_R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: prompt. Assistant:"
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- loading -----------------------------------------------------------------------------------


def test_load_file_formats_and_splits(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [{"q": "a", "n": 1}, {"q": "b", "n": 2, "extra": "x"}]  # keys differ between rows
    ds = load_dataset_any(write_jsonl(tmp_path / "d.jsonl", rows))
    assert ds.column_names == ["q", "n", "extra"] and ds["extra"] == [None, "x"]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    assert load_dataset_any(tmp_path / "d.json")["n"] == [1, 2]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    assert load_dataset_any(tmp_path / "d.parquet")["q"] == ["a", "b"]
    (tmp_path / "d.csv").write_text("q,n\na,1\nb,2\n")
    assert load_dataset_any(tmp_path / "d.csv")["n"] == [1, 2]

    dd = DatasetDict(train=Dataset.from_dict({"x": [1, 2]}), test=Dataset.from_dict({"x": [3]}))
    dd.save_to_disk(str(tmp_path / "dd"))
    assert load_dataset_any(tmp_path / "dd")["x"] == [1, 2]  # train by default
    assert load_dataset_any(tmp_path / "dd", split="test")["x"] == [3]
    with pytest.raises(R1kitError, match="has no split 'validation'; available splits: train, test"):
        load_dataset_any(tmp_path / "dd", split="validation")
    DatasetDict(test=Dataset.from_dict({"x": [5]})).save_to_disk(str(tmp_path / "only_test"))
    assert load_dataset_any(tmp_path / "only_test")["x"] == [5]

    # an r1kit stage output: manifest.json + data/
    stage = tmp_path / "stage"
    Dataset.from_dict({"x": [7, 8]}).save_to_disk(str(stage / "data"))
    (stage / "manifest.json").write_text("{}")
    assert load_dataset_any(stage)["x"] == [7, 8]


def test_load_errors(tmp_path, monkeypatch):
    with pytest.raises(R1kitError, match="does not exist"):
        load_dataset_any(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(R1kitError) as err:
        load_dataset_any(tmp_path / "empty.jsonl")
    assert str(err.value) == f"{tmp_path / 'empty.jsonl'} has no rows"
    (tmp_path / "d.txt").write_text("hello")
    with pytest.raises(R1kitError, match="unknown format '.txt'"):
        load_dataset_any(tmp_path / "d.txt")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(R1kitError, match="line 2 is not valid JSON"):
        load_dataset_any(tmp_path / "bad.jsonl")
    (tmp_path / "folder").mkdir()
    with pytest.raises(R1kitError, match="is not a dataset folder"):
        load_dataset_any(tmp_path / "folder")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(R1kitError, match="does not exist locally, and as a hub dataset .* HF_HUB_OFFLINE=1"):
        load_dataset_any("someorg/some-dataset")


def test_require_and_rename_columns(tmp_path):
    ds = load_dataset_any(FIXTURES / "math500_sample.jsonl")
    with pytest.raises(R1kitError) as err:
        require_columns(ds, ["question", "answer"], "m.jsonl")
    assert str(err.value).startswith(
        "m.jsonl is missing column(s) 'question'; available columns: "
        "problem, solution, answer, subject, level, unique_id"
    )
    renamed = rename_columns(ds, {"problem": "question"})
    assert "question" in renamed.column_names and "problem" not in renamed.column_names


# --- task adapters on real records -------------------------------------------------------------


def test_gsm8k_gold_extraction_on_real_records(shared_data):
    rows = [json.loads(line) for line in (shared_data / "gsm8k_test.jsonl").open()]
    assert gsm8k_gold(rows[0]["answer"]) == "18"
    assert gsm8k_gold(rows[146]["answer"]) == "2125"  # "#### 2,125"
    assert gsm8k_gold(rows[489]["answer"]) == "-10"
    assert gsm8k_gold(rows[1113]["answer"]) == "-3"
    ds = prepare_dataset(str(shared_data / "gsm8k_test.jsonl"))
    golds = ds["answer"]
    assert len(golds) == 1319 and all(re.fullmatch(r"-?\d+", g) for g in golds)
    assert sorted(g for g in golds if g.startswith("-")) == ["-10", "-3"]  # SOURCES.md: 2 negatives in test
    assert set(ds["task"]) == {"numeric"}
    with pytest.raises(R1kitError, match="no '####'"):
        gsm8k_gold("just text")


def test_fixtures_adapters_and_autodetect():
    g = prepare_dataset(str(FIXTURES / "gsm8k_sample.jsonl"))
    assert g.column_names == ["prompt", "question", "answer", "task"]
    assert g["answer"] == ["18", "2125", "-10", "-3"]
    assert g[0]["prompt"] == g[0]["question"] and g[0]["question"].startswith(
        "Janet\u2019s ducks lay 16 eggs"
    )

    m = prepare_dataset(str(FIXTURES / "math500_sample.jsonl"))
    assert m["answer"] == ["\\left( 3, \\frac{\\pi}{2} \\right)", "p - q", "\\frac{14}{3}"]
    assert m["difficulty"] == [2, 5, 3] and set(m["task"]) == {"math"}
    assert m[0]["question"].startswith("Convert the point $(0,3)$")

    mg = prepare_dataset(str(FIXTURES / "mgsm_sample.jsonl"))
    assert mg["lang"] == ["en", "zh", "sw", "en", "en"]
    assert mg["answer"] == ["18", "18", "18", "2125", "114200"]
    assert set(mg["task"]) == {"numeric"}

    for name, expected in [("gsm8k_sample", "gsm8k"), ("math500_sample", "math500"), ("mgsm_sample", "mgsm")]:
        assert detect_task(load_dataset_any(FIXTURES / f"{name}.jsonl")) == expected


def test_code_adapters(shared_data):
    h = prepare_dataset(str(shared_data / "humaneval.jsonl"), task="humaneval")
    row = h[0]
    assert row["entry_point"] == "has_close_elements" and row["task"] == "code"
    assert row["question"].startswith("from typing import List\n\n\ndef has_close_elements(")
    assert row["tests"].endswith("\ncheck(has_close_elements)") and "def check(candidate):" in row["tests"]
    # the reference solution passes the tests as built
    scope: dict = {}
    exec(row["question"] + row["answer"] + "\n" + row["tests"], scope)  # noqa: S102 - trusted benchmark data

    b = prepare_dataset(str(shared_data / "mbpp.jsonl"))
    assert detect_task(load_dataset_any(shared_data / "mbpp.jsonl")) == "mbpp"
    first = b[0]
    assert first["question"] == (
        "Write a function to find the minimum cost path to reach (m, n) from (0, 0) for the given cost matrix "
        "cost[][] and a position (m, n) in cost[][].\nYour code should pass this test:\n"
        "assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8"
    )
    assert first["entry_point"] == "min_cost" and first["tests"].count("assert ") == 3
    scope = {}
    exec(first["answer"] + "\n" + first["tests"], scope)  # noqa: S102


def test_mbpp_sanitized_rows_keep_their_test_imports():
    """HF's "sanitized" MBPP rows hold the task in `prompt` and the imports their asserts need in
    `test_imports` (math.isclose); the adapter puts them before the asserts, as set-up."""
    rows = [json.loads(line) for line in (FIXTURES / "mbpp_sanitized_sample.jsonl").read_text().splitlines()]
    ds = prepare_dataset(str(FIXTURES / "mbpp_sanitized_sample.jsonl"), task="mbpp")
    assert detect_task(load_dataset_any(FIXTURES / "mbpp_sanitized_sample.jsonl")) == "mbpp"
    for raw, row in zip(rows, ds):
        assert row["question"].startswith(raw["prompt"] + "\nYour code should pass this test:\n")
        assert row["tests"].splitlines() == [*raw["test_imports"], *raw["test_list"]]
        scope: dict = {}
        exec(row["answer"] + "\n" + row["tests"], scope)  # noqa: S102 - the fixture's own reference code
    # without the imports the asserts of rows 2 and 3 fail: math is not defined
    with pytest.raises(NameError, match="math"):
        exec(ds[1]["answer"] + "\n" + "\n".join(rows[1]["test_list"]), {})  # noqa: S102


def test_generic_mapping_and_errors(tmp_path):
    src = write_jsonl(tmp_path / "g.jsonl", [{"instr": "2+2?", "gold": "4", "lang": "en"}])
    with pytest.raises(
        R1kitError, match="cannot tell which column is the question; available columns: instr, gold"
    ):
        prepare_dataset(str(src))
    ds = prepare_dataset(str(src), prompt_field="instr", answer_field="gold", task_type="numeric")
    assert ds[0] == {"prompt": "2+2?", "question": "2+2?", "answer": "4", "task": "numeric", "lang": "en"}
    assert prepare_dataset(str(src), prompt_field="instr", answer_field="gold")[0]["task"] == "math"
    # a named task with differently named columns: --prompt-field renames into the adapter's column
    src2 = write_jsonl(tmp_path / "m.jsonl", [{"q": "x?", "answer": "1", "level": 4}])
    assert prepare_dataset(str(src2), task="math500", prompt_field="q")[0]["difficulty"] == 4
    with pytest.raises(R1kitError, match="unknown task 'gsm8'. Did you mean 'gsm8k'?"):
        prepare_dataset(str(src), task="gsm8")
    with pytest.raises(R1kitError, match="unknown template 'r1zero'. Did you mean 'r1-zero'?"):
        prepare_dataset(str(src), template="r1zero")
    with pytest.raises(R1kitError, match="is missing column\\(s\\) 'problem'"):
        prepare_dataset(str(src), task="math500")
    assert set(TASKS) == {"gsm8k", "math500", "mgsm", "humaneval", "mbpp", "arithmetic", "generic"}


def custom_adapter(row):
    """A user adapter reached through a dotted path."""
    return {"question": row["instr"].upper(), "answer": row["gold"], "task": "numeric"}


def test_dotted_path_adapter(tmp_path):
    src = write_jsonl(tmp_path / "g.jsonl", [{"instr": "two plus two", "gold": "4"}])
    ds = prepare_dataset(str(src), task="tests.test_data:custom_adapter")
    assert ds[0]["question"] == "TWO PLUS TWO" and ds[0]["answer"] == "4"


def test_limit_is_seeded_subset():
    a = prepare_dataset(str(FIXTURES / "mgsm_sample.jsonl"), limit=3, seed=0)
    b = prepare_dataset(str(FIXTURES / "mgsm_sample.jsonl"), limit=3, seed=0)
    assert len(a) == 3 and a["question"] == b["question"]


# --- templates ---------------------------------------------------------------------------------


def test_r1_zero_template_is_the_paper_text():
    q = "What is 2+3?"
    assert render_prompt("r1-zero", q) == PAPER_R1_ZERO.replace("User: prompt.", f"User: {q}.")
    papers = Path(__file__).resolve().parents[2] / "shared" / "PAPERS.md"
    if papers.is_file():  # the template as quoted in the shared notes, character for character
        quoted = re.search(r'R1-Zero template: "(.*?)"\n', papers.read_text())[1]
        assert render_prompt("r1-zero", q) == quoted.replace("User: prompt.", f"User: {q}.")
    # braces in LaTeX questions survive (no str.format)
    assert "User: $\\frac{1}{2}$. Assistant:" in render_prompt("r1-zero", "$\\frac{1}{2}$")


def test_chat_templates():
    assert render_prompt("chat-think", "Q") == [
        {
            "role": "user",
            "content": "Q\nPlease reason step by step, and put your final answer within \\boxed{}.",
        }
    ]
    assert TEMPLATE_PREFILL["chat-think"] == "<think>\n"
    assert render_prompt("chat", "Q", system_prompt="S") == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
    ]
    assert render_prompt("raw", "Q") == "Q" and render_prompt("raw", "Q", system_prompt="S") == "S\n\nQ"
    assert set(TEMPLATES) == {"r1-zero", "chat-think", "chat", "raw"}
    ds = prepare_dataset(str(FIXTURES / "gsm8k_sample.jsonl"), template="chat-think", system_prompt="S")
    assert ds[0]["prompt"][0] == {"role": "system", "content": "S"}
    assert ds[0]["prompt"][1]["content"].endswith("within \\boxed{}.")


# --- the arithmetic task -----------------------------------------------------------------------


def test_arithmetic_trace_hand_checked():
    r = make_record(482, 379, "+", num_checks=1)
    assert r["question"] == "What is 482+379?" and r["answer"] == "861"
    assert r["completion"] == (
        "<think>\n2+9+0=11 w1 c1\n8+7+1=16 w6 c1\n4+3+1=8 w8 c0\nso 861\n"
        "wait, check 861-379=482 ok\n</think><answer>861</answer>"
    )
    assert r["difficulty"] == 3 + 2  # 3 digits, 2 carries
    s = make_record(1000, 1, "-", num_checks=0)
    assert s["completion"] == (
        "<think>\n10-1-0=9 w9 b1\n10-0-1=9 w9 b1\n10-0-1=9 w9 b1\n1-0-1=0 w0 b0\nso 999\n</think><answer>999</answer>"
    )
    top = make_record(999, 1, "+", num_checks=0)["completion"]
    assert "0+0+1=1 w1 c0\nso 1000" in top  # the final carry is written as its own column
    assert verify_trace(r["question"], r["completion"])
    assert not verify_trace(r["question"], r["completion"].replace("w6", "w7"))
    assert not verify_trace(r["question"], r["completion"].replace("482 ok", "483 ok"))
    assert not verify_trace(r["question"], r["completion"].replace("<answer>861", "<answer>862"))


def test_arithmetic_filler_style():
    r = make_record(482, 379, "+", num_checks=2, check_style="filler")
    assert r["completion"] == (
        "<think>\n2+9+0=11 w1 c1\n8+7+1=16 w6 c1\n4+3+1=8 w8 c0\nso 861\n"
        "wait, let me double-check.\nhmm, that seems right.\n</think><answer>861</answer>"
    )
    assert r["num_checks"] == 2 and verify_trace(r["question"], r["completion"])
    assert not verify_trace(r["question"], r["completion"].replace("w6", "w7"))
    assert not verify_trace(r["question"], r["completion"].replace("right.", "right!"))
    # the same problems and counts as "verify"; only where the redundant lines go differs
    filler = make_arithmetic(200, max_checks=2, check_style="filler", seed=3)
    verify = make_arithmetic(200, max_checks=2, seed=3)
    assert [(f["question"], f["num_checks"]) for f in filler] == [
        (v["question"], v["num_checks"]) for v in verify
    ]
    assert all(
        f["completion"].count("double-check.") + f["completion"].count("seems right.") == f["num_checks"]
        and "wait, check" not in f["completion"]
        for f in filler
    )
    with pytest.raises(R1kitError, match="unknown check style 'loud'"):
        make_record(1, 2, "+", 0, check_style="loud")


@pytest.mark.parametrize("ops", [("+",), ("-",), ("+", "-")])
def test_arithmetic_correct_and_varied(ops):
    recs = make_arithmetic(600, digits=3, ops=ops, max_checks=3, seed=7)
    assert len({r["question"] for r in recs}) == 600
    assert all(verify_trace(r["question"], r["completion"]) for r in recs)
    for r in recs:
        a, op, b = re.fullmatch(r"What is (\d+)([+-])(\d+)\?", r["question"]).groups()
        assert int(r["answer"]) == (int(a) + int(b) if op == "+" else int(a) - int(b)) >= 0
        assert r["completion"].count("wait, check") == r["num_checks"] and r["task"] == "numeric"
    lengths = [len(r["completion"]) for r in recs]
    assert min(lengths) < max(lengths) <= 200
    counts = collections.Counter(r["num_checks"] for r in recs)
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 100  # roughly uniform over 0..3
    mean_by_checks = {
        k: sum(len(r["completion"]) for r in recs if r["num_checks"] == k) / counts[k] for k in counts
    }
    assert mean_by_checks[0] < mean_by_checks[1] < mean_by_checks[2] < mean_by_checks[3]
    assert make_arithmetic(5, seed=7, ops=ops) == recs[:5]  # deterministic per seed


def test_arithmetic_digits_and_errors():
    assert all(int(r["answer"]) < 200 for r in make_arithmetic(50, digits=2))
    assert all(
        verify_trace(r["question"], r["completion"]) for r in make_arithmetic(50, digits=6, ops=("+", "-"))
    )
    with pytest.raises(R1kitError, match="only 100 exist"):
        make_arithmetic(101, digits=1)
    with pytest.raises(R1kitError, match="may only hold"):
        make_arithmetic(3, ops=("*",))


def test_write_arithmetic_splits_disjoint(tmp_path):
    sizes = write_arithmetic(tmp_path / "ar", 300, 50, digits=2, seed=1)
    assert sizes == {"train": 300, "test": 50}
    train = load_dataset_any(tmp_path / "ar", split="train")
    test = load_dataset_any(tmp_path / "ar", split="test")
    assert (len(train), len(test)) == (300, 50)
    assert not set(train["question"]) & set(test["question"])
    row = train[0]
    assert row["prompt"] == row["question"]
    assert row["messages"] == [
        {"role": "user", "content": row["question"]},
        {"role": "assistant", "content": row["completion"]},
    ]
    assert detect_task(train) == "arithmetic"
    prepared = prepare_dataset(str(tmp_path / "ar"), split="test", template="chat")
    assert prepared.column_names == ["prompt", "question", "answer", "task", "difficulty"]
    assert prepared[0]["prompt"] == [{"role": "user", "content": test[0]["question"]}]
    assert prepared["answer"] == test["answer"]
