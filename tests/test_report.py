"""r1kit.report: one summary table from several `r1kit evaluate` outputs."""

import json

import pytest

from r1kit.errors import R1kitError
from r1kit.report import build_table, to_markdown


def write_eval(path, results, temperature):
    path.mkdir()
    (path / "results.json").write_text(json.dumps(results))
    (path / "resolved_config.yaml").write_text(f"temperature: {temperature}\n")
    return path


def test_table_joins_sampled_and_greedy_evaluations(tmp_path):
    sampled = {"runs/sft": {"num_samples": 4, "pass@1": 0.29, "pass@4": 0.57, "cons@4": 0.36, "mean_tokens": 72.585},
               "runs/grpo": {"num_samples": 4, "pass@1": 0.7875, "pass@4": 0.85, "cons@4": 0.8, "mean_tokens": 67.61}}
    hot = {"runs/sft": {"num_samples": 4, "pass@1": 0.2, "cons@4": 0.25, "mean_tokens": 80.0}}
    greedy = {"runs/sft": {"num_samples": 1, "accuracy": 0.425, "mean_tokens": 66.5},
              "runs/grpo": {"num_samples": 1, "accuracy": 0.815, "mean_tokens": 67.5}}
    dirs = [write_eval(tmp_path / "e1", sampled, 0.6), write_eval(tmp_path / "e2", hot, 1.0),
            write_eval(tmp_path / "e3", greedy, 1.0)]
    header, rows = build_table(dirs)
    assert header == ["stage", "T=0.6 pass@1 (4 samples)", "T=0.6 pass@4", "T=0.6 cons@4", "T=0.6 mean tokens",
                      "T=1 pass@1 (4 samples)", "T=1 cons@4", "T=1 mean tokens", "greedy accuracy",
                      "greedy mean tokens"]
    assert rows[0] == ["sft", "29.0%", "57.0%", "36.0%", "72.6", "20.0%", "25.0%", "80.0", "42.5%", "66.5"]
    # grpo was not in the T=1 evaluation: its cells there are dashes, not shifted values
    assert rows[1] == ["grpo", "78.8%", "85.0%", "80.0%", "67.6", "-", "-", "-", "81.5%", "67.5"]
    md = to_markdown(header, rows)
    assert md.splitlines()[0].startswith("| stage | T=0.6 pass@1") and "| grpo | 78.8% |" in md


def test_not_an_evaluation_is_refused(tmp_path):
    with pytest.raises(R1kitError, match="not an r1kit evaluate output"):
        build_table([tmp_path])
