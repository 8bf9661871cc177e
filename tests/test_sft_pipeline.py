"""Issue-2 end to end through the real CLI: build the task, `r1kit sft --model tiny`, `r1kit
evaluate` the SFT model and the untrained one on the held-out split; SFT must raise accuracy."""

import json

from conftest import run_cli
from test_rejection_sample import build_teacher


def test_sft_raises_held_out_accuracy(tmp_path_factory):
    data, sft = build_teacher(tmp_path_factory.getbasetemp() / "r1kit-teacher")
    manifest = json.loads((sft / "manifest.json").read_text())
    assert manifest["stage"] == "sft" and manifest["global_step"] == 120
    out = tmp_path_factory.mktemp("sft-eval") / "eval"
    res = run_cli(
        "evaluate",
        "--model",
        sft,
        "--model",
        "tiny",
        "--data",
        data,
        "--template",
        "chat",
        "--greedy",
        "--max-new-tokens",
        128,
        "--output",
        out,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    trained, untrained = results[str(sft)], results["tiny"]
    assert trained["num_prompts"] == untrained["num_prompts"] == 20  # the held-out (test) split
    assert untrained["accuracy"] == 0.0  # a random-init model does not add numbers
    # 120 SFT steps on 80 one-digit sums: 20% greedy at 96 new tokens when measured (25% truncated)
    assert trained["accuracy"] >= 0.15, trained  # a clear margin over 0: at least 3 of 20 held-out sums
    assert trained["format_rate"] > untrained["format_rate"]
