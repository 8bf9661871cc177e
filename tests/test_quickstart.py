"""CI runs the quickstart's first stages (data -> SFT -> GRPO) through the real script, turned down."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_first_stages(tmp_path):
    out = tmp_path / "qs"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "R1KIT": f"{sys.executable} -m r1kit",
        "OUT": str(out),
        "STOP_AFTER": "grpo",
        "SFT_STEPS": "4",
        "GRPO_MINUTES": "0.05",
        "TRAIN_SIZE": "64",
        "TEST_SIZE": "16",
    }
    res = subprocess.run(
        ["bash", str(REPO / "recipes" / "quickstart.sh")],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "stopping after grpo" in res.stderr
    for stage in ("data", "sft", "grpo"):
        assert (out / stage / "manifest.json").is_file(), stage
    assert not (out / "rejection").exists()  # stopped where asked
    assert json.loads((out / "sft" / "manifest.json").read_text())["global_step"] == 4
    steps = [json.loads(line) for line in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if "reward" in r and "step" in r]
    assert steps and all(0.0 <= r["rewards/accuracy/mean"] <= 1.0 for r in steps)
    config = (out / "grpo" / "resolved_config.yaml").read_text()
    assert "preset: r1-zero" in config and "- accuracy=1" in config and "- format=0.25" in config


def finished_stage(path: Path, stage: str, metrics: list[dict] | None = None) -> None:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"r1kit_version": "0", "stage": stage}))
    if metrics:
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))


def evaluation(path: Path, out: Path, numbers: dict, greedy: bool) -> None:
    """An evaluate output of the quickstart's five models: numbers = {model: (pass@1, stderr, mean tokens)}."""
    finished_stage(path, "evaluate")
    k = 1 if greedy else 4
    results = {
        str(out / m): {"num_samples": k, "pass@1": p, "pass@1_stderr": se, "mean_tokens": t}
        for m, (p, se, t) in numbers.items()
    }
    (path / "results.json").write_text(json.dumps(results))
    (path / "resolved_config.yaml").write_text(
        f"greedy: {str(greedy).lower()}\ntemperature: 0.6\nnum_samples: {k}\n"
    )


def quickstart_verdicts(tmp_path: Path, sampled: dict, greedy: dict) -> list[str]:
    """The quickstart's last stage on finished outputs of the earlier ones (the script skips those):
    `r1kit plot`, `r1kit report` and the verdicts, for real."""
    out = tmp_path / "qs"
    for name, stage in (
        ("data", "data"),
        ("rejection", "rejection-sample"),
        ("student", "sft"),
        ("merged", "merge"),
    ):
        finished_stage(out / name, stage)
    for name, stage in (("sft", "sft"), ("grpo", "grpo"), ("dpo", "dpo-shorten")):
        finished_stage(
            out / name, stage, [{"step": s, "loss": 1.0 / s, "reward": 0.1 * s} for s in (1, 2, 3)]
        )
    evaluation(out / "eval", out, sampled, greedy=False)
    evaluation(out / "eval_greedy", out, greedy, greedy=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "R1KIT": f"{sys.executable} -m r1kit", "OUT": str(out)}
    res = subprocess.run(
        ["bash", str(REPO / "recipes" / "quickstart.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "curves" / "curves.png").is_file() and (out / "report" / "report.md").is_file()
    return [line for line in res.stdout.splitlines() if line.startswith("Did ")]


def test_quickstart_says_whether_grpo_beat_sft_and_long2short_shortened(tmp_path):
    # model: (pass@1, its standard error, mean tokens)
    sampled = {
        "sft": (0.265, 0.03, 72.6),
        "grpo": (0.735, 0.03, 67.6),
        "student": (0.2, 0.03, 70.0),
        "dpo": (0.70, 0.03, 61.5),
        "merged": (0.74, 0.03, 64.0),
    }
    greedy = {
        "sft": (0.30, 0.03, 66.5),
        "grpo": (0.80, 0.03, 67.5),
        "student": (0.2, 0.03, 60.0),
        "dpo": (0.78, 0.03, 67.0),
        "merged": (0.81, 0.03, 68.0),
    }
    assert quickstart_verdicts(tmp_path / "a", sampled, greedy) == [
        (
            "Did GRPO beat SFT (pass@1 higher beyond 2 standard errors)? yes (T 0.6, 4 samples: pass@1 26.5% -> 73.5% "
            "(higher); greedy: pass@1 30.0% -> 80.0% (higher))"
        ),
        (
            "Did long2short by DPO-shorten shorten GRPO's answers? yes (T 0.6, 4 samples: 67.6 -> 61.5 tokens (-9.0%), "
            "pass@1 73.5% -> 70.0% (within noise); greedy: 67.5 -> 67.0 tokens (-0.7%), pass@1 80.0% -> 78.0% "
            "(within noise))"
        ),
        (
            "Did long2short by the merge shorten GRPO's answers? partly (T 0.6, 4 samples: 67.6 -> 64.0 tokens (-5.3%), "
            "pass@1 73.5% -> 74.0% (within noise); greedy: 67.5 -> 68.0 tokens (+0.7%), pass@1 80.0% -> 81.0% "
            "(within noise))"
        ),
    ]
    # the same script on other numbers: the verdicts follow the table, they are not written in
    sampled.update(grpo=(0.27, 0.03, 72.0), dpo=(0.25, 0.03, 80.0), merged=(0.26, 0.03, 75.0))
    greedy.update(grpo=(0.31, 0.03, 66.0), dpo=(0.30, 0.03, 70.0), merged=(0.31, 0.03, 66.0))
    lines = quickstart_verdicts(tmp_path / "b", sampled, greedy)
    assert [line.split("? ")[1].split(" (")[0] for line in lines] == ["no", "no", "no"]
    assert "T 0.6, 4 samples: pass@1 26.5% -> 27.0% (within noise)" in lines[0]
