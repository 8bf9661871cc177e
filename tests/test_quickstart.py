"""CI runs the quickstart's first stages (data -> SFT -> GRPO) through the real script, turned down."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_first_stages(tmp_path):
    out = tmp_path / "qs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "R1KIT": f"{sys.executable} -m r1kit", "OUT": str(out),
           "STOP_AFTER": "grpo", "SFT_STEPS": "4", "GRPO_MINUTES": "0.05", "TRAIN_SIZE": "64", "TEST_SIZE": "16"}
    res = subprocess.run(["bash", str(REPO / "recipes" / "quickstart.sh")], env=env, capture_output=True,
                         text=True, timeout=600)
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
