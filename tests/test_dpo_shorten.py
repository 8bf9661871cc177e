"""`r1kit dpo-shorten` (Kimi k1.5 long2short DPO) through the real CLI.

Fast tier: pairs built from a hand-made samples file (chosen / rejected / skip counts checked
by hand, including the 1.5x rule) and a 2-step DPO run that leaves a loadable checkpoint.
Slow tier: on the SFT'd tiny model, DPO on its own samples shortens its held-out answers.
"""

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


def ok(res):
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def trace(answer: int, checks: int) -> str:
    lines = [
        f"{answer}+0+0={answer} w{answer} c0",
        f"so {answer}",
        *[f"wait, check {answer}-0={answer} ok"] * checks,
    ]
    return "<think>\n" + "\n".join(lines) + f"\n</think><answer>{answer}</answer>"


# (prompt, answer, [(completion, correct, num_tokens)])
SAMPLES = [
    # q1: shortest correct has 40 tokens -> 1.5 x 40 = 60: the 60-token correct one stays, 61 and 90 go
    (
        "What is 1+2?",
        "3",
        [
            (trace(3, 0), True, 40),
            (trace(3, 1), True, 60),
            (trace(3, 2), True, 61),
            (trace(3, 3), True, 90),
            (trace(4, 0), False, 40),
        ],
    ),
    # q2: no correct sample -> skipped and counted
    ("What is 2+2?", "4", [(trace(5, 0), False, 40), (trace(6, 1), False, 50)]),
    # q3: two correct of similar length, nothing to reject -> skipped
    ("What is 3+3?", "6", [(trace(6, 0), True, 40), (trace(6, 0), True, 41)]),
    # q4: ties in length go to the earlier sample
    ("What is 4+1?", "5", [(trace(5, 1), True, 50), (trace(5, 1), True, 50), (trace(7, 0), False, 30)]),
    # q5: a gold the judge could not score (correct None): skipped, counted and named
    ("What is 5+1?", "\\frac{", [(trace(6, 0), None, 40), (trace(6, 2), None, 80)]),
]


def write_samples(path: Path) -> Path:
    with path.open("w") as f:
        for prompt, answer, samples in SAMPLES:
            for i, (completion, correct, n) in enumerate(samples):
                f.write(
                    json.dumps(
                        {
                            "prompt": prompt,
                            "answer": answer,
                            "completion": completion,
                            "correct": correct,
                            "num_tokens": n,
                            "sample_index": i,
                        }
                    )
                    + "\n"
                )
    return path


def test_pairs_by_hand_and_a_two_step_dpo_run(tmp_path):
    samples = write_samples(tmp_path / "samples.jsonl")
    out = tmp_path / "dpo"
    ok(
        cli(
            "dpo-shorten",
            "--model",
            "tiny",
            "--samples",
            samples,
            "--output",
            out,
            "--max-steps",
            2,
            "--batch-size",
            2,
            "--learning-rate",
            1e-3,
            "--logging-steps",
            1,
        )
    )
    from datasets import load_from_disk

    pairs = load_from_disk(str(out / "pairs"))
    got = [(p["prompt"], p["chosen_tokens"], p["rejected_tokens"], p["reason"]) for p in pairs]
    assert got == [
        ("What is 1+2?", 40, 61, "long"),
        ("What is 1+2?", 40, 90, "long"),
        ("What is 1+2?", 40, 40, "wrong"),
        ("What is 4+1?", 50, 30, "wrong"),
    ]
    first = pairs[0]
    assert first["chosen"] == trace(3, 0) and first["rejected"] == trace(3, 2)
    assert pairs[2]["rejected"] == trace(4, 0)
    report = json.loads((out / "report.json").read_text())
    assert report == {
        "prompts": 5,
        "prompts_with_pairs": 2,
        "skipped_no_correct": 1,
        "skipped_no_rejected": 1,
        "skipped_unscorable": 1,
        "pairs": 4,
        "pairs_wrong": 2,
        "pairs_long": 2,
        "unscorable_gold": 1,
        "unscorable_gold_ids": [4],
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["global_step"] == 2 and manifest["skipped_no_correct"] == 1
    assert manifest["unscorable_gold"] == 1 and manifest["unscorable_gold_ids"] == [4]
    losses = [
        m["loss"]
        for m in (json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())
        if "loss" in m
    ]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)

    import torch

    from r1kit.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(out))
    base, _ = load_model_and_tokenizer("tiny")
    ids = torch.tensor([tok("What is 1+2?")["input_ids"]])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base(ids).logits)  # trained, and loadable

    # a ratio of 1.6 keeps the 61-token answer (61 <= 64) out of the rejected set
    out2 = tmp_path / "dpo2"
    ok(
        cli(
            "dpo-shorten",
            "--model",
            "tiny",
            "--samples",
            samples,
            "--output",
            out2,
            "--max-steps",
            1,
            "--length-ratio",
            1.6,
            "--max-pairs-per-prompt",
            1,
        )
    )
    pairs2 = load_from_disk(str(out2 / "pairs"))
    assert [(p["rejected_tokens"], p["reason"]) for p in pairs2] == [(90, "long"), (30, "wrong")]


def test_bad_inputs(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "s.jsonl"
    missing.write_text(json.dumps({"prompt": "q", "completion": "c", "num_tokens": 3}) + "\n")
    res = cli("dpo-shorten", "--model", "tiny", "--samples", missing, "--output", out)
    assert res.returncode == 2 and "'correct'" in res.stderr and not out.exists()
    none_right = tmp_path / "wrong.jsonl"
    none_right.write_text(
        "".join(
            json.dumps({"prompt": "q", "completion": c, "correct": False, "num_tokens": 3}) + "\n"
            for c in ("a", "b")
        )
    )
    res = cli("dpo-shorten", "--model", "tiny", "--samples", none_right, "--output", out)
    assert res.returncode == 2 and "no preference pairs" in res.stderr and "1 had no correct" in res.stderr
    assert not out.exists() and not (tmp_path / ".out.partial").exists()
    res = cli(
        "dpo-shorten", "--model", "tiny", "--samples", none_right, "--output", out, "--length-ratio", 0.5
    )
    assert res.returncode == 2 and "--length-ratio (0.5)" in res.stderr


@pytest.mark.slow
def test_dpo_shortens_heldout_answers_without_losing_accuracy(tmp_path_factory):
    import torch
    from test_rejection_sample import build_teacher

    from r1kit.data import prepare_dataset
    from r1kit.evaluation import evaluate_model
    from r1kit.generation import SamplingParams
    from r1kit.models import load_model_and_tokenizer

    torch.set_num_threads(1)  # in-process generation; the cores are shared

    data, teacher = build_teacher(tmp_path_factory.getbasetemp() / "r1kit-teacher")
    out = tmp_path_factory.mktemp("dpo") / "dpo"
    ok(
        cli(
            "dpo-shorten",
            "--model",
            teacher,
            "--data",
            data,
            "--num-samples",
            8,
            "--max-new-tokens",
            96,
            "--output",
            out,
            "--epochs",
            2,
            "--batch-size",
            16,
            "--learning-rate",
            5e-5,
            "--beta",
            0.1,
            "--sft-weight",
            1.0,
            "--logging-steps",
            10,
        )
    )
    test = prepare_dataset(str(data), split="test", template="chat")
    params = SamplingParams(n=8, temperature=1.0, max_new_tokens=96, seed=1)
    results = {}
    for name, spec in (("before", teacher), ("after", out)):
        model, tok = load_model_and_tokenizer(str(spec))
        metrics, _ = evaluate_model(model, tok, test, params)
        results[name] = metrics
    before, after = results["before"], results["after"]
    report = json.loads((out / "report.json").read_text())
    print(
        f"\ndpo-shorten: {report['pairs']} pairs ({report['pairs_wrong']} wrong, {report['pairs_long']} long) from "
        f"{report['prompts']} prompts, {report['skipped_no_correct']} skipped with no correct sample; held-out "
        f"(20 prompts x 8 samples, T=1): accuracy {before['pass@1']:.3f} -> {after['pass@1']:.3f}, mean tokens "
        f"{before['mean_tokens']:.1f} -> {after['mean_tokens']:.1f}"
    )
    assert after["mean_tokens"] < before["mean_tokens"] - 3
    assert after["pass@1"] >= before["pass@1"] - 0.05
