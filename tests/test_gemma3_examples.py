"""examples/gemma3_*.sh and their helpers: prompt files, the clock, the summary's numbers, the SMOKE runs.

The GPU runs themselves are the lead's (bench/gemma3_device.sh); here: what the scripts write is
right (equation prompts, think traces the judge accepts), a script stops cleanly before a step that
does not fit its DEADLINE, bench/gemma3_summary.py's paired standard error is the textbook one, and
(slow) both examples run end to end in their SMOKE form on the tiny model.
"""

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]


def script_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHON": sys.executable,
        "R1KIT": f"{sys.executable} -m r1kit",
        "EVAL_DTYPE": "auto",
        **extra,
    }
    env.pop("R1KIT_DEBUG", None)
    return env


def helper(*args) -> subprocess.CompletedProcess:
    res = subprocess.run(
        check=False,
        args=[sys.executable, str(REPO / "examples" / "gemma3_data.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=script_env(PYTHONPATH=str(REPO)),
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def arith(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gemma3") / "arith"
    res = run_cli(
        "data",
        "arithmetic",
        "--digits",
        2,
        "--train-size",
        30,
        "--test-size",
        6,
        "--max-checks",
        0,
        "--output",
        out,
    )
    assert res.returncode == 0, res.stderr
    return out


def test_equation_prompts_hold_true_solved_lines_and_leave_the_shots_out_of_train(arith, tmp_path):
    from datasets import load_from_disk

    helper("equations", "--data", arith, "--out", tmp_path, "--shots", 3)
    raw = load_from_disk(str(arith / "data"))
    train, test = read_jsonl(tmp_path / "train.jsonl"), read_jsonl(tmp_path / "test.jsonl")
    assert (len(train), len(test)) == (27, 6)  # 30 train rows minus the 3 shots
    shots = [
        f"{a} + {b} = {int(a) + int(b)}"
        for a, b in (
            re.fullmatch(r"What is (\d+)\+(\d+)\?", q).groups() for q in raw["train"]["question"][:3]
        )
    ]
    for row, source in zip(test, raw["test"]):
        lines = row["question"].split("\n")
        assert lines[:3] == shots  # the same solved examples, true sums
        a, b = re.fullmatch(r"What is (\d+)\+(\d+)\?", source["question"]).groups()
        assert lines[3] == f"{a} + {b} =" and row["answer"] == str(int(a) + int(b)) == source["answer"]
    shot_questions = {f"{s.rsplit(' =', 1)[0]} =" for s in shots}
    assert not shot_questions & {r["question"].split("\n")[-1] for r in train}


def test_traces_become_think_data_that_the_judge_scores_right_and_well_formed(arith, tmp_path):
    helper("traces", "--data", arith, "--out", tmp_path / "traces.jsonl")
    rows = read_jsonl(tmp_path / "traces.jsonl")
    assert len(rows) == 30 and all(
        "<think>" not in r["steps"] and r["steps"].endswith(f"so {r['answer']}") for r in rows
    )
    think = tmp_path / "think"
    res = run_cli(
        "data",
        "think",
        "--data",
        tmp_path / "traces.jsonl",
        "--solution-field",
        "steps",
        "--answer-field",
        "answer",
        "--output",
        think,
    )
    assert res.returncode == 0, res.stderr
    # the SFT targets, judged as completions of the r1-zero prompt: every one right and in format
    res = run_cli("evaluate", "--samples", think, "--template", "r1-zero", "--output", tmp_path / "judged")
    assert res.returncode == 0, res.stderr
    metrics = next(iter(json.loads((tmp_path / "judged" / "results.json").read_text()).values()))
    assert (metrics["pass@1"], metrics["format_rate"], metrics["num_prompts"]) == (1.0, 1.0, 30)


def test_a_step_that_does_not_fit_the_deadline_stops_the_script_cleanly(tmp_path):
    out = tmp_path / "arith"
    res = subprocess.run(
        check=False,
        args=["bash", str(REPO / "examples" / "gemma3_arithmetic.sh")],
        capture_output=True,
        text=True,
        env=script_env(MODEL="tiny", OUT=str(out), DEADLINE=str(int(time.time()) + 20)),
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "STOPPED: data arithmetic" in res.stderr and "needs ~60 s" in res.stderr
    assert "STOPPED: data arithmetic" in (out / "stopped.txt").read_text()
    assert not (out / "a_data").exists() and not list(out.glob(".*partial"))


def write_samples(path: Path, model: str, correct: list[list[bool]]) -> Path:
    rows = []
    for p, flags in enumerate(correct):
        for s, ok in enumerate(flags):
            rows.append(
                {
                    "model": model,
                    "prompt_index": p,
                    "sample_index": s,
                    "prompt": f"What is {p}+1?",
                    "answer": str(p + 1),
                    "task": "numeric",
                    "num_tokens": 10 + s,
                    "completion": f"<think>\nadd</think><answer>{p + 1 if ok else p + 7}</answer>",
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_summary_compares_grpo_with_sft_by_the_paired_standard_error(tmp_path):
    runs = tmp_path / "gsm8k"
    sft = [[False, False], [True, False], [False, False], [True, True], [False, False]]  # 0, .5, 0, 1, 0
    grpo = [[True, False], [True, True], [False, False], [True, True], [True, True]]  # .5, 1, 0, 1, 1
    for name, flags in (("sft", sft), ("grpo", grpo)):
        table = write_samples(tmp_path / f"{name}.jsonl", name, flags)
        res = run_cli(
            "evaluate",
            "--samples",
            table,
            "--pass-k",
            1,
            "--pass-k",
            2,
            "--output",
            runs / f"eval_{name}_sampled",
        )
        assert res.returncode == 0, res.stderr
    res = subprocess.run(
        check=False,
        args=[
            sys.executable,
            str(REPO / "bench" / "gemma3_summary.py"),
            "--gsm8k",
            str(runs),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "gemma3_summary.json").read_text())["gsm8k"]
    cmp = summary["grpo_vs_sft_sampled"]
    d = [0.5, 0.5, 0.0, 0.0, 1.0]  # per-problem differences
    mean = sum(d) / 5
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / 4) / math.sqrt(5)
    assert cmp["problems"] == 5 and cmp["difference"] == pytest.approx(0.4)
    assert cmp["paired_stderr"] == pytest.approx(se) == pytest.approx(0.187083, abs=1e-6)
    assert cmp["above_2se"] is True  # 0.4 > 2 x 0.187
    # each evaluation's own SE is 0.2 (sd 0.447 over 5 problems): independent SE 0.283, under which
    # the same 0.4 would be within two standard errors
    assert cmp["independent_stderr"] == pytest.approx(math.sqrt(2) * 0.2)
    md = (tmp_path / "out" / "gemma3_summary.md").read_text()
    # pass@1 0.3 and 0.7 (each +- 0.2), pass@2 (any of the 2 right): 2/5 and 4/5
    assert "| pass@1 % ± SE (T 0.6, 2 samples) | pass@2 % |" in md
    assert (
        "| cold-start SFT | - | - | 30.0 ± 20.0 | 40.0 |" in md
        and "| GRPO from SFT | - | - | 70.0 ± 20.0 | 80.0 |" in md
    )
    assert "GRPO is ABOVE SFT by more than two standard errors" in md
    assert "not run (yet): eval_base_greedy, eval_base_sampled, eval_sft_greedy" in md
    assert md in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("example", ["gemma3_arithmetic.sh", "gemma3_gsm8k.sh"])
def test_smoke_form_runs_end_to_end_on_the_tiny_model(example, tmp_path, shared_data):
    out = tmp_path / "run"
    res = subprocess.run(
        check=False,
        args=["bash", str(REPO / "examples" / example)],
        capture_output=True,
        text=True,
        env=script_env(SMOKE="1", OUT=str(out), DATA=str(shared_data)),
        cwd=tmp_path,
        timeout=1800,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert not (out / "stopped.txt").exists()
    if example == "gemma3_arithmetic.sh":
        evals = ["a_eval_base", "a_eval_grpo", "b_eval_base", "b_eval_sft", "b_eval_grpo"]
        trained = ["a_grpo", "b_sft", "b_grpo"]
        plots = ["a_curves", "b_curves"]
    else:
        evals = [f"eval_{m}_{k}" for m in ("base", "sft", "grpo", "rs_sft") for k in ("greedy", "sampled")]
        trained = ["sft", "grpo", "rs", "rs_sft"]
        plots = ["curves"]
    for name in evals + trained + plots:
        assert (out / name / "manifest.json").is_file(), name
    for name in evals:
        metrics = next(iter(json.loads((out / name / "results.json").read_text()).values()))
        assert 0 <= metrics["pass@1"] <= 1 and metrics["num_prompts"] == 6
    for name in plots:
        assert (out / name / "curves.png").stat().st_size > 1000
    grpo = "a_grpo" if "arith" in example else "grpo"
    steps = [json.loads(line) for line in (out / grpo / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "reward" in r and isinstance(r.get("step"), int)] == [1, 2]
    # the summary table came last, with a row per evaluated model
    assert "greedy" in res.stdout and "GRPO run" in res.stdout


@pytest.mark.slow
def test_device_driver_runs_in_two_calls_and_returns_at_most_eight_files(tmp_path, shared_data):
    """bench/gemma3_device.sh in its CPU form: part 1 with a budget too short for everything, part 2
    finishes, skipping what part 1 finished; what comes back fits the device tool's limits."""
    root, out = tmp_path / "runs", tmp_path / "out"
    env = script_env(
        SMOKE="1", MODEL="tiny", PY=sys.executable, ROOT=str(root), OUT=str(out), DATA=str(shared_data)
    )
    first = subprocess.run(
        ["bash", str(REPO / "bench" / "gemma3_device.sh"), "--part", "1", "--budget", "150"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (
        "STOPPED"
        in (root / "gsm8k" / "stopped.txt").read_text() + (root / "arith" / "stopped.txt").read_text()
    )
    done_in_part_1 = {p.parent.name: p.stat().st_mtime for p in root.glob("*/*/manifest.json")}
    assert done_in_part_1  # part 1 finished some steps
    second = subprocess.run(
        ["bash", str(REPO / "bench" / "gemma3_device.sh"), "--part", "2", "--budget", "1500"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1800,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for p in root.glob("*/*/manifest.json"):  # part 2 skipped what part 1 had finished
        if p.parent.name in done_in_part_1:
            assert p.stat().st_mtime == done_in_part_1[p.parent.name], p
    for name in ("a_eval_grpo", "b_eval_grpo"):
        assert (root / "arith" / name / "results.json").is_file()
    for name in ("eval_base_sampled", "eval_sft_sampled", "eval_grpo_sampled"):
        assert (root / "gsm8k" / name / "results.json").is_file()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)
    assert {
        "gemma3_summary.json",
        "gemma3_summary.md",
        "arith_a_curves.png",
        "arith_b_curves.png",
        "gsm8k_curves.png",
        "gsm8k_part2.log",
        "arith_part2.log",
    } <= {p.name for p in files}
    summary = json.loads((out / "gemma3_summary.json").read_text())
    assert summary["gsm8k"]["models"]["grpo"]["sampled"]["num_prompts"] == 6
    assert second.stdout.rstrip().endswith("```")  # the summary (tables, then the commands) is printed last


def test_convert_refuses_a_model_that_fails_the_sanity_check_and_writes_nothing(tmp_path):
    # the random-weight tiny model scores an absurd perplexity on plain English, like a bad GGUF load
    res = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "gemma3_data.py"),
            "convert",
            "--model",
            "tiny",
            "--out",
            str(tmp_path / "base"),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=script_env(PYTHONPATH=str(REPO)),
        timeout=300,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "fails the sanity check" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "base").exists() and not (tmp_path / "base.partial").exists()
