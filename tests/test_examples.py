"""The scripts in examples/ run as their docstrings say, and print the numbers they promise."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
ENV.pop("R1KIT_DEBUG", None)
ENV.pop("PYTHONPATH", None)


def run(*args, cwd=REPO, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=timeout,
    )


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


@pytest.fixture
def examples_importable(monkeypatch):
    """The repository root on sys.path, as for `python -m r1kit` run from it."""
    monkeypatch.syspath_prepend(str(REPO))


# ------------------------------------------------------------------------------ python_api.py


def test_python_api_stage_and_in_memory_evaluation_agree(tmp_path):
    out = tmp_path / "api"
    res = ok(run("examples/python_api.py", "--output", out, "--problems", 6, "--max-new-tokens", 40))
    printed = json.loads(res.stdout.strip().splitlines()[-1])
    stage, memory = printed["stage"], printed["in_memory"]
    # Greedy decoding of one model on the same prompts: the stage and the in-memory call agree
    # sample for sample, hence on every metric.
    assert printed["same_completions"] is True
    assert stage == memory
    assert (stage["num_prompts"], stage["num_samples"], stage["excluded_unparseable_gold"]) == (6, 1, 0)
    assert 0 <= stage["pass@1"] <= 1 and 0 < stage["mean_tokens"] <= 40
    # The task's own worked solutions are all right under the same answer check.
    assert printed["reference_accuracy"] == 1.0
    # The stages wrote their usual folders; results.json holds what run() returned.
    assert json.loads((out / "eval" / "results.json").read_text()) == {"tiny": stage}
    for stage_dir in ("data", "eval"):
        assert (out / stage_dir / "manifest.json").is_file()
    assert yaml.safe_load((out / "eval" / "resolved_config.yaml").read_text())["greedy"] is True


# ------------------------------------------------------------------------------ custom_reward.py


def test_digit_credit_by_hand(examples_importable):
    from examples.custom_reward import digit_credit

    texts = [
        "<answer>861</answer>",
        "<answer>851</answer>",
        "<answer>61</answer>",
        "<answer>1861</answer>",
        "<answer>8610</answer>",
        "<answer>-861</answer>",
        "<think>\ncut off",
        "so 861",
    ]
    # 861 vs 851: units and hundreds agree (2 of 3); 61: 2 of 3; 1861: 3 of 4; 8610: 0 of 4;
    # a sign mismatch and a missing answer score 0; untagged text is read by its last number.
    assert digit_credit(completions=texts, answer=["861"] * len(texts)) == [
        1.0,
        2 / 3,
        2 / 3,
        0.75,
        0.0,
        0.0,
        0.0,
        1.0,
    ]
    chat = [[{"role": "assistant", "content": "<think>x</think><answer>-12</answer>"}]] * 3
    # negative golds, thousands commas, and a gold that is not an integer (None: cannot judge)
    assert digit_credit(completions=chat, answer=["-13", "-1,012", "2.5"]) == [0.5, 0.5, None]


def test_custom_reward_script_prints_its_scores():
    printed = json.loads(ok(run("examples/custom_reward.py")).stdout.strip().splitlines()[-1])
    assert printed == {"gold": "861", "scores": [1.0, 2 / 3, 2 / 3, 0.75, 0.0, 0.0]}


def write_problems(path: Path) -> Path:
    rows = [("What is 2+3?", "5"), ("What is 4+4?", "8"), ("What is 7+1?", "8"), ("What is 6+3?", "9")]
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows))
    return path


def test_custom_reward_by_dotted_path_in_grpo(tmp_path):
    data = write_problems(tmp_path / "sums.jsonl")
    out = tmp_path / "grpo"
    ok(
        run(
            "-m",
            "r1kit",
            "grpo",
            "--model",
            "tiny",
            "--data",
            data,
            "--task",
            "arithmetic",
            "--output",
            out,
            "--reward",
            "accuracy=1",
            "--reward",
            "examples.custom_reward:digit_credit=0.5",
            "--num-generations",
            2,
            "--prompts-per-step",
            2,
            "--max-steps",
            2,
            "--max-completion-length",
            24,
            "--no-live",
        )
    )
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in logged if "rewards/digit_credit/mean" in r]
    assert [r["step"] for r in logged] == [1, 2]
    for r in logged:
        credit, accuracy = r["rewards/digit_credit/mean"], r["rewards/accuracy/mean"]
        assert 0 <= credit <= 1 and 0 <= accuracy <= 1
        # trl's reward is the weighted sum of the rewards: 1 * accuracy + 0.5 * digit_credit
        assert math.isclose(r["reward"], accuracy + 0.5 * credit, abs_tol=1e-6)
    assert yaml.safe_load((out / "resolved_config.yaml").read_text())["reward"] == [
        "accuracy=1",
        "examples.custom_reward:digit_credit=0.5",
    ]


def test_custom_reward_outside_the_repository_root_is_a_one_line_error(tmp_path):
    data = write_problems(tmp_path / "sums.jsonl")
    res = run(
        "-m",
        "r1kit",
        "grpo",
        "--model",
        "tiny",
        "--data",
        data,
        "--output",
        tmp_path / "grpo",
        "--reward",
        "examples.custom_reward:digit_credit",
        "--max-steps",
        1,
        cwd=tmp_path,
    )
    assert res.returncode == 2
    assert "cannot import reward 'examples.custom_reward:digit_credit'" in res.stderr
    assert "module 'examples.custom_reward' not found" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "grpo").exists()


# ------------------------------------------------------------------------------ custom_task.py

SVAMP_GOLD = ["8", "12", "2.5", "22"]


def test_custom_task_script_prepares_the_rows(tmp_path):
    path = tmp_path / "wp.jsonl"
    lines = (
        ok(run(REPO / "examples" / "custom_task.py", "--write", path, cwd=tmp_path))
        .stdout.strip()
        .splitlines()
    )
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["answer"] for r in rows] == SVAMP_GOLD
    assert rows[0]["question"] == "A baker made 14 loaves and sold 6 of them. How many loaves are left?"
    assert {r["task"] for r in rows} == {"numeric"}
    assert all(r["prompt_end"].endswith("Assistant:") for r in rows)  # the r1-zero template
    assert len(path.read_text().splitlines()) == 4


def test_custom_task_by_dotted_path_in_evaluate(tmp_path, examples_importable):
    from examples.custom_task import EXAMPLES

    data = tmp_path / "wp.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in EXAMPLES))
    out = tmp_path / "eval"
    ok(
        run(
            "-m",
            "r1kit",
            "evaluate",
            "--model",
            "tiny",
            "--data",
            data,
            "--task",
            "examples.custom_task:svamp",
            "--template",
            "r1-zero",
            "--greedy",
            "--max-new-tokens",
            16,
            "--output",
            out,
        )
    )
    results = json.loads((out / "results.json").read_text())["tiny"]
    assert (results["num_prompts"], results["excluded_unparseable_gold"]) == (4, 0)
    from datasets import load_from_disk

    samples = load_from_disk(str(out / "data"))
    assert samples["answer"] == SVAMP_GOLD
    assert samples["prompt"][1].endswith(
        "Tom has 3 boxes with 4 pens in each box. How many pens does Tom have?. Assistant:"
    )

    # The adapter names the raw columns it reads, so a file without them fails before the model loads.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"Question": "How many?", "Answer": 3}) + "\n")
    res = run(
        "-m",
        "r1kit",
        "evaluate",
        "--model",
        "tiny",
        "--data",
        bad,
        "--task",
        "examples.custom_task:svamp",
        "--output",
        tmp_path / "bad-eval",
    )
    assert res.returncode == 2 and "Body" in res.stderr and "Traceback" not in res.stderr
