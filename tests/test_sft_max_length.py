"""`r1kit sft` when --max-length leaves rows (or all rows) without a completion to train on.

trl's SFTTrainer drops the rows whose prompt alone fills max_length; with every row dropped its
sampler failed later with "num_samples should be a positive integer value, but got num_samples=0".
"""

import json

from tests.conftest import run_cli


def test_every_row_longer_than_max_length_is_a_one_line_error(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": f"What is {i} plus {i} in words, please?", "completion": f" {2 * i}"})
            + "\n"
            for i in range(4)
        )
    )
    res = run_cli(
        "sft",
        "--model",
        "tiny",
        "--data",
        data,
        "--max-length",
        8,
        "--max-steps",
        1,
        "--output",
        tmp_path / "sft",
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "every one of the 4 rows" in res.stderr and "raise --max-length" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "sft").exists() and not (tmp_path / ".sft.partial").exists()


def test_rows_dropped_for_length_are_counted(tmp_path):
    data = tmp_path / "data.jsonl"
    rows = [{"prompt": "1+1=", "completion": " 2"}] * 3 + [{"prompt": "x" * 80, "completion": " y"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "sft"
    res = run_cli(
        "sft",
        "--model",
        "tiny",
        "--data",
        data,
        "--max-length",
        40,
        "--max-steps",
        1,
        "--batch-size",
        2,
        "--output",
        out,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 of 4 rows dropped" in res.stderr
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"event": "dropped_overlong", "rows": 1, "kept": 3}.items() <= next(
        e for e in events if e.get("event") == "dropped_overlong"
    ).items()
