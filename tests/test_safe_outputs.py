"""Outputs are sacred (DESIGN.md), through the real CLI.

- `--overwrite` replaces an r1kit stage output or an empty folder, nothing else;
- an output that is, contains or lies inside an input of any stage is refused, however the path
  is spelled (symbolic link, relative parts, a stage output's artifact subfolder, a LoRA base);
- SIGTERM (kill, SLURM preemption) is handled like Ctrl-C: checkpoints kept, one line with the
  exact command that resumes; a rerun without --resume refuses to delete those checkpoints;
- after a resume every training step appears once in metrics.jsonl (sft, grpo, dpo-shorten).
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TINY_GRPO, arith_jsonl, run_cli
from typer.testing import CliRunner

from r1kit.cli import app


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time: equal snapshots = untouched."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def partials(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.partial")]


def invoke(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("r1kit: error: "), stderr
    return lines[0]


@pytest.fixture
def one_thread():
    """One torch thread for in-process training: on 2 shared cores, torch's default pool made these
    runs ten times slower (README, "Slow on a 2-core CPU")."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
ENV.pop("R1KIT_DEBUG", None)


def cli(*args) -> subprocess.CompletedProcess:
    """run_cli with one torch thread per process."""
    return subprocess.run(
        [sys.executable, "-m", "r1kit", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Inputs, each alone in a box folder (so that 'output = box' contains exactly that input)."""
    from r1kit.config import build_config
    from r1kit.models import build_tiny_model, build_tiny_tokenizer, save_model
    from r1kit.stages import data

    root = tmp_path_factory.mktemp("safe")
    paths = {}
    data.run(
        build_config(
            data.Config,
            flags={"output": str(root / "box_data" / "data"), "train_size": 16, "test_size": 4, "digits": 1},
        )
    )
    paths["data"] = root / "box_data" / "data"
    tok = build_tiny_tokenizer()
    for name in ("model", "model2"):
        paths[name] = save_model(build_tiny_model(tok), tok, root / f"box_{name}" / name)
    adapter = root / "box_adapter" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(paths["model"]), "peft_type": "LORA"})
    )
    paths["adapter"] = adapter
    samples = root / "box_samples" / "samples.jsonl"
    samples.parent.mkdir()
    samples.write_text(
        json.dumps({"prompt": "p", "completion": "c", "correct": True, "num_tokens": 1}) + "\n"
    )
    paths["samples"] = samples
    mix = root / "box_mix" / "mix.jsonl"
    mix.parent.mkdir()
    mix.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
        )
        + "\n"
    )
    paths["mix"] = mix
    ckpt = root / "box_ckpt" / "checkpoints" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    paths["ckpt"] = ckpt
    config = root / "box_config" / "c.yaml"
    config.parent.mkdir()
    config.write_text("digits: 2\n")
    paths["config"] = config
    return root, paths


# (stage args, the flag under test, which input it gets). Every stage, every input flag.
CASES = [
    (["sft", "--data", "{data}"], "--data", "data"),
    (["sft", "--data", "{data}", "--model", "{model}"], "--model", "model"),
    (["sft", "--data", "{data}", "--resume", "{ckpt}"], "--resume", "ckpt"),
    (["grpo", "--data", "{data}"], "--data", "data"),
    (["grpo", "--data", "{data}", "--model", "{model}"], "--model", "model"),
    (["grpo", "--data", "{data}", "--reward-model", "{model}"], "--reward-model", "model"),
    (["grpo", "--data", "{data}", "--resume", "{ckpt}"], "--resume", "ckpt"),
    (["merge", "--model", "{model2}", "--model", "{model}"], "--model", "model"),
    (["evaluate", "--data", "{data}"], "--data", "data"),
    (["evaluate", "--data", "{data}", "--model", "{model}"], "--model", "model"),
    (
        ["evaluate", "--data", "{data}", "--few-shot", "1", "--few-shot-data", "{mix}"],
        "--few-shot-data",
        "mix",
    ),
    (["evaluate", "--data", "{data}", "--model", "{adapter}"], "--model", "adapter"),
    (["evaluate", "--data", "{data}", "--model", "{adapter}"], "the base model of LoRA adapter", "model"),
    (["rejection-sample", "--data", "{data}"], "--data", "data"),
    (["rejection-sample", "--data", "{data}", "--model", "{model}"], "--model", "model"),
    (["rejection-sample", "--data", "{data}", "--mix-data", "{mix}"], "--mix-data", "mix"),
    (["distill", "--teacher", "{model}", "--data", "{data}"], "--teacher", "model"),
    (["distill", "--teacher", "tiny", "--student", "{model}", "--data", "{data}"], "--student", "model"),
    (["distill", "--teacher", "tiny", "--data", "{data}"], "--data", "data"),
    (["distill", "--teacher", "tiny", "--data", "{data}", "--mix-data", "{mix}"], "--mix-data", "mix"),
    (["dpo-shorten", "--samples", "{samples}"], "--samples", "samples"),
    (["dpo-shorten", "--samples", "{samples}", "--model", "{model}"], "--model", "model"),
    (["dpo-shorten", "--samples", "{samples}", "--resume", "{ckpt}"], "--resume", "ckpt"),
    (["dpo-shorten", "--data", "{data}"], "--data", "data"),
    (["data", "arithmetic", "--config", "{config}"], "--config", "config"),
]


@pytest.mark.parametrize("relation", ["is", "lies inside", "contains"])
@pytest.mark.parametrize("args,flag,name", CASES, ids=[f"{c[0][0]}{c[1]}-{c[2]}" for c in CASES])
def test_output_overlapping_an_input_is_refused(work, args, flag, name, relation):
    root, paths = work
    target = paths[name]
    output = {"is": target, "lies inside": target / "out", "contains": target.parent}[relation]
    before = snapshot(root)
    res = invoke(*[a.format(**paths) for a in args], "--output", output, "--overwrite")
    assert res.exit_code == 2, res.output
    line = one_error_line(res.stderr)
    assert f" {relation} the input " in line and flag in line, line
    assert snapshot(root) == before and not partials(root)


def test_overlap_seen_through_a_symlink_and_relative_parts(work, monkeypatch):
    root, _ = work
    monkeypatch.chdir(root)
    os.symlink("box_data/data", root / "link", target_is_directory=True)
    before = snapshot(root / "box_data")
    # the same folder, spelled three ways; an r1kit output, so --overwrite alone would replace it
    res = invoke("sft", "--data", "link/", "--output", "./box_model/../box_data/data", "--overwrite")
    assert res.exit_code == 2
    assert "is the input --data link/" in one_error_line(res.stderr)
    # the artifact subfolder of a stage output: overwriting the stage output would delete it
    res = invoke("sft", "--data", "box_data/data/data", "--output", "link", "--overwrite")
    assert res.exit_code == 2 and "contains the input --data" in one_error_line(res.stderr)
    assert snapshot(root / "box_data") == before and not partials(root)


def test_overwrite_replaces_only_r1kit_outputs_and_empty_folders(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    foreign = tmp_path / "webext"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"name": "an extension", "version": "1"}))
    afile = tmp_path / "afile"
    afile.write_text("x")
    before = snapshot(tmp_path)
    # the case, in a real process
    res = run_cli(
        "data", "arithmetic", "--output", mine, "--overwrite", "--train-size", "4", "--test-size", "2"
    )
    assert res.returncode == 2
    assert "not an r1kit stage output" in one_error_line(res.stderr)
    for target in (foreign, afile):
        res = invoke(
            "data", "arithmetic", "--output", target, "--overwrite", "--train-size", "4", "--test-size", "2"
        )
        assert res.exit_code == 2, res.output
        one_error_line(res.stderr)
    assert snapshot(tmp_path) == before and not partials(tmp_path)
    # an empty folder and an r1kit output are replaced
    empty = tmp_path / "empty"
    empty.mkdir()
    for _ in range(2):
        res = invoke(
            "data", "arithmetic", "--output", empty, "--overwrite", "--train-size", "4", "--test-size", "2"
        )
        assert res.exit_code == 0, res.output
    assert json.loads((empty / "manifest.json").read_text())["stage"] == "data arithmetic"


# ---------------------------------------------------------------------------------------------
# Interruption and resume

SFT = [
    "--model",
    "tiny",
    "--batch-size",
    "4",
    "--max-length",
    "96",
    "--logging-steps",
    "1",
    "--learning-rate",
    "1e-3",
    "--lr-scheduler",
    "constant",
    "--warmup-ratio",
    "0",
]


def step_records(path: Path) -> list[int]:
    return [r["step"] for r in map(json.loads, path.read_text().splitlines()) if "loss" in r]


def wait_for(condition, timeout: float = 240, proc=None) -> None:
    end = time.time() + timeout
    while not condition():
        assert time.time() < end, "timed out"
        assert proc is None or proc.poll() is None, proc.communicate()
        time.sleep(0.02)


def complete_checkpoints(partial: Path) -> list[int]:
    """Steps of the checkpoints whose trainer_state.json (written last by transformers) is complete."""
    steps = []
    for p in (partial / "checkpoints").glob("checkpoint-*"):
        try:
            json.loads((p / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        steps.append(int(p.name.split("-")[1]))
    return sorted(steps)


def test_sigterm_keeps_checkpoints_prints_the_resume_command_and_resume_logs_each_step_once(work, tmp_path):
    _, paths = work
    out, partial = tmp_path / "sft", tmp_path / ".sft.partial"
    args = [
        "sft",
        "--data",
        str(paths["data"]),
        "--output",
        str(out),
        *SFT,
        "--max-steps",
        "16",
        "--save-steps",
        "4",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1kit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    metrics = partial / "metrics.jsonl"
    # a checkpoint exists and a later step was logged: that step is redone after the resume
    wait_for(
        lambda: (
            complete_checkpoints(partial)
            and metrics.exists()
            and max(step_records(metrics), default=0) > complete_checkpoints(partial)[-1]
        ),
        proc=proc,
    )
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    logged, kept = step_records(metrics), complete_checkpoints(partial)
    assert kept and max(logged) > kept[-1] and not out.exists()
    line = stderr.strip().splitlines()[-1]
    assert (
        line.startswith("r1kit: sft was interrupted by SIGTERM;") and f"latest checkpoint-{kept[-1]}" in line
    )
    command = line.split("; to continue: ")[1]
    assert shlex.split(command) == ["r1kit", *args, "--resume", "auto"]

    # the same command without --resume refuses to delete the checkpoints, and names both ways on
    before = snapshot(partial)
    res = cli(*args)
    assert res.returncode == 2
    assert "--resume auto" in one_error_line(res.stderr) and "--overwrite" in res.stderr
    assert snapshot(partial) == before

    # the printed command continues from the checkpoint and finishes: every step logged once
    res = cli(*shlex.split(command)[1:])
    assert res.returncode == 0, res.stderr[-3000:]
    assert step_records(out / "metrics.jsonl") == list(range(1, 17))
    assert json.loads((out / "manifest.json").read_text())["global_step"] == 16
    assert not partial.exists()


def test_overwrite_discards_checkpoints_of_an_interrupted_run_and_says_so(work, tmp_path, one_thread):
    _, paths = work
    partial = tmp_path / ".run.partial"
    ckpt = partial / "checkpoints" / "checkpoint-3"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    (partial / "resolved_config.yaml").write_text("x: 1\n")
    args = ["sft", "--data", paths["data"], "--output", tmp_path / "run", *SFT, "--max-steps", "1"]
    res = invoke(*args)
    assert res.exit_code == 2 and "holds 1 trainer checkpoint(s)" in one_error_line(res.stderr)
    assert ckpt.is_dir()
    res = invoke(*args, "--overwrite")
    assert res.exit_code == 0, res.output
    assert "discarding 1 trainer checkpoint(s)" in res.stderr and not partial.exists()
    assert step_records(tmp_path / "run" / "metrics.jsonl") == [1]


def interrupt_when(partial: Path, done: threading.Event) -> threading.Thread:
    """Ctrl-C (SIGINT to this process) once a checkpoint is complete and a later step is logged; the
    handler r1kit installs turns it into an exception in the main thread, as it does for SIGTERM."""
    metrics = partial / "metrics.jsonl"

    def watch():
        while not done.is_set():
            kept = complete_checkpoints(partial) if partial.exists() else []
            if kept and metrics.exists() and max(step_records(metrics), default=0) > kept[-1]:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def interrupted_then_resumed(args: list, out: Path, max_steps: int) -> tuple[list[int], list[int]]:
    """Run in-process until interrupted, then with --resume auto; (steps logged before the
    interruption, steps in the published metrics.jsonl)."""
    partial = out.parent / f".{out.name}.partial"
    done = threading.Event()
    thread = interrupt_when(partial, done)
    res = invoke(*args, "--output", out, "--max-steps", max_steps)
    done.set()
    thread.join()
    assert res.exit_code == 128 + signal.SIGINT, res.output[-3000:]
    assert "--resume auto" in res.stderr
    first = step_records(partial / "metrics.jsonl")
    assert max(first) > complete_checkpoints(partial)[-1]  # a logged step will be redone
    res = invoke(*args, "--output", out, "--max-steps", max_steps, "--resume", "auto")
    assert res.exit_code == 0, res.output[-3000:]
    return first, step_records(out / "metrics.jsonl")


def test_grpo_resume_logs_each_step_once(tmp_path, one_thread):
    data = arith_jsonl(tmp_path / "arith.jsonl")
    args = [
        "grpo",
        "--data",
        data,
        *TINY_GRPO,
        "--learning-rate",
        "1e-3",
        "--save-steps",
        "2",
    ]
    first, final = interrupted_then_resumed(args, tmp_path / "grpo", 12)
    assert final == list(range(1, 13)), (first, final)


def test_dpo_shorten_resume_logs_each_step_once(tmp_path, one_thread):
    rows = []
    for q in range(4):
        rows += [
            {"prompt": f"q{q}", "completion": "short ok", "correct": True, "num_tokens": 2},
            {"prompt": f"q{q}", "completion": "wrong wrong wrong", "correct": False, "num_tokens": 3},
        ]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [
        "dpo-shorten",
        "--samples",
        samples,
        "--model",
        "tiny",
        "--batch-size",
        "2",
        "--logging-steps",
        "1",
        "--learning-rate",
        "1e-4",
        "--save-steps",
        "2",
        "--template",
        "raw",
    ]
    first, final = interrupted_then_resumed(args, tmp_path / "dpo", 12)
    assert final == list(range(1, 13)), (first, final)
