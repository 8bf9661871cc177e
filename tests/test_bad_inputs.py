"""One line for every bad input: exit status 2, one `r1kit: error:` line, nothing left behind.

The classes, each through the CLI: every numeric option of every stage outside its range
(a table-driven fuzz over r1kit.ranges, plus the issue's cases in a real process); data files
that are not what their name says; datasets saved with 0 rows; outputs that cannot be written
(parent is a file, read-only); a disk that fills up while a stage writes; values that
transformers, trl or peft refuse after the model loads; a merge whose inputs have no tokenizer.
"""

import dataclasses
import errno
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from typer.testing import CliRunner

from r1kit.cli import STAGES, app
from r1kit.config import base_type, field_types, flag_name


@pytest.fixture
def one_thread():
    """One torch thread while training in pytest's process (on 2 shared cores the default pool is slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_and_nothing_left(res, root: Path, *needles: str, progress: bool = False) -> str:
    """Exit 2 and one `r1kit: error:` line (after progress output, when the stage had started
    training: `progress`), no traceback, and no output or partial folder under root."""
    code = res.returncode if hasattr(res, "returncode") else res.exit_code
    assert code == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    if progress:
        assert "Traceback" not in res.stderr and sum(x.startswith("r1kit:") for x in lines) == 1, res.stderr[
            -3000:
        ]
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("r1kit: error: "), res.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert (
        not (root / "out").exists() and not list(root.rglob(".*.partial")) and not list(root.rglob(".out*"))
    )
    return lines[0]


def numeric_fields(stage: str) -> list[tuple[str, type]]:
    from r1kit.ranges import CHECKED_BY_STAGE

    cls = importlib.import_module(STAGES[stage]).Config
    hints = field_types(cls)
    found = []
    for f in dataclasses.fields(cls):
        inner, _ = base_type(hints[f.name])
        item = (getattr(inner, "__args__", None) or (inner,))[0]  # list[int] -> int
        if item in (int, float) and f.name not in CHECKED_BY_STAGE:
            found.append((f.name, item))
    return found


def test_every_numeric_option_of_every_stage_has_a_range():
    from r1kit.ranges import RANGES

    missing = {
        f"{stage}: --{flag_name(name)}"
        for stage in STAGES
        for name, _ in numeric_fields(stage)
        if name not in RANGES
    }
    assert not missing, f"add these options to r1kit.ranges.RANGES: {sorted(missing)}"


def bad_values(name: str, kind: type) -> list[str]:
    """Values just outside the option's range, and non-finite floats."""
    from r1kit.ranges import RANGES

    r = RANGES[name]
    step = 1 if kind is int else 0.5
    values = []
    if r.low is not None:
        low = r.low if r.low_open else r.low - step
        while low in r.also:
            low -= step
        values.append(low)
    if r.high is not None:
        values.append(r.high if r.high_open else r.high + step)
    text = [str(int(v)) if kind is int else repr(float(v)) for v in values]
    return text + (["nan", "inf", "-inf"] if kind is float else [])


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_out_of_range_values_are_one_line_errors(stage, tmp_path):
    tried = 0
    for name, kind in numeric_fields(stage):
        for value in bad_values(name, kind):
            res = invoke(*stage.split(), "--output", tmp_path / "out", f"--{flag_name(name)}", value)
            line = assert_one_line_and_nothing_left(res, tmp_path, f"--{flag_name(name)} (")
            assert "must be" in line, line
            tried += 1
    assert tried >= len(numeric_fields(stage)) >= 2


# The issue's silently accepted values, on every stage that has the option, in a real process.
ISSUE_CASES = [
    ("sft", "--warmup-ratio", "2"),
    ("grpo", "--warmup-ratio", "2"),
    ("distill", "--warmup-ratio", "2"),
    ("sft", "--save-steps", "-1"),
    ("grpo", "--save-steps", "-1"),
    ("dpo-shorten", "--save-steps", "-1"),
    ("grpo", "--top-p", "0"),
    ("evaluate", "--top-p", "2"),
    ("rejection-sample", "--top-p", "0"),
    ("distill", "--top-p", "2"),
    ("dpo-shorten", "--top-p", "0"),
    ("sft", "--limit", "-3"),
]


@pytest.mark.parametrize("stage,flag,value", ISSUE_CASES)
def test_issue_values_are_refused_in_a_real_process(stage, flag, value, tmp_path):
    res = run_cli(stage, "--output", tmp_path / "out", "--data", tmp_path / "d.jsonl", flag, value)
    assert_one_line_and_nothing_left(res, tmp_path, f"{flag} (")


# ---------------------------------------------------------------------------------------------
# Data that is not what it says

DEEP = "[" * 200_000 + "]" * 200_000
BAD_FILES = {
    "latin1.jsonl": (b'{"prompt": "caf\xe9", "completion": "x"}\n', "line 1 is not UTF-8 text (byte 0xe9"),
    "bom16.json": ('[{"prompt": "a", "completion": "b"}]'.encode("utf-16"), "is not UTF-8 text"),
    "text.parquet": (b"prompt,completion\na,b\n", "is not a readable parquet file"),
    "empty.parquet": (b"", "is not a readable parquet file"),
    "ragged.csv": (b"prompt,completion\na,b,c\n", "is not a readable CSV file"),
    "empty.csv": (b"", "is not a readable CSV file"),
    "columns.json": (b'{"prompt": ["a", "b"], "completion": ["c"]}', "cannot build a table from its columns"),
    "deep.json": (DEEP.encode(), "nests its values too deeply"),
    "binary.jsonl": (b'{"prompt": "a", "completion": "b"}\n\xc3\x28\x00\xff\n', "line 2 is not UTF-8 text"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unreadable_data_file_is_one_line(name, tmp_path):
    content, message = BAD_FILES[name]
    (tmp_path / name).write_bytes(content)
    res = invoke("sft", "--data", tmp_path / name, "--output", tmp_path / "out")
    assert_one_line_and_nothing_left(res, tmp_path, message)


@pytest.mark.parametrize(
    "args",
    [
        ["sft"],
        ["grpo"],
        ["evaluate"],
        ["rejection-sample"],
        ["distill", "--teacher", "tiny"],
        ["dpo-shorten"],
    ],
    ids=lambda a: a[0],
)
def test_every_stage_reports_a_non_utf8_file_in_one_line(args, tmp_path):
    (tmp_path / "d.jsonl").write_bytes(b'{"question": "1+1\xff", "answer": "2"}\n')
    res = invoke(*args, "--data", tmp_path / "d.jsonl", "--output", tmp_path / "out")
    assert_one_line_and_nothing_left(res, tmp_path, "is not UTF-8 text")


MSG = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]
# (stage args, file rows, message): values of the wrong type inside a well-formed file
BAD_ROWS = {
    "sft_int_prompt": (["sft"], [{"prompt": 5, "completion": "6"}], "row 0: column 'prompt' must hold text"),
    "sft_null_completion": (
        ["sft"],
        [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": None}],
        ("row 1: column 'completion' must hold text or chat messages (a list of {role, content}), got null"),
    ),
    "sft_messages_text": (["sft"], [{"messages": "hello"}], "column 'messages' must hold chat messages"),
    "sft_messages_no_role": (
        ["sft"],
        [{"messages": [{"content": "a"}, {"content": "b"}]}],
        "not all {role, content}",
    ),
    "dpo_num_tokens": (
        ["dpo-shorten", "--samples"],
        [{"prompt": "p", "completion": "c", "correct": True, "num_tokens": "many"}],
        "'num_tokens' must be a token count",
    ),
    "dpo_correct_text": (
        ["dpo-shorten", "--samples"],
        [{"prompt": "p", "completion": "c", "correct": "no", "num_tokens": 3}],
        "'correct' must be true, false or null",
    ),
    "mix_no_role": (
        ["rejection-sample", "--data", "{data}", "--mix-data"],
        [{"messages": [{"content": "hi"}]}],
        "column 'messages' must hold chat messages",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_values_of_the_wrong_type_in_a_column_are_one_line(case, tmp_path):
    args, rows, message = BAD_ROWS[case]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    args = [a.format(data=prompts) for a in args] + ([] if args[-1].startswith("--") else ["--data"])
    res = invoke(*args, tmp_path / "rows.jsonl", "--output", tmp_path / "out")
    assert_one_line_and_nothing_left(
        res, tmp_path, message, progress=True
    )  # in-process: datasets' progress bars


def test_a_mapping_given_for_a_list_option_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("reward: {accuracy: 2}\n")  # used to become ['accuracy'], weight 1
    res = invoke(
        "grpo", "--data", tmp_path / "d.jsonl", "--config", tmp_path / "c.yaml", "--output", tmp_path / "out"
    )
    assert_one_line_and_nothing_left(res, tmp_path, "reward: cannot read {'accuracy': 2} as list")


def test_datasets_saved_with_no_rows_are_one_line(tmp_path):
    from datasets import Dataset, DatasetDict

    empty = Dataset.from_dict({"prompt": [], "completion": []})
    empty.save_to_disk(str(tmp_path / "empty"))
    DatasetDict({"train": empty, "test": empty}).save_to_disk(str(tmp_path / "empty_dict"))
    res = run_cli("sft", "--data", tmp_path / "empty", "--output", tmp_path / "out")
    assert_one_line_and_nothing_left(res, tmp_path, "has no rows")
    res = invoke("evaluate", "--data", tmp_path / "empty_dict", "--output", tmp_path / "out")
    assert_one_line_and_nothing_left(res, tmp_path, "has no rows")


# ---------------------------------------------------------------------------------------------
# Outputs that cannot be written, and disks that fill up


def run_without_root_powers(*args, preexec_fn=None):
    """run_cli, but as root drop the capabilities that let root write anywhere: permission bits
    then hold for this process as they do for a user."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a folder read-only")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("R1KIT_DEBUG", None)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "r1kit", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        preexec_fn=preexec_fn,
        check=False,
    )


DATA = ["data", "arithmetic", "--train-size", "8", "--test-size", "2"]


def test_output_whose_parent_is_a_file_or_that_names_no_folder(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    res = run_cli(*DATA, "--output", tmp_path / "afile" / "out")
    assert_one_line_and_nothing_left(res, tmp_path, "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x"
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for output in (".", "../sub/.."):  # would replace the working folder, or its parent
        res = invoke(*DATA, "--output", output, "--overwrite")
        assert_one_line_and_nothing_left(res, tmp_path, "does not name a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "sub"]


def test_read_only_parent_and_read_only_output(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    res = run_without_root_powers(*DATA, "--output", ro / "out")
    assert_one_line_and_nothing_left(res, tmp_path, "cannot write in")
    # an r1kit output, but read-only inside: --overwrite would fail halfway, so it is refused first
    assert invoke(*DATA, "--output", tmp_path / "done").exit_code == 0
    (tmp_path / "done" / "data").chmod(0o555)
    before = sorted(p.name for p in (tmp_path / "done").rglob("*"))
    res = run_without_root_powers(*DATA, "--output", tmp_path / "done", "--overwrite")
    assert_one_line_and_nothing_left(res, tmp_path, "is read-only")
    assert sorted(p.name for p in (tmp_path / "done").rglob("*")) == before
    ro.chmod(0o755)
    (tmp_path / "done" / "data").chmod(0o755)


def file_size_limit(nbytes: int):
    # Python ignores SIGXFSZ, so a write beyond the limit fails with EFBIG, as a full disk fails with ENOSPC
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.RLIM_INFINITY))


def test_file_size_limit_while_writing_a_dataset(tmp_path):
    res = run_without_root_powers(
        "data",
        "arithmetic",
        "--train-size",
        "20000",
        "--test-size",
        "10",
        "--output",
        tmp_path / "out",
        preexec_fn=file_size_limit(64 * 1024),
    )
    assert_one_line_and_nothing_left(res, tmp_path, "File too large", "writing failed")


def test_file_size_limit_while_saving_a_trainer_checkpoint(tmp_path):
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1)} for i in range(8)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # the tiny model's weights (3.2 MB) fit, its optimizer state (torch.save, 6.4 MB) does not
    res = run_without_root_powers(
        "sft",
        "--data",
        tmp_path / "d.jsonl",
        "--output",
        tmp_path / "out",
        "--max-steps",
        "2",
        "--save-steps",
        "1",
        "--batch-size",
        "4",
        preexec_fn=file_size_limit(4 * 2**20),
    )
    assert_one_line_and_nothing_left(res, tmp_path, "writing failed", progress=True)


def test_no_space_left_is_one_line_and_removes_the_partial_output(tmp_path, monkeypatch):
    import r1kit.data.arithmetic

    def fill_the_disk(folder, *args, **kwargs):
        Path(folder).mkdir(parents=True)
        (Path(folder) / "half.arrow").write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(folder) / "half.arrow"))

    monkeypatch.setattr(r1kit.data.arithmetic, "write_arithmetic", fill_the_disk)
    res = invoke(*DATA, "--output", tmp_path / "out")
    assert_one_line_and_nothing_left(res, tmp_path, "No space left on device", "half.arrow")
    # a real bug keeps its traceback with R1KIT_DEBUG=1, and so does this
    monkeypatch.setenv("R1KIT_DEBUG", "1")
    res = invoke(*DATA, "--output", tmp_path / "out")
    assert isinstance(res.exception, OSError) and res.exception.errno == errno.ENOSPC


def test_only_failures_of_the_environment_become_one_line():
    from r1kit.cli import environment_failure

    assert "No space left" in environment_failure(OSError(errno.ENOSPC, "No space left on device"))
    assert "Permission denied" in environment_failure(
        PermissionError(errno.EACCES, "Permission denied", "/x")
    )
    assert "No space left" in environment_failure(
        RuntimeError("Error while serializing: I/O error (os error 28)")
    )
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as inner:
            raise ValueError("save failed") from inner
    except ValueError as outer:
        assert "quota" in environment_failure(outer)
    # bugs: a missing file r1kit should have written, a ValueError, a KeyError
    for exc in (FileNotFoundError(errno.ENOENT, "No such file"), ValueError("x"), KeyError("k")):
        assert environment_failure(exc) is None


# ---------------------------------------------------------------------------------------------
# Values that a library refuses, and merges without a tokenizer


@pytest.mark.parametrize(
    "args,message",
    [
        (["--lr-scheduler", "cosine_wrong"], "cosine_wrong is not a valid SchedulerType"),
        (["--report-to", "wandbb"], "wandbb is not supported"),
        (["--lora", "--lora-target", "q_proj,qq_proj"], "no module named qq_proj"),
    ],
    ids=["scheduler", "report_to", "lora_target"],
)
def test_values_refused_by_transformers_or_peft_are_one_line(args, message, tmp_path, one_thread):
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1)} for i in range(4)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = invoke(
        "sft", "--data", tmp_path / "d.jsonl", "--output", tmp_path / "out", "--max-steps", "1", *args
    )
    assert_one_line_and_nothing_left(res, tmp_path, message, progress=True)


def test_merge_takes_the_tokenizer_from_an_input_that_has_one_or_refuses(tmp_path):
    from r1kit.models import build_tiny_model, build_tiny_tokenizer, load_tokenizer, save_model

    tok = build_tiny_tokenizer()
    bare = [tmp_path / "bare_a", tmp_path / "bare_b"]
    for i, folder in enumerate(bare):
        build_tiny_model(tok, seed=i).save_pretrained(str(folder))  # weights and config only
    full = save_model(build_tiny_model(tok, seed=2), tok, tmp_path / "full")

    res = invoke("merge", "--model", bare[0], "--model", bare[1], "--output", tmp_path / "out")
    assert_one_line_and_nothing_left(res, tmp_path, "none of the --model inputs has tokenizer files")
    assert not list(tmp_path.glob(".r1kit-merge-*"))

    res = invoke("merge", "--model", bare[0], "--model", full, "--output", tmp_path / "merged")
    assert res.exit_code == 0, res.output[-3000:]
    assert f"tokenizer files copied from {full}" in res.stdout
    merged = tmp_path / "merged" / "model"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (merged / name).read_bytes() == (full / name).read_bytes()
    assert (merged / "config.json").read_bytes() == (bare[0] / "config.json").read_bytes()
    assert json.loads((tmp_path / "merged" / "manifest.json").read_text())["merge"]["tokenizer_from"] == str(
        full
    )
    assert load_tokenizer(str(tmp_path / "merged"))("1+2=")["input_ids"] == tok("1+2=")["input_ids"]
