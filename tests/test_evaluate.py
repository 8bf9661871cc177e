"""`r1kit evaluate`: the real command line on the tiny model, its user errors, and the scoring."""

import json

import pytest
from conftest import run_cli
from typer.testing import CliRunner

from r1kit.generation import Completion
from r1kit.metrics import pass_at_k

PROBLEMS = [
    ("12+7", "19"),
    ("3+4", "7"),
    ("40+2", "42"),
    ("9+9", "18"),
    ("100+1", "101"),
    ("5+5", "10"),
    ("8+1", "9"),
    ("2+2", ""),
]  # the last gold is empty: unparseable, must be excluded


@pytest.fixture
def problems(tmp_path):
    path = tmp_path / "arith.jsonl"
    path.write_text(
        "".join(json.dumps({"question": q, "answer": a, "task": "numeric"}) + "\n" for q, a in PROBLEMS)
    )
    return path


def test_evaluate_cli_two_models(tmp_path, problems):
    from datasets import load_from_disk

    out = tmp_path / "eval"
    res = run_cli(
        "evaluate",
        "--model",
        "tiny",
        "--model",
        "tiny-llama",
        "--data",
        problems,
        "--template",
        "chat",
        "--num-samples",
        "3",
        "--pass-k",
        "1",
        "--pass-k",
        "2",
        "--max-new-tokens",
        "12",
        "--temperature",
        "1.0",
        "--output",
        out,
    )
    assert res.returncode == 0, res.stderr
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["tiny", "tiny-llama"]
    rows = load_from_disk(str(out / "data")).to_list()
    assert len(rows) == 2 * len(PROBLEMS) * 3
    for spec, m in results.items():
        assert {
            "pass@1",
            "accuracy",
            "pass@2",
            "cons@3",
            "mean_tokens",
            "median_tokens",
            "truncation_rate",
            "format_rate",
            "num_prompts",
            "excluded_unparseable_gold",
        } <= set(m)
        assert m["num_prompts"] == 7 and m["excluded_unparseable_gold"] == 1 and m["num_samples"] == 3
        mine = [r for r in rows if r["model"] == spec]
        assert sorted({r["sample_index"] for r in mine}) == [0, 1, 2]
        # recompute the metrics from the per-sample rows
        scored: dict[int, list[bool]] = {}
        for r in mine:
            if r["correct"] is not None:
                scored.setdefault(r["prompt_index"], []).append(r["correct"])
        assert len(scored) == 7
        assert all(r["correct"] is None for r in mine if r["answer"] == "")
        assert m["pass@1"] == pytest.approx(sum(sum(c) / 3 for c in scored.values()) / 7)
        assert m["pass@2"] == pytest.approx(sum(pass_at_k(3, sum(c), 2) for c in scored.values()) / 7)
        assert m["mean_tokens"] == pytest.approx(sum(r["num_tokens"] for r in mine) / len(mine))
        assert m["truncation_rate"] == pytest.approx(sum(r["truncated"] for r in mine) / len(mine))
        assert all(r["num_tokens"] == 12 for r in mine if r["truncated"])
        assert all(0 <= r["num_tokens"] <= 12 for r in mine)
        assert all(isinstance(r["prompt"], list) and r["prompt"][-1]["role"] == "user" for r in mine)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["model"] for m in metrics] == ["tiny", "tiny-llama"]
    assert metrics[0]["pass@1"] == results["tiny"]["pass@1"]
    # the comparison table on stdout
    assert "pass@2" in res.stdout and "cons@3" in res.stdout and "tiny-llama" in res.stdout


def _cli(*args):
    from r1kit.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _assert_user_error(res, out, *fragments):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("r1kit: error: "), res.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out.exists() and not (out.parent / f".{out.name}.partial").exists()


def test_missing_data_path_through_subprocess(tmp_path):
    out = tmp_path / "eval"
    res = run_cli("evaluate", "--data", tmp_path / "nope.jsonl", "--output", out)
    assert res.returncode == 2
    assert res.stderr.strip() == f"r1kit: error: dataset path {tmp_path / 'nope.jsonl'} does not exist"
    assert not out.exists()


def test_user_errors(tmp_path, problems):
    out = tmp_path / "eval"
    _assert_user_error(
        _cli("evaluate", "--data", problems, "--prompt-field", "questoin", "--output", out),
        out,
        "'questoin'",
        "available columns: question, answer, task",
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _assert_user_error(_cli("evaluate", "--data", empty, "--output", out), out, "has no rows")
    not_ckpt = tmp_path / "folder"
    not_ckpt.mkdir()
    _assert_user_error(
        _cli("evaluate", "--model", not_ckpt, "--data", problems, "--output", out), out, "is not a checkpoint"
    )
    _assert_user_error(
        _cli("evaluate", "--data", problems, "--template", "r1zero", "--output", out),
        out,
        "unknown template 'r1zero'",
        "'r1-zero'",
    )
    _assert_user_error(
        _cli("evaluate", "--data", problems, "--num-samples", "4", "--pass-k", "8", "--output", out),
        out,
        "pass@8 needs --num-samples >= 8 (got 4)",
    )
    _assert_user_error(
        _cli("evaluate", "--data", problems, "--greedy", "--num-samples", "2", "--output", out),
        out,
        "--greedy",
    )
    out.mkdir()
    res = _cli("evaluate", "--data", problems, "--output", out)
    assert res.exit_code == 2 and "already exists" in res.stderr


class FakeBackend:
    """Returns fixed completions, so the scoring and the metrics can be checked by hand."""

    def __init__(self, texts):
        self.texts = texts

    def generate(self, prompts, params, prefill=""):
        assert len(prompts) == len(self.texts) and all(len(t) == params.n for t in self.texts)
        return [
            [
                Completion(text=prefill + t, num_tokens=10 * (j + 1), truncated=j == 3)
                for j, t in enumerate(ts)
            ]
            for ts in self.texts
        ]


def test_evaluate_model_scoring_by_hand():
    from datasets import Dataset

    from r1kit.evaluation import evaluate_model
    from r1kit.generation import SamplingParams

    ds = Dataset.from_list(
        [
            {"prompt": "p0", "answer": "1/2", "task": "numeric"},
            {"prompt": "p1", "answer": "7", "task": "numeric"},
            {"prompt": "p2", "answer": "", "task": "numeric"},  # unparseable gold
        ]
    )
    texts = [
        # 2 of 4 correct; votes 1/2 (0.5 and \frac{1}{2}) x2 vs 3 x2: tie -> the first, correct
        [
            "x</think><answer>0.5</answer>",
            "x</think><answer>\\frac{1}{2}</answer>",
            "y</think><answer>3</answer>",
            "y</think><answer>3</answer>",
        ],
        # 1 of 4 correct; 8 wins the vote 2:1:1
        [
            "x</think><answer>7</answer>",
            "x</think><answer>8</answer>",
            "x</think><answer>8</answer>",
            "x</think>no answer",
        ],
        ["x</think><answer>4</answer>"] * 4,
    ]
    params = SamplingParams(n=4, max_new_tokens=40)
    metrics, rows = evaluate_model(
        None,
        None,
        ds,
        params,
        pass_k=[1, 2, 4],
        prefill="<think>",
        backend=FakeBackend(texts),
        model_name="m",
    )
    assert [r["correct"] for r in rows] == [True, True, False, False, True, False, False, False] + [None] * 4
    assert rows[0]["completion"] == "<think>x</think><answer>0.5</answer>" and rows[0]["extracted"] == "0.5"
    assert metrics["num_prompts"] == 2 and metrics["excluded_unparseable_gold"] == 1
    assert metrics["pass@1"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert metrics["pass@2"] == pytest.approx(((1 - 1 / 6) + (1 - 3 / 6)) / 2)
    assert metrics["pass@4"] == pytest.approx(1.0)
    assert metrics["cons@4"] == pytest.approx(0.5)
    assert metrics["mean_tokens"] == pytest.approx(25.0) and metrics["median_tokens"] == pytest.approx(25.0)
    assert metrics["truncation_rate"] == pytest.approx(0.25)
    # every completion is "<think>...</think>" + an answer: R1-Zero format (<answer> tags) or the
    # think format ("<think>x</think>no answer" passes the latter)
    assert all(r["format_ok"] for r in rows) and metrics["format_rate"] == 1.0


def test_code_rows_run_their_tests(shared_data):
    from r1kit.data import prepare_dataset
    from r1kit.evaluation import evaluate_model
    from r1kit.generation import SamplingParams

    src = shared_data / "humaneval.jsonl"
    rows = [json.loads(line) for line in src.read_text().splitlines()[:2]]
    ds = prepare_dataset(str(src), task="humaneval", template="raw").select(range(2))
    fence = "```python\n{}```"
    texts = [
        [fence.format(r["prompt"] + r["canonical_solution"]), "```python\ndef nothing():\n    pass\n```"]
        for r in rows
    ]
    metrics, out = evaluate_model(
        None, None, ds, SamplingParams(n=2), pass_k=[1, 2], backend=FakeBackend(texts)
    )
    assert [r["correct"] for r in out] == [True, False, True, False]
    assert metrics["pass@1"] == 0.5 and metrics["pass@2"] == 1.0
    assert "cons@2" not in metrics  # programs are not voted on


def test_default_split_is_test_and_limit(tmp_path):
    from datasets import Dataset, DatasetDict

    from r1kit.config import build_config
    from r1kit.evaluation import load_eval_dataset
    from r1kit.stages.evaluate import Config

    dd = DatasetDict(
        {
            "train": Dataset.from_list([{"question": f"train {i}", "answer": str(i)} for i in range(5)]),
            "test": Dataset.from_list([{"question": f"test {i}", "answer": str(i)} for i in range(4)]),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    cfg = build_config(
        Config, None, {"data": str(tmp_path / "dd"), "output": str(tmp_path / "out"), "limit": 3}
    )
    ds = load_eval_dataset(cfg, "raw")
    assert len(ds) == 3 and all(q.startswith("test ") for q in ds["prompt"])
    cfg = build_config(
        Config, None, {"data": str(tmp_path / "dd"), "output": str(tmp_path / "out"), "split": "train"}
    )
    assert len(load_eval_dataset(cfg, "raw")) == 5
    assert not (tmp_path / "out").exists()


def test_system_prompt_reaches_every_prompt_it_evaluates(tmp_path, problems):
    """`evaluate --system-prompt` (R1 evaluates with none; distilled models often need theirs): a system
    message before every chat prompt, a leading paragraph before a raw one (trl's --system_prompt too)."""
    from datasets import load_from_disk

    system = "You are a careful calculator. Answer with a number."
    for template, flag in (("chat", "--system-prompt"), ("raw", "--system_prompt")):
        out = tmp_path / f"eval-{template}"
        res = run_cli(
            "evaluate",
            "--model",
            "tiny",
            "--data",
            problems,
            "--template",
            template,
            flag,
            system,
            "--greedy",
            "--max-new-tokens",
            "4",
            "--output",
            out,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        prompts = load_from_disk(str(out / "data"))["prompt"]
        questions = [q for q, _ in PROBLEMS]
        if template == "chat":
            assert prompts == [
                [{"role": "system", "content": system}, {"role": "user", "content": q}] for q in questions
            ]
        else:
            assert prompts == [f"{system}\n\n{q}" for q in questions]
        assert f"system_prompt: {system}" in (out / "resolved_config.yaml").read_text()
