"""r1kit.report: one table from several `r1kit evaluate` outputs, labelled by their real settings.

The command (`r1kit report`) is tested through the CLI in test_progress_and_outputs.py; these are
the table's rules on hand-made evaluations.
"""

import json

import pytest
import yaml

from r1kit.errors import R1kitError
from r1kit.report import build_table, compare, label_of, to_markdown


def write_eval(path, results, **settings):
    path.mkdir()
    (path / "results.json").write_text(json.dumps(results))
    (path / "resolved_config.yaml").write_text(yaml.safe_dump(settings))
    return path


def test_labels_come_from_the_real_settings():
    assert label_of({"greedy": True, "temperature": 0.6, "samples_per_prompt": 1}) == "greedy"
    assert label_of({"greedy": False, "temperature": 0.6, "samples_per_prompt": 1}) == "T 0.6, 1 sample"
    assert label_of({"greedy": False, "temperature": 1.0, "samples_per_prompt": 4}) == "T 1, 4 samples"
    assert label_of({"samples": "runs/eval", "temperature": 0.6, "samples_per_prompt": 2}) == "scored samples"
    assert label_of({"samples_per_prompt": 1}) == "1 sample (settings unknown)"


def test_table_joins_sampled_and_greedy_evaluations(tmp_path):
    sampled = {
        "runs/sft": {
            "num_samples": 4,
            "pass@1": 0.29,
            "pass@1_stderr": 0.04,
            "pass@4": 0.57,
            "cons@4": 0.36,
            "mean_tokens": 72.585,
        },
        "runs/grpo": {
            "num_samples": 4,
            "pass@1": 0.7875,
            "pass@1_stderr": 0.03,
            "pass@4": 0.85,
            "cons@4": 0.8,
            "mean_tokens": 67.61,
        },
    }
    hot = {"runs/sft": {"num_samples": 4, "pass@1": 0.2, "cons@4": 0.25, "mean_tokens": 80.0}}
    one = {
        "runs/sft": {"num_samples": 1, "pass@1": 0.3, "pass@1_stderr": 0.05, "mean_tokens": 70.0},
        "runs/grpo": {"num_samples": 1, "pass@1": 0.32, "pass@1_stderr": 0.05, "mean_tokens": 75.0},
    }
    greedy = {
        "runs/sft": {"num_samples": 1, "pass@1": 0.425, "mean_tokens": 66.5},
        "runs/grpo": {"num_samples": 1, "pass@1": 0.815, "mean_tokens": 67.5},
    }
    dirs = [
        write_eval(tmp_path / "e1", sampled, temperature=0.6, num_samples=4, greedy=False),
        write_eval(tmp_path / "e2", hot, temperature=1.0, num_samples=4, greedy=False),
        write_eval(tmp_path / "e3", one, temperature=0.6, num_samples=1, greedy=False),
        write_eval(tmp_path / "e4", greedy, temperature=0.6, num_samples=1, greedy=True),
    ]
    table = build_table(dirs)
    assert table.header == [
        "model",
        "T 0.6, 4 samples: pass@1",
        "T 0.6, 4 samples: pass@4",
        "T 0.6, 4 samples: cons@4",
        "T 0.6, 4 samples: mean tokens",
        "T 1, 4 samples: pass@1",
        "T 1, 4 samples: cons@4",
        "T 1, 4 samples: mean tokens",
        "T 0.6, 1 sample: pass@1",
        "T 0.6, 1 sample: mean tokens",
        "greedy: pass@1",
        "greedy: mean tokens",
    ]
    assert table.rows[0] == [
        "sft",
        "29.0% ± 4.0",
        "57.0%",
        "36.0%",
        "72.6",
        "20.0%",
        "25.0%",
        "80.0",
        "30.0% ± 5.0",
        "70.0",
        "42.5%",
        "66.5",
    ]
    # grpo was not in the T=1 evaluation: its cells there are dashes, not shifted values
    assert table.rows[1] == [
        "grpo",
        "78.8% ± 3.0",
        "85.0%",
        "80.0%",
        "67.6",
        "-",
        "-",
        "-",
        "32.0% ± 5.0",
        "75.0",
        "81.5%",
        "67.5",
    ]
    md = to_markdown(table.header, table.rows)
    assert (
        md.splitlines()[0].startswith("| model | T 0.6, 4 samples: pass@1") and "| grpo | 78.8% ± 3.0 |" in md
    )

    verdicts = {c["evaluation"]: c for c in compare(table, "sft", "grpo")}
    assert verdicts["T 0.6, 4 samples"]["accuracy"] == "higher"  # +49.75 points, SE 5
    assert verdicts["T 0.6, 4 samples"]["length"] == "shorter"
    assert verdicts["T 0.6, 1 sample"]["accuracy"] == "within noise"  # +2 points, 2 SE = 14.1
    assert verdicts["T 0.6, 1 sample"]["length"] == "longer"
    assert verdicts["greedy"]["accuracy"] == "no standard error"
    assert "T 1, 4 samples" not in verdicts  # grpo absent there
    assert compare(table, "grpo", "sft")[0]["accuracy"] == "lower"
    with pytest.raises(R1kitError, match="no model 'sfft'.*did you mean 'sft'"):
        compare(table, "sfft", "grpo")


def test_folders_with_one_name_keep_their_paths_and_equal_labels_their_folders(tmp_path):
    a = write_eval(
        tmp_path / "a",
        {
            "x/sft": {"num_samples": 1, "pass@1": 0.5, "mean_tokens": 1.0},
            "y/sft": {"num_samples": 1, "pass@1": 0.25, "mean_tokens": 2.0},
        },
        temperature=0.6,
        num_samples=1,
    )
    b = write_eval(
        tmp_path / "b",
        {"x/sft": {"num_samples": 1, "pass@1": 0.75, "mean_tokens": 3.0}},
        temperature=0.6,
        num_samples=1,
    )
    table = build_table([a, b])
    assert [r[0] for r in table.rows] == ["x/sft", "y/sft"]
    assert table.header[1:] == [
        "T 0.6, 1 sample (a): pass@1",
        "T 0.6, 1 sample (a): mean tokens",
        "T 0.6, 1 sample (b): pass@1",
        "T 0.6, 1 sample (b): mean tokens",
    ]


def test_not_an_evaluation_is_refused(tmp_path):
    with pytest.raises(R1kitError, match="not an r1kit evaluate output"):
        build_table([tmp_path])
