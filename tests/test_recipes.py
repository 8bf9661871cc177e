"""The recipes in recipes/ run end to end in their reduced form (SMOKE=1) through the real CLI.

Each recipe runs on the tiny model and the built-in arithmetic task with a couple of steps per
stage; the tests read back what every stage wrote. SMOKE=1 starts from a tiny model SFT'd for
120 steps (recipes/common.sh `smoke_base`); it is built in the session's base temp folder with
the same commands and layout as the teacher of test_rejection_sample.py / test_distill.py, so a
full test session builds it once. Numbers here only have to be well formed: the recipes' learning
is checked by the stages' own tests and the quickstart.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
EVAL_PROMPTS, EVAL_SAMPLES = 4, 2  # the SMOKE=1 evaluation: EVAL_LIMIT, EVAL_SAMPLES


def recipe(
    name: str, out: Path, smoke_dir: Path, timeout: float = 900, **env: str
) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "SMOKE": "1",
        "OUT": str(out),
        "SMOKE_DIR": str(smoke_dir),
        "R1KIT": f"{sys.executable} -m r1kit",
        **env,
    }
    full_env.pop("R1KIT_DEBUG", None)
    res = subprocess.run(
        ["bash", str(RECIPES / name)],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=out.parent,
        timeout=timeout,
    )
    assert res.returncode == 0, f"{name} failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "r1kit-teacher"


def finished(*dirs: Path) -> None:
    for d in dirs:
        assert (d / "manifest.json").is_file(), f"{d} has no manifest.json"
        assert json.loads((d / "manifest.json").read_text())["r1kit_version"]


def config(stage_dir: Path) -> dict:
    return yaml.safe_load((stage_dir / "resolved_config.yaml").read_text())


def steps(stage_dir: Path) -> list[dict]:
    lines = (stage_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "rewards/accuracy/mean" in r]


def check_results(eval_dir: Path, models: list[str], max_tokens: int) -> dict:
    """results.json has exactly `models`, in order, each with finite, in-range metrics."""
    results = json.loads((eval_dir / "results.json").read_text())
    assert list(results) == models
    for name, m in results.items():
        assert m["num_prompts"] == EVAL_PROMPTS and m["num_samples"] == EVAL_SAMPLES, name
        assert m["unscorable_gold"] == 0 and m["unscorable_gold_ids"] == [], (
            name
        )  # arithmetic golds all score
        for key, value in m.items():
            if key != "unscorable_gold_ids":
                assert isinstance(value, (int, float)) and math.isfinite(value), (name, key, value)
        for rate in ("pass@1", f"cons@{EVAL_SAMPLES}", "truncation_rate", "format_rate"):
            assert 0 <= m[rate] <= 1, (name, rate)
        assert 0 < m["mean_tokens"] <= max_tokens, name
    return results


def check_summary(res: subprocess.CompletedProcess, results: dict) -> None:
    """The recipe ends with pass@1 and mean tokens per model, read from results.json."""
    lines = res.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("model") and "mean tokens" in line)
    table = lines[start + 1 : start + 1 + len(results)]
    for line, (name, m) in zip(table, results.items()):
        assert line.split() == [name, f"{100 * m['pass@1']:.1f}%", f"{m['mean_tokens']:.1f}"]


# ---------------------------------------------------------------------------------------------


# MATH-500-style rows (problem / solution / answer), written by hand: evaluation data of another
# task than the training data
MATH_ROWS = [
    {"problem": "What is $2+3$?", "solution": "$2+3=\\boxed{5}$", "answer": "5"},
    {"problem": "Simplify $\\frac{6}{4}$.", "solution": "$\\boxed{\\frac{3}{2}}$", "answer": "\\frac{3}{2}"},
    {"problem": "What is $7 \\cdot 6$?", "solution": "$\\boxed{42}$", "answer": "42"},
    {"problem": "Solve $x+1=4$.", "solution": "$x=\\boxed{3}$", "answer": "3"},
    {"problem": "What is $10-8$?", "solution": "$\\boxed{2}$", "answer": "2"},
]


def test_r1_zero_and_rerun_skips_finished_stages(tmp_path, smoke_dir):
    """Also: training and evaluation data of different tasks (TRAIN_TASK / EVAL_TASK); with one TASK
    for both, the MATH-style evaluation data was read with the arithmetic adapter and failed."""
    out = tmp_path / "r1-zero"
    math_rows = tmp_path / "math.jsonl"
    math_rows.write_text("".join(json.dumps(r) + "\n" for r in MATH_ROWS))
    split = {"EVAL_DATA": str(math_rows), "EVAL_TASK": "math500", "TRAIN_TASK": "arithmetic"}
    res = recipe("r1-zero.sh", out, smoke_dir, **split)
    finished(smoke_dir / "data", out / "grpo", out / "eval")
    cfg = config(out / "grpo")
    assert (cfg["preset"], cfg["template"], cfg["reward"], cfg["beta"]) == (
        "r1-zero",
        "r1-zero",
        ["accuracy=1", "format=1"],
        0.001,
    )
    assert (cfg["model"], cfg["max_steps"], cfg["num_generations"], cfg["task"]) == (
        "tiny",
        2,
        2,
        "arithmetic",
    )
    assert (config(out / "eval")["task"], config(out / "eval")["data"]) == ("math500", str(math_rows))
    assert [r["step"] for r in steps(out / "grpo")] == [1, 2]
    results = check_results(out / "eval", ["tiny", str(out / "grpo")], max_tokens=48)
    check_summary(res, results)

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/manifest.json")}
    again = recipe("r1-zero.sh", out, smoke_dir, **split)
    assert "skip grpo" in again.stderr and "skip evaluate" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/manifest.json")} == stamps
    check_summary(again, results)


def test_r1_four_stages(tmp_path, smoke_dir):
    out = tmp_path / "r1"
    res = recipe("r1.sh", out, smoke_dir)
    base = str(smoke_dir / "teacher")
    stages = ["cold-start", "reasoning-rl", "rejection-sampling", "rs-sft", "all-scenario-rl", "eval"]
    finished(*(out / s for s in stages))

    rl = config(out / "reasoning-rl")
    assert (rl["preset"], rl["model"], rl["lang"]) == ("r1", str(out / "cold-start"), "en")
    assert rl["reward"] == ["accuracy=1", "think_format=1", "language=1"]
    # Stage 3 fine-tunes the base model (as R1 does) on samples of the RL checkpoint.
    rs = json.loads((out / "rejection-sampling" / "manifest.json").read_text())
    assert rs["inputs"]["model"] == str(out / "reasoning-rl")
    sft = json.loads((out / "rs-sft" / "manifest.json").read_text())
    assert sft["inputs"] == {"model": base, "data": str(out / "rejection-sampling")}
    from datasets import load_from_disk

    kept = load_from_disk(str(out / "rejection-sampling" / "data"))
    assert len(kept) > 0 and all(kept["correct"])
    # Stage 4: rule rewards plus the (smoke, random) reward model, logged by trl at every step.
    assert (out / "reward-model" / "config.json").is_file()
    final = config(out / "all-scenario-rl")
    assert final["model"] == str(out / "rs-sft")
    assert final["reward"] == ["accuracy=1", "think_format=1", "r1kit_reward_model:reward_model=1"]
    logged = [r["rewards/reward_model/mean"] for r in steps(out / "all-scenario-rl")]
    assert len(logged) == 2 and all(math.isfinite(v) for v in logged)

    models = [base] + [str(out / s) for s in stages[:2] + ["rs-sft", "all-scenario-rl"]]
    check_summary(res, check_results(out / "eval", models, max_tokens=64))


def test_distill(tmp_path, smoke_dir):
    out = tmp_path / "distill"
    res = recipe("distill.sh", out, smoke_dir)
    finished(out / "distill", out / "distill" / "traces", out / "distill" / "sft", out / "eval")
    from datasets import load_from_disk

    traces = load_from_disk(str(out / "distill" / "traces" / "data"))
    assert len(traces) > 0 and all(traces["correct"])
    assert (out / "distill" / "model" / "config.json").is_file()
    student = json.loads((out / "distill" / "model" / "config.json").read_text())
    assert student["model_type"] == "llama"  # tiny-llama: another architecture than the teacher
    teacher = str(smoke_dir / "teacher")
    check_summary(
        res, check_results(out / "eval", [teacher, "tiny-llama", str(out / "distill")], max_tokens=64)
    )


def test_kimi_long2short(tmp_path, smoke_dir):
    out = tmp_path / "kimi"
    res = recipe("kimi-long2short.sh", out, smoke_dir)
    stages = ["smoke-short-cot", "merge", "shortest-rs", "shortest-sft", "dpo", "long2short-rl", "eval"]
    finished(*(out / s for s in stages))
    long_model = str(smoke_dir / "teacher")

    merge = config(out / "merge")
    assert merge["model"] == [long_model, str(out / "smoke-short-cot")] and merge["weight"] == [0.5, 0.5]
    from datasets import load_from_disk

    shortest = load_from_disk(str(out / "shortest-rs" / "data"))
    assert len(shortest) > 0 and all(shortest["correct"])
    assert len(set(shortest["prompt_index"])) == len(shortest)  # one (the shortest) answer per prompt
    report = json.loads((out / "dpo" / "report.json").read_text())
    assert report["pairs"] >= 1 and report["pairs"] == report["pairs_wrong"] + report["pairs_long"]
    rl = config(out / "long2short-rl")
    assert (rl["preset"], rl["reward"], rl["max_completion_length"]) == (
        "kimi-long2short",
        ["accuracy=1", "length=1"],
        32,
    )
    models = [long_model] + [str(out / s) for s in stages[:2] + stages[3:6]]
    check_summary(res, check_results(out / "eval", models, max_tokens=64))


# ------------------------------------------------------------------------------ cheap checks


@pytest.mark.parametrize("name", ["r1-zero.sh", "r1.sh", "distill.sh", "kimi-long2short.sh"])
def test_recipe_headers_and_syntax(name):
    text = (RECIPES / name).read_text()
    assert "set -euo pipefail" in text and "SMOKE" in text
    header = text.split("set -euo pipefail")[0]
    for word in ("Reproduces", "Hardware:", "Commands:", f"SMOKE=1 bash recipes/{name}", "DATA*"):
        assert word in header, (name, word)
    assert subprocess.run(["bash", "-n", str(RECIPES / name)], check=False).returncode == 0


def test_r1_needs_a_reward_model_before_running_anything(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SMOKE", "RM")}
    res = subprocess.run(
        ["bash", str(RECIPES / "r1.sh")],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "R1KIT": "false", "OUT": str(tmp_path / "r1")},
    )
    assert res.returncode == 2 and "set RM" in res.stderr
    assert not (tmp_path / "r1").exists()


def test_run_stage_routes_training_stages_and_skips_finished_ones(tmp_path):
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "manifest.json").write_text("{}")
    script = (
        f"source {RECIPES / 'common.sh'}; run_stage {tmp_path}/a sft --x 1; "
        f"run_stage {tmp_path}/b 'data arithmetic' --y 2; run_stage {tmp_path}/done grpo"
    )
    env = {**os.environ, "R1KIT": "echo plain", "R1KIT_TRAIN": "echo train"}
    res = subprocess.run(["bash", "-c", script], check=False, capture_output=True, text=True, env=env)
    assert res.returncode == 0
    assert res.stdout.splitlines() == [
        f"train sft --x 1 --output {tmp_path}/a",
        f"plain data arithmetic --y 2 --output {tmp_path}/b",
    ]
    assert f"skip grpo: {tmp_path}/done is finished" in res.stderr


FAKE_R1KIT = r"""#!/usr/bin/env bash
# Records the command (one line per call) and writes a finished stage folder, so a recipe runs through
# without training: what each stage is asked to do is all that is checked.
echo "$*" >> "$R1KIT_CALLS"
out=""
prev=""
for word in "$@"; do
  [[ "$prev" == "--output" ]] && out=$word
  prev=$word
done
mkdir -p "$out"
echo '{"r1kit_version": "fake", "stage": "fake"}' > "$out/manifest.json"
if [[ "$1" == evaluate ]]; then
  echo '{"m": {"pass@1": 0.5, "mean_tokens": 10.0}}' > "$out/results.json"
fi
"""


@pytest.mark.parametrize("name", ["r1-zero.sh", "r1.sh", "distill.sh", "kimi-long2short.sh"])
def test_recipes_take_separate_train_and_eval_tasks(name, tmp_path):
    """TRAIN_TASK goes to every stage that reads the training data, EVAL_TASK to the evaluation;
    TASK alone sets both (the default, as before)."""
    fake = tmp_path / "r1kit"
    fake.write_text(FAKE_R1KIT)
    fake.chmod(0o755)

    def tasks(**env):
        calls = tmp_path / f"calls-{len(list(tmp_path.glob('calls-*')))}"
        out = tmp_path / f"out-{calls.name}"
        full = {
            **{k: v for k, v in os.environ.items() if k != "SMOKE"},
            "R1KIT": str(fake),
            "R1KIT_CALLS": str(calls),
            "OUT": str(out),
            "RM": "none",
            "PYTHON": sys.executable,
            "TEACHER": "t",
            "LONG_MODEL": "l",
            **env,
        }
        res = subprocess.run(
            ["bash", str(RECIPES / name)],
            check=False,
            capture_output=True,
            text=True,
            env=full,
            cwd=tmp_path,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        found = {}
        for line in calls.read_text().splitlines():
            words = line.split()
            if "--task" in words:
                found.setdefault(words[0], set()).add(words[words.index("--task") + 1])
        return found

    split = tasks(TRAIN_TASK="gsm8k", EVAL_TASK="math500")
    assert split.pop("evaluate") == {"math500"}
    assert split and all(v == {"gsm8k"} for v in split.values()), split
    both = tasks(TASK="mgsm")
    assert all(v == {"mgsm"} for v in both.values()) and "evaluate" in both, both
