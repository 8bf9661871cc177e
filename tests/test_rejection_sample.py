"""`r1kit rejection-sample` through the real CLI on the tiny model and the built-in task.

The teacher is the tiny model after ~40 s of SFT on one-digit additions (about 25% of its
samples are right at temperature 1), so a run of k = 8 samples on 32 prompts has right and
wrong samples for most prompts.
"""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1kit.rewards import resolve_reward

# One thread: the tiny model gains nothing from two, and the machine's cores are shared.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
ENV.pop("R1KIT_DEBUG", None)
SAMPLE = ["--num-samples", "8", "--max-new-tokens", "96", "--limit", "32", "--temperature", "1.0"]


def cli(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r1kit", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
        timeout=timeout,
    )


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def build_teacher(root: Path) -> tuple[Path, Path]:
    """(data, teacher): one-digit additions (80 train / 20 test) and the tiny model SFT'd on them.
    Built once per test session in the session's base temp folder (shared by the three test files)."""
    data, teacher = root / "data", root / "teacher"
    if not (teacher / "manifest.json").exists():
        if not (data / "manifest.json").exists():
            ok(
                cli(
                    "data",
                    "arithmetic",
                    "--output",
                    data,
                    "--train-size",
                    80,
                    "--test-size",
                    20,
                    "--digits",
                    1,
                )
            )
        ok(
            cli(
                "sft",
                "--model",
                "tiny",
                "--data",
                data,
                "--output",
                teacher,
                "--max-steps",
                120,
                "--learning-rate",
                3e-3,
                "--batch-size",
                32,
                "--logging-steps",
                40,
            )
        )
    return data, teacher


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_teacher(tmp_path_factory.getbasetemp() / "r1kit-teacher")


@pytest.fixture(scope="module")
def runs(teacher, tmp_path_factory):
    """The same samples (same seed) kept three ways."""
    data, model = teacher
    work = tmp_path_factory.mktemp("rs")
    out = {}
    for keep in ("shortest-correct", "all-correct", "all"):
        out[keep] = work / keep
        ok(
            cli(
                "rejection-sample",
                "--model",
                model,
                "--data",
                data,
                "--keep",
                keep,
                "--output",
                out[keep],
                *SAMPLE,
            )
        )
    return out


def load(path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


def test_kept_rows_are_all_correct_and_sft_ready(runs):
    data = load(runs["all-correct"] / "data")
    assert len(data) > 0
    accuracy = resolve_reward("accuracy").fn
    scores = accuracy(completions=data["completion"], answer=data["answer"], task=data["task"])
    assert scores == [1.0] * len(data)  # every kept row re-checked
    for row in data:
        assert row["messages"][0] == {"role": "user", "content": row["question"]}
        assert row["messages"][-1] == {"role": "assistant", "content": row["completion"]}
        assert row["completion"].startswith("<think>") and row["reward_accuracy"] == 1.0
        assert row["source"] == "sample" and 0 < row["pass_rate"] <= 1
    # all-correct keeps exactly the correct samples
    samples = load(runs["all-correct"] / "samples")
    assert len(data) == sum(1 for c in samples["correct"] if c)


def test_shortest_correct_keeps_the_shortest_correct_sample_per_prompt(runs):
    samples = load(runs["shortest-correct"] / "samples")
    # the same seed gives the same samples whatever the policy
    assert samples["completion"] == load(runs["all"] / "samples")["completion"]
    kept = load(runs["shortest-correct"] / "data")
    expected = {}
    for r in samples:
        if r["correct"]:
            best = expected.get(r["prompt_index"])
            if best is None or (r["num_tokens"], r["sample_index"]) < best:
                expected[r["prompt_index"]] = (r["num_tokens"], r["sample_index"])
    got = {r["prompt_index"]: (r["num_tokens"], r["sample_index"]) for r in kept}
    assert got == expected and len(got) == len(kept)  # one row per prompt that had a correct sample
    report = json.loads((runs["shortest-correct"] / "report.json").read_text())
    print(
        f"\nrejection-sample: {report['prompts']} prompts x k={report['k']}: "
        f"{report['prompts_with_correct']} with a correct sample, mean pass rate {report['mean_pass_rate']:.3f}, "
        f"mean tokens of correct samples {report['mean_tokens_correct']:.1f}, of kept shortest "
        f"{report['mean_tokens_kept']:.1f}"
    )
    assert report["mean_tokens_kept"] < report["mean_tokens_correct"]


def test_pass_rates_and_filter_report(runs):
    out = runs["all-correct"]
    samples = load(out / "samples")
    rates = load(out / "pass_rates")
    assert len(rates) == 32 and set(rates["k"]) == {8}
    for r in rates:
        flags = [s["correct"] for s in samples if s["prompt_index"] == r["prompt_index"]]
        assert r["num_correct"] == sum(flags) and r["pass_rate"] == sum(flags) / 8
    report = json.loads((out / "report.json").read_text())
    steps = report["steps"]
    assert [s["step"] for s in steps] == [
        "generated",
        "correct",
        "language",
        "paragraph",
        "code_block",
        "repetition",
        "keep all-correct",
    ]
    assert steps[0]["samples"] == 256 and steps[0]["prompts"] == 32
    for before, after in itertools.pairwise(steps):
        assert after["samples"] == before["samples"] - after["dropped"]
        assert after["prompts"] <= before["prompts"]
    assert steps[1]["samples"] == sum(rates["num_correct"])
    assert steps[1]["prompts"] == sum(1 for n in rates["num_correct"] if n > 0)
    assert steps[-1]["samples"] == report["output_rows"] == len(load(out / "data"))
    dropped_by = samples["dropped_by"]
    assert sum(1 for d in dropped_by if d == "correct") == steps[1]["dropped"]
    # --keep all skips the correctness step: every sample is kept, right or wrong
    all_report = json.loads((runs["all"] / "report.json").read_text())
    assert all_report["output_rows"] == 256 and "correct" not in [s["step"] for s in all_report["steps"]]
    assert 0 < sum(1 for c in load(runs["all"] / "data")["correct"] if c) < 256


def test_mix_ratio(teacher, tmp_path):
    data, model = teacher
    mix = tmp_path / "chat.jsonl"
    with mix.open("w") as f:
        for i in range(5):
            f.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"Say hi {i}"},
                            {"role": "assistant", "content": f"hi {i}"},
                        ]
                    }
                )
                + "\n"
            )
    out = tmp_path / "mixed"
    ok(
        cli(
            "rejection-sample",
            "--model",
            model,
            "--data",
            data,
            "--output",
            out,
            "--mix-data",
            mix,
            "--mix-ratio",
            "0.25",
            "--keep",
            "first-correct",
            *SAMPLE,
        )
    )
    ds = load(out / "data")
    n_sample = sum(1 for s in ds["source"] if s == "sample")
    n_mix = sum(1 for s in ds["source"] if s == "mix")
    assert n_mix == round(0.25 * n_sample / 0.75)  # the mix makes up a quarter of the output
    assert abs(n_mix / len(ds) - 0.25) < 0.02
    mixed = [r for r in ds if r["source"] == "mix"]
    assert all(
        r["messages"][-1]["content"] == r["completion"] and r["completion"].startswith("hi ") for r in mixed
    )
    assert json.loads((out / "report.json").read_text())["mix_rows"] == n_mix


def test_unscorable_golds_are_excluded_and_reported(teacher, tmp_path):
    """A prompt whose gold the judge cannot score is never right nor wrong: its samples get correct
    None, it has no pass rate, and report.json / the manifest name it."""
    data, model = teacher
    from datasets import load_from_disk

    test = load_from_disk(str(data / "data"))["test"]
    rows = [{"question": q, "answer": a} for q, a in zip(test["question"][:3], test["answer"][:3])]
    rows.insert(1, {"question": test["question"][3], "answer": "\\frac{"})
    src = tmp_path / "q.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rs"
    ok(
        cli(
            "rejection-sample",
            "--model",
            model,
            "--data",
            src,
            "--keep",
            "all",
            "--output",
            out,
            "--num-samples",
            2,
            "--max-new-tokens",
            64,
        )
    )
    report = json.loads((out / "report.json").read_text())
    assert report["unscorable_prompts"] == report["unscorable_gold"] == 1 and report[
        "unscorable_gold_ids"
    ] == [1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["unscorable_gold_ids"] == [1]
    samples = load(out / "samples")
    assert [c is None for c in samples["correct"]] == [i == 1 for i in samples["prompt_index"]]
    assert load(out / "pass_rates")["pass_rate"][1] is None


def _tokenizer_without_chat_template(model: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(model / "model", dest)
    for f in dest.glob("chat_template*"):
        f.unlink()
    cfg_path = dest / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg))
    return dest


def assert_refused(res, out: Path, *needles):
    assert res.returncode == 2, res.stderr[-2000:]
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("r1kit: error:"), res.stderr[-2000:]
    for needle in needles:
        assert needle in line, line
    assert not out.exists() and not (out.parent / f".{out.name}.partial").exists()


def test_bad_inputs_exit_2_and_write_nothing(teacher, tmp_path):
    data, model = teacher
    out = tmp_path / "out"
    # the untrained model never answers right
    res = cli(
        "rejection-sample",
        "--model",
        "tiny",
        "--data",
        data,
        "--output",
        out,
        "--limit",
        4,
        "--num-samples",
        2,
        "--max-new-tokens",
        8,
    )
    assert_refused(res, out, "no prompt had a correct sample among k=2", "easier split")
    no_template = _tokenizer_without_chat_template(model, tmp_path / "no-template")
    res = cli(
        "rejection-sample",
        "--model",
        no_template,
        "--data",
        data,
        "--output",
        out,
        "--limit",
        4,
        "--template",
        "chat",
    )  # --template auto would take raw for this tokenizer
    assert_refused(res, out, "--template chat renders chat messages", "no chat template")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "What is 1+1?"}) + "\n")
    res = cli(
        "rejection-sample",
        "--model",
        model,
        "--data",
        bad,
        "--output",
        out,
        "--prompt-field",
        "question",
        "--answer-field",
        "answer",
    )
    assert_refused(res, out, "answer")
    res = cli("rejection-sample", "--model", model, "--data", data, "--output", out, "--reward", "acuracy")
    assert_refused(res, out, "unknown reward 'acuracy'", "accuracy")
    res = cli("rejection-sample", "--model", model, "--data", data, "--output", out, "--keep", "longest")
    assert_refused(res, out, "--keep 'longest'")
    out.mkdir()
    res = cli("rejection-sample", "--model", model, "--data", data, "--output", out)
    assert res.returncode == 2 and "already exists" in res.stderr and list(out.iterdir()) == []
