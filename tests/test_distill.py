"""`r1kit distill` through the real CLI: the SFT'd tiny Qwen2 teaches a tiny Llama student
(another architecture; text is the interface), and the student beats its untrained self on
held-out problems."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
ENV.pop("R1KIT_DEBUG", None)


def cli(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r1kit", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from test_rejection_sample import build_teacher

    return build_teacher(tmp_path_factory.getbasetemp() / "r1kit-teacher")


def heldout(spec: str, data: Path) -> dict:
    import torch

    from r1kit.data import prepare_dataset
    from r1kit.evaluation import evaluate_model
    from r1kit.generation import SamplingParams
    from r1kit.models import load_model_and_tokenizer

    torch.set_num_threads(1)  # in-process generation; the cores are shared

    test = prepare_dataset(str(data), split="test", template="chat")
    model, tok = load_model_and_tokenizer(spec)
    metrics, _ = evaluate_model(
        model, tok, test, SamplingParams(n=8, temperature=1.0, max_new_tokens=96, seed=1)
    )
    return metrics


def test_distilled_student_beats_the_untrained_student(teacher, tmp_path):
    data, model = teacher
    out = tmp_path / "distill"
    res = cli(
        "distill",
        "--teacher",
        model,
        "--student",
        "tiny-llama",
        "--data",
        data,
        "--output",
        out,
        "--num-samples",
        8,
        "--max-new-tokens",
        96,
        "--max-steps",
        120,
        "--learning-rate",
        3e-3,
        "--batch-size",
        32,
        "--logging-steps",
        40,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    # layout: a full rejection-sample output, the student's SFT logs, the student checkpoint at OUT/model
    assert (out / "traces" / "manifest.json").is_file() and (out / "traces" / "pass_rates").is_dir()
    assert json.loads((out / "traces" / "manifest.json").read_text())["stage"] == "rejection-sample"
    assert json.loads((out / "sft" / "manifest.json").read_text())["stage"] == "sft"
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_type"] == "llama"
    manifest = json.loads((out / "manifest.json").read_text())
    report = json.loads((out / "traces" / "report.json").read_text())
    assert manifest["stage"] == "distill" and manifest["trace_rows"] == report["output_rows"] > 0
    assert (
        manifest["unscorable_gold"] == report["unscorable_gold"] == 0
        and manifest["unscorable_gold_ids"] == []
    )
    assert manifest["student_steps"] == 120
    # the student's training shows progress in the log (step/total, elapsed, ETA), and the published
    # model carries a card naming the stage, the student as base model, the teacher and the final metrics
    assert any(
        line.startswith("sft step 120/120 | elapsed ") and " | ETA " in line
        for line in res.stderr.splitlines()
    )
    from r1kit.progress import fmt_value

    card = (out / "model" / "README.md").read_text()
    student_steps = [
        r
        for r in map(json.loads, (out / "sft" / "metrics.jsonl").read_text().splitlines())
        if "loss" in r and "event" not in r
    ]
    assert (
        "(stage `distill`)" in card
        and "| base model | `tiny-llama` |" in card
        and f"| teacher | `{model}` |" in card
    )
    assert (
        f"| loss | {fmt_value(student_steps[-1]['loss'])} |" in card
        and f"| trace_rows | {report['output_rows']} |" in card
    )

    student = heldout(str(out), data)
    untrained = heldout("tiny-llama", data)
    teacher_acc = heldout(str(model), data)
    print(
        f"\ndistill: {report['output_rows']} traces from {report['prompts']} prompts x k={report['k']} "
        f"(teacher train pass rate {report['mean_pass_rate']:.3f}); held-out pass@1 (20 prompts x 8 samples, "
        f"T=1): teacher {teacher_acc['pass@1']:.3f}, untrained tiny-llama {untrained['pass@1']:.3f}, "
        f"distilled tiny-llama {student['pass@1']:.3f}"
    )
    assert student["pass@1"] > untrained["pass@1"] + 0.05


def test_teacher_without_chat_template_is_refused_before_generation(teacher, tmp_path):
    from test_rejection_sample import _tokenizer_without_chat_template

    data, model = teacher
    bare = _tokenizer_without_chat_template(model, tmp_path / "bare")
    out = tmp_path / "out"
    res = cli("distill", "--teacher", bare, "--data", data, "--template", "chat", "--output", out)
    assert res.returncode == 2
    assert "--teacher" in res.stderr and "no chat template" in res.stderr
    assert not out.exists() and not (tmp_path / ".out.partial").exists()
    res = cli("distill", "--teacher", model, "--data", data, "--output", out, "--keep", "all")
    assert res.returncode == 2 and "--keep 'all'" in res.stderr
    # the old name of --keep still works for one release, with a notice
    res = cli("distill", "--teacher", model, "--data", data, "--output", out, "--policy", "all")
    assert res.returncode == 2 and "--keep 'all'" in res.stderr
    assert "r1kit: --policy is deprecated; use --keep" in res.stderr
