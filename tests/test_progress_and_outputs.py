"""What a user watches and what they share, through the real CLI on tiny runs.

Progress: every stage run with its output redirected to a file (`r1kit grpo ... > log 2>&1`, not
a terminal) prints one whole line per logging step / generation chunk with step/total, elapsed,
ETA and the metrics at 4 significant digits (checked against metrics.jsonl), no `…`, no library
FutureWarnings and no carriage-return bars; GRPO warns once when every group has zero reward
variance; on a terminal (a pty) GRPO's live view shows every number whole.
Sharing: a model card in every model output, the manifest's versions / git commit / world size /
device, pass@1's standard error, `r1kit plot` and `r1kit report`.
The runs are shared by the module (about 35 s on 2 cores): data, sft, grpo, dpo-shorten, evaluate.
"""

import json
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
    "OMP_NUM_THREADS": "1",
    "R1KIT_ZERO_STD_STEPS": "2",
}
ENV.pop("R1KIT_DEBUG", None)
LINE = re.compile(
    r"(?P<title>[\w-]+) step (?P<step>\d+)/(?P<total>\d+) \| elapsed (?P<elapsed>\d+:\d\d:\d\d) \| "
    r"ETA (?P<eta>\d+:\d\d:\d\d) \| (?P<metrics>.+)"
)


# grpo on the module's SFT checkpoint and data (run from their folder), small enough for the fast tier
GRPO_ON_SFT = [
    "--model",
    "sft",
    "--data",
    "data",
    "--num-generations",
    2,
    "--prompts-per-step",
    2,
    "--max-completion-length",
    12,
    "--learning-rate",
    1e-4,
]


def r1kit_to_log(root: Path, log: str, *args) -> str:
    """`r1kit ARGS > log 2>&1` in root; the log's text (the run must succeed)."""
    with open(root / log, "w") as fh:
        res = subprocess.run(
            [sys.executable, "-m", "r1kit", *map(str, args)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=ENV,
            timeout=600,
            check=False,
        )
    text = (root / log).read_text()
    assert res.returncode == 0, text[-3000:]
    return text


def cli(root: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r1kit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=root,
        env=ENV,
        timeout=600,
        check=False,
    )


def records(stage_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]


def steps(stage_dir: Path) -> list[dict]:
    return [r for r in records(stage_dir) if "loss" in r and "event" not in r and "train_runtime" not in r]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from test_dpo_shorten import write_samples

    root = tmp_path_factory.mktemp("ux")
    write_samples(root / "samples.jsonl")
    logs = {
        "data": r1kit_to_log(
            root,
            "data.log",
            "data",
            "arithmetic",
            "--train-size",
            40,
            "--test-size",
            8,
            "--digits",
            1,
            "--output",
            "data",
        ),
        "sft": r1kit_to_log(
            root,
            "sft.log",
            "sft",
            "--model",
            "tiny",
            "--data",
            "data",
            "--max-steps",
            4,
            "--logging-steps",
            2,
            "--batch-size",
            8,
            "--learning-rate",
            1e-3,
            "--output",
            "sft",
        ),
        # --live is on by default: in a log file it gives way to lines
        "grpo": r1kit_to_log(
            root,
            "grpo.log",
            "grpo",
            *GRPO_ON_SFT,
            "--max-steps",
            3,
            "--output",
            "grpo",
        ),
        "dpo": r1kit_to_log(
            root,
            "dpo.log",
            "dpo-shorten",
            "--model",
            "tiny",
            "--samples",
            "samples.jsonl",
            "--max-steps",
            2,
            "--batch-size",
            2,
            "--logging-steps",
            1,
            "--output",
            "dpo",
        ),
        # one sample per prompt at the default T 0.6: not a greedy run
        "eval": r1kit_to_log(
            root,
            "eval.log",
            "evaluate",
            "--model",
            "sft",
            "--model",
            "grpo",
            "--data",
            "data",
            "--template",
            "chat",
            "--limit",
            4,
            "--max-new-tokens",
            12,
            "--sample-batch-size",
            2,
            "--output",
            "eval",
        ),
    }
    return root, logs


# --------------------------------------------------------------------------------------------- progress


def check_step_lines(text: str, title: str, stage_dir: Path, labels: dict[str, str]) -> None:
    """One line per logged step, in order, whose metrics equal metrics.jsonl's to 4 significant digits."""
    lines = [line for line in text.splitlines() if line.startswith(f"{title} step ")]
    logged = steps(stage_dir)
    assert len(lines) == len(logged) >= 2, text[-2000:]
    total = json.loads((stage_dir / "manifest.json").read_text())["global_step"]
    for line, record in zip(lines, logged):
        m = LINE.fullmatch(line)
        assert m, line
        assert (m["title"], int(m["step"]), int(m["total"])) == (title, record["step"], total)
        shown = dict(pair.split("=") for pair in m["metrics"].split())
        compared = 0
        for label, key in labels.items():
            if isinstance(record.get(key), (int, float)):
                assert float(shown[label]) == pytest.approx(record[key], rel=5e-4, abs=1e-12), (label, line)
                compared += 1
        assert compared >= 3, line
        assert "loss" in shown  # every line carries the loss
    assert int(LINE.fullmatch(lines[-1])["step"]) == total


def test_training_progress_lines_in_a_log_file(runs):
    from r1kit.rl.callbacks import LIVE_KEYS
    from r1kit.training import SHOWN_KEYS

    root, logs = runs
    shown = {label: key for key, label in SHOWN_KEYS}
    check_step_lines(logs["sft"], "sft", root / "sft", shown)
    check_step_lines(logs["dpo"], "dpo-shorten", root / "dpo", shown)
    check_step_lines(logs["grpo"], "grpo", root / "grpo", {label: key for key, label in LIVE_KEYS})
    # a full-precision number: the sft loss (e.g. 4.734) keeps 4 significant digits
    assert re.search(r"loss=\d\.\d{3}\b", logs["sft"])
    for name, text in logs.items():
        assert "…" not in text and "\r" not in text, name  # nothing cut, no carriage-return bars
        assert "FutureWarning" not in text and "is deprecated" not in text, name  # library noise filtered
    assert re.search(
        r"^sft done: step 4/4 \| elapsed \d+:\d\d:\d\d \| train_loss=\d", logs["sft"], re.MULTILINE
    )


def test_grpo_warns_once_when_no_group_has_reward_variance(runs):
    root, logs = runs
    lines = logs["grpo"].splitlines()
    warned = [i for i, line in enumerate(lines) if line.startswith("grpo warning: no learning signal")]
    assert len(warned) == 1, logs["grpo"][
        -3000:
    ]  # once, one line, although step 3 is still all zero-variance
    line = lines[warned[0]]
    assert lines[warned[0] - 1].startswith("grpo step 2/3")  # after R1KIT_ZERO_STD_STEPS=2 logged steps
    for hint in (
        "--num-generations",
        "--temperature",
        "easier data",
        "r1kit evaluate",
        "R1KIT_ZERO_STD_STEPS",
    ):
        assert hint in line, hint
    events = [r for r in records(root / "grpo") if r.get("event") == "warning"]
    assert [(e["kind"], e["step"]) for e in events] == [("zero_std", 2)]
    assert all(r["zero_std_fraction"] == 1.0 for r in steps(root / "grpo"))


def test_generation_progress_lines_in_a_log_file(runs):
    _, logs = runs
    pattern = re.compile(
        r"generating (\d+)/(\d+) sequences \| elapsed \d+:\d\d:\d\d \| ETA \d+:\d\d:\d\d \| "
        r"tok/s=(\S+)"
    )
    found = [pattern.fullmatch(line) for line in logs["eval"].splitlines() if line.startswith("generating")]
    assert (
        all(found) and [(int(m[1]), int(m[2])) for m in found] == [(2, 4), (4, 4)] * 2
    )  # two models, 2 chunks
    assert all(float(m[3]) > 0 for m in found)


def test_grpo_live_view_on_a_terminal_never_cuts_a_number(tmp_path, runs):
    """stderr on a 60-column pty: the rich live view, whose last frame holds every metric whole."""
    import pty
    import struct
    import termios
    import threading
    from fcntl import ioctl

    from r1kit.progress import fmt_value
    from r1kit.rl.callbacks import LIVE_KEYS

    root, _ = runs
    master, slave = pty.openpty()
    ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 60, 0, 0))
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {**ENV, "TERM": "xterm-256color", "COLUMNS": "60"}
    args = [
        "grpo",
        *GRPO_ON_SFT,
        "--max-steps",
        2,
        "--output",
        tmp_path / "live",
    ]
    res = subprocess.run(
        [sys.executable, "-m", "r1kit", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=root,
        env=env,
        timeout=600,
        text=True,
        check=False,
    )
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert res.returncode == 0, screen[-3000:]
    assert "…" not in screen
    last = steps(tmp_path / "live")[-1]
    frame = screen[screen.rindex("r1kit grpo  step 2/2") :]
    assert re.match(r"r1kit grpo  step 2/2 \| elapsed \d+:\d\d:\d\d \| ETA \d+:\d\d:\d\d", frame)
    for key, label in LIVE_KEYS:
        if isinstance(last.get(key), (int, float)):
            assert re.search(rf"{re.escape(label)}\s+{re.escape(fmt_value(last[key]))}\s", frame), (
                label,
                frame,
            )
    assert "grpo step 1/2" not in screen  # the live view replaces the lines


# --------------------------------------------------------------------------------------------- sharing


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_card_in_every_model_output_and_the_manifest(runs):
    from importlib.metadata import version

    from r1kit import __version__
    from r1kit.outputs import LIBRARIES
    from r1kit.progress import fmt_value

    root, _ = runs
    res = cli(root, "merge", "--model", "sft", "--model", "grpo", "--output", "merged")
    assert res.returncode == 0, res.stderr[-2000:]
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    commit = git.stdout.strip() if (REPO / ".git").exists() and git.returncode == 0 else None
    expected = {
        "sft": ("sft", "`tiny`"),
        "grpo": ("grpo", "`sft` ← `tiny`"),
        "dpo": ("dpo-shorten", "`tiny`"),
        "merged": ("merge", "`sft` ← `tiny`"),
    }
    for folder, (stage, lineage) in expected.items():
        manifest = json.loads((root / folder / "manifest.json").read_text())
        assert manifest["model_card"] == "model/README.md"
        assert manifest["versions"] == {
            "python": manifest["versions"]["python"],
            "r1kit": __version__,
            **{lib: version(lib) for lib in LIBRARIES},
        }
        assert (manifest["git_commit"], manifest["world_size"]) == (commit, 1)
        assert manifest["device"] == "cpu" or manifest["device"].startswith("cuda: ")

        card = (root / folder / "model" / "README.md").read_text()
        meta = front_matter(card)
        assert "r1kit" in meta["tags"] and "license" in meta and meta["license"] is None
        assert "base_model" not in meta  # 'tiny' and local folders are not hub ids (they are named below)
        assert f"(stage `{stage}`)" in card and f"| base model | {lineage} |" in card
        assert f"made with r1kit {__version__}" in card
        words = manifest["command"].split()[1:]  # the user's words after the program
        assert f"```bash\nr1kit {' '.join(words)}\n```" in card
        config = (root / folder / "resolved_config.yaml").read_text().rstrip()
        assert f"```yaml\n{config}\n```" in card
        assert f"| transformers | {version('transformers')} |" in card
        if stage != "merge":
            last = steps(root / folder)[-1]
            assert f"| step | {last['step']} |" in card and f"| loss | {fmt_value(last['loss'])} |" in card
    assert "| base model | `sft` ← `tiny` |" in card and "| base model | `grpo` ← `sft` ← `tiny` |" in card
    grpo_card = (root / "grpo" / "model" / "README.md").read_text()
    assert "## Warnings raised during training" in grpo_card and "no learning signal" in grpo_card


def test_model_card_front_matter_names_hub_models_and_datasets(tmp_path):
    from r1kit.model_card import render

    manifest = {
        "stage": "grpo",
        "r1kit_version": "x",
        "inputs": {"model": "Qwen/Qwen2.5-0.5B", "data": "openai/gsm8k"},
    }
    meta = front_matter(render(manifest, "r1kit grpo ...", tmp_path, "run"))
    assert (meta["base_model"], meta["base_model_relation"], meta["datasets"]) == (
        "Qwen/Qwen2.5-0.5B",
        "finetune",
        ["openai/gsm8k"],
    )
    local = tmp_path / "org" / "name"  # a local folder that looks like a hub id is not one
    local.mkdir(parents=True)
    meta = front_matter(render({**manifest, "inputs": {"model": str(local)}}, "c", tmp_path, "run"))
    assert "base_model" not in meta


SAMPLES = [  # prompt answer, then (completion, correct) per sample; per prompt means 1, 0.5, 0, 0.5
    ("What is 1+1?", "2", ["2", "2"]),
    ("What is 2+2?", "4", ["4", "5"]),
    ("What is 3+3?", "6", ["7", "8"]),
    ("What is 4+4?", "8", ["9", "8"]),
]


def test_pass_at_1_standard_error_over_prompts(tmp_path):
    table = tmp_path / "samples.jsonl"
    table.write_text(
        "".join(
            json.dumps({"prompt": q, "answer": a, "completion": f"The answer is {c}."}) + "\n"
            for q, a, cs in SAMPLES
            for c in cs
        )
    )
    res = cli(tmp_path, "evaluate", "--samples", table, "--extract", "last_number", "--output", "ev")
    assert res.returncode == 0, res.stderr[-2000:]
    (metrics,) = json.loads((tmp_path / "ev" / "results.json").read_text()).values()
    per_prompt = [sum(c == a for c in cs) / len(cs) for _, a, cs in SAMPLES]  # 1, 0.5, 0, 0.5
    se = statistics.stdev(per_prompt) / math.sqrt(len(per_prompt))  # s / sqrt(n), s with n - 1
    assert metrics["pass@1"] == pytest.approx(0.5) and metrics["pass@1_stderr"] == pytest.approx(se)
    assert se == pytest.approx(0.2041, abs=1e-4)
    assert "50.0 ± 20.4" in res.stdout and "pass@1 ± SE" in res.stdout


def write_eval(path: Path, results: dict, settings: dict) -> Path:
    path.mkdir()
    (path / "results.json").write_text(json.dumps(results))
    (path / "resolved_config.yaml").write_text(yaml.safe_dump(settings))
    (path / "manifest.json").write_text(json.dumps({"r1kit_version": "0", "stage": "evaluate"}))
    return path


def test_report_labels_each_evaluation_by_its_real_settings(runs, tmp_path):
    root, _ = runs
    sampled = json.loads((root / "eval" / "results.json").read_text())
    greedy = write_eval(
        tmp_path / "greedy",
        {  # the models as the sampled evaluation named them
            "sft": {"num_samples": 1, "pass@1": 0.25, "pass@1_stderr": 0.05, "mean_tokens": 40.0},
            "grpo": {"num_samples": 1, "pass@1": 0.75, "pass@1_stderr": 0.05, "mean_tokens": 30.0},
        },
        {"greedy": True, "temperature": 0.6, "num_samples": 1},
    )
    res = cli(
        tmp_path,
        "report",
        "--eval",
        root / "eval",
        "--eval",
        greedy,
        "--compare",
        "sft:grpo",
        "--output",
        "rep",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [e["label"] for e in report["evaluations"]] == ["T 0.6, 1 sample", "greedy"]  # not two "greedy"
    assert report["header"] == [
        "model",
        "T 0.6, 1 sample: pass@1",
        "T 0.6, 1 sample: mean tokens",
        "greedy: pass@1",
        "greedy: mean tokens",
    ]
    sft = sampled["sft"]
    assert report["rows"][0] == [
        "sft",
        f"{100 * sft['pass@1']:.1f}% ± {100 * sft['pass@1_stderr']:.1f}",
        f"{sft['mean_tokens']:.1f}",
        "25.0% ± 5.0",
        "40.0",
    ]
    greedy_verdict = report["comparisons"][1]
    assert (greedy_verdict["evaluation"], greedy_verdict["accuracy"], greedy_verdict["length"]) == (
        "greedy",
        "higher",
        "shorter",
    )  # +50 points, 2 SE = 14.1; 30 < 40 tokens
    assert greedy_verdict["difference_stderr"] == pytest.approx(math.sqrt(2) * 0.05)
    assert "grpo vs sft (greedy): pass@1 75.0% vs 25.0% (+50.0 points, 2 SE = 14.1): higher" in res.stdout
    assert "| greedy: pass@1 |" in (tmp_path / "rep" / "report.md").read_text()
    bad = cli(tmp_path, "report", "--eval", root / "eval", "--compare", "sft:nope", "--output", "rep2")
    assert bad.returncode == 2 and "no model 'nope'" in bad.stderr and not (tmp_path / "rep2").exists()


def test_plot_draws_sft_grpo_and_dpo_curves(runs, tmp_path):
    root, _ = runs
    res = cli(
        tmp_path,
        "plot",
        "--run",
        root / "sft",
        "--run",
        root / "grpo",
        "--run",
        root / "dpo",
        "--output",
        "curves",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    png = (tmp_path / "curves" / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    data = json.loads((tmp_path / "curves" / "curves.json").read_text())
    assert data["sft"]["loss"]["loss"] == [[r["step"], r["loss"]] for r in steps(root / "sft")]
    assert set(data["sft"]) == {"loss", "accuracy"}  # token accuracy
    assert set(data["grpo"]) == {"loss", "reward", "accuracy", "length"}  # no KL: beta 0
    assert data["grpo"]["length"]["completions/mean_length"] == [
        [r["step"], r["completions/mean_length"]] for r in steps(root / "grpo")
    ]
    assert "rewards/accuracies" in data["dpo"]["accuracy"] and "rewards/margins" in data["dpo"]["reward"]
    manifest = json.loads((tmp_path / "curves" / "manifest.json").read_text())
    assert manifest["stage"] == "plot" and manifest["inputs"]["run"] == [
        str(root / s) for s in ("sft", "grpo", "dpo")
    ]
    bad = cli(tmp_path, "plot", "--run", root / "eval", "--output", "c2")
    assert bad.returncode == 2 and "evaluate output: it has no training curves" in bad.stderr
