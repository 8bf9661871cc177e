"""The one judge through the real command line: `r1kit evaluate --samples` on a crafted sample table
(completions we control), the same samples through the accuracy reward as `r1kit grpo` calls it
(identical verdicts), code rows with MBPP set-up, and unscorable golds reported by grpo and
rejection-sample.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY_GRPO, run_cli

from r1kit.rewards import resolve_reward

FIXTURES = Path(__file__).parent / "fixtures"
CHAT_THINK = "<|im_start|>user\nWhat is 200+4?<|im_end|>\n<|im_start|>assistant\n<think>\n"

# (prompt, gold, task, [(completion, expected correct)]): three samples per prompt
TABLE = [
    (
        "What is 200+4?",
        "204",
        "math",
        [("The answer is 204", True), ("\\boxed{\\$204}", True), ("**204**", True)],
    ),
    (
        "What does it cost?",
        "10",
        "math",
        [("\\boxed{\\text{10}}", True), ("$10.", True), ("\\boxed{11}", False)],
    ),
    (
        "What is 5-5?",
        "0",
        "math",
        [("Not 0 but 5", False), ("\\boxed{Not 0 but 5}", False), ("\\boxed{0}", True)],
    ),
    (
        "Half of one?",
        "\\frac{1}{2}",
        "math",
        [("\\boxed{0.5}", True), ("The answer is $\\frac12$.", True), ("\\boxed{\\frac{1}{3}}", False)],
    ),
    # a chat-think prompt rendered to text: the reply opened <think>; answers count after </think>
    (
        CHAT_THINK,
        "204",
        "math",
        [
            ("reasoning... \\boxed{204}", False),
            ("<think>\nreasoning \\boxed{204}", False),
            ("ok</think> \\boxed{204}", True),
        ],
    ),
    ("Broken gold?", "\\frac{", "math", [("\\boxed{1}", None), ("\\boxed{2}", None), ("x", None)]),
    # two junk answers must not outvote the real one in cons@k
    (
        "What is 3+4?",
        "7",
        "numeric",
        [
            ("<think>x</think> $$", False),
            ("<think>y</think> $$", False),
            ("<think>z</think> \\boxed{7}", True),
        ],
    ),
]


def _rows():
    return [
        {"prompt": p, "answer": g, "task": t, "completion": c, "num_tokens": 10 + i, "truncated": False}
        for p, g, t, samples in TABLE
        for i, (c, _) in enumerate(samples)
    ]


def _expected():
    return [ok for _, _, _, samples in TABLE for _, ok in samples]


def test_evaluate_samples_cli_judges_the_old_bugs_right(tmp_path):
    table = tmp_path / "samples.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    out = tmp_path / "eval"
    res = run_cli("evaluate", "--samples", table, "--pass-k", "1", "--pass-k", "3", "--output", out)
    assert res.returncode == 0, res.stderr[-3000:]
    from datasets import load_from_disk

    scored = load_from_disk(str(out / "data")).to_list()
    assert [r["correct"] for r in scored] == _expected()
    assert [r["prompt_index"] for r in scored] == [i for i in range(len(TABLE)) for _ in range(3)]
    assert scored[12]["judge_reason"] == "reasoning not closed" and scored[15]["judge_reason"].startswith(
        "unscorable"
    )
    m = json.loads((out / "results.json").read_text())["model"]
    assert m["num_prompts"] == 6 and m["excluded_unparseable_gold"] == 1
    assert m["unscorable_gold"] == 1 and m["unscorable_gold_ids"] == [5]
    assert m["pass@1"] == pytest.approx((1 + 2 / 3 + 1 / 3 + 2 / 3 + 1 / 3 + 1 / 3) / 6)
    assert m["cons@3"] == pytest.approx(5 / 6)  # only "Not 0 but 5" (twice) outvotes the gold
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["unscorable_gold"] == {"model": {"count": 1, "ids": [5]}}
    assert "prompt_index 5" in res.stdout


def test_reward_path_and_evaluate_give_identical_verdicts():
    """The same samples, through the accuracy reward as `r1kit grpo` calls it and through evaluate's
    scoring (r1kit.evaluation.score_rows, what `evaluate --samples` and `evaluate_model` use)."""
    from r1kit.evaluation import score_rows

    rows = _rows()
    accuracy = resolve_reward("accuracy", {"prefill": None}).fn
    scores = accuracy(
        prompts=[r["prompt"] for r in rows],
        completions=[r["completion"] for r in rows],
        completion_ids=[[0] * r["num_tokens"] for r in rows],
        answer=[r["answer"] for r in rows],
        task=[r["task"] for r in rows],
        trainer_state=SimpleNamespace(global_step=1),
    )
    reward_verdicts = [None if s is None else s == 1.0 for s in scores]
    assert reward_verdicts == [r["correct"] for r in score_rows(rows)] == _expected()


def test_evaluate_samples_runs_mbpp_with_its_test_imports(tmp_path, shared_data):
    """Sanitized MBPP rows carry `test_imports` (asserts call math.isclose); the original rows carry
    `test_setup_code` (task 367 builds trees from the solution's Node class). Both reach the
    sandbox; task 123's reference needs ~5 s of CPU and passes within the judge's default limits."""
    from r1kit.data import prepare_dataset

    original = tmp_path / "mbpp.jsonl"
    keep = {"11", "123", "367"}
    original.write_text(
        "".join(
            line + "\n"
            for line in (shared_data / "mbpp.jsonl").read_text().splitlines()
            if str(json.loads(line)["task_id"]) in keep
        )
    )
    rows = []
    for source in (FIXTURES / "mbpp_sanitized_sample.jsonl", original):
        ds = prepare_dataset(str(source), task="mbpp", template="raw")
        for r in ds:
            assert r["tests"].count("assert") == 3
            rows.append({**r, "completion": f"```python\n{r['answer']}\n```"})
            rows.append({**r, "completion": "```python\ndef nothing():\n    return None\n```"})
    sanitized = prepare_dataset(str(FIXTURES / "mbpp_sanitized_sample.jsonl"), task="mbpp", template="raw")
    assert sanitized[0]["tests"].startswith("import math\nassert math.isclose(volume_sphere(10)")
    table = tmp_path / "code.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    res = run_cli("evaluate", "--samples", table, "--pass-k", "2", "--output", out)
    assert res.returncode == 0, res.stderr[-3000:]
    from datasets import load_from_disk

    scored = load_from_disk(str(out / "data")).to_list()
    assert [r["correct"] for r in scored] == [True, False] * 7, [r["judge_reason"] for r in scored]
    m = json.loads((out / "results.json").read_text())["model"]
    assert m["pass@1"] == 0.5 and m["pass@2"] == 1.0 and m["num_prompts"] == 7


def test_evaluate_samples_user_errors(tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text(json.dumps({"prompt": "q", "answer": "1", "text": "no completion column"}) + "\n")
    out = tmp_path / "eval"
    res = run_cli("evaluate", "--samples", table, "--output", out)
    assert res.returncode == 2 and "completion" in res.stderr and not out.exists()
    res = run_cli("evaluate", "--samples", table, "--data", table, "--output", out)
    assert res.returncode == 2 and "either --data" in res.stderr and not out.exists()


# ----------------------------------------------------------------------------- grpo


def _distill_like_model(path: Path) -> Path:
    """The tiny model with a chat template that pre-fills "<think>\\n" after the generation prompt,
    as DeepSeek-R1-Distill templates do."""
    from r1kit.models import TINY_CHAT_TEMPLATE, load_model_and_tokenizer, save_model

    model, tok = load_model_and_tokenizer("tiny")
    tok.chat_template = TINY_CHAT_TEMPLATE.replace(
        "<|assistant|>{% endif %}", "<|assistant|><think>\n{% endif %}"
    )
    save_model(model, tok, path)
    return path


def test_grpo_reads_the_chat_template_prefill_and_screens_golds(tmp_path):
    from r1kit.config import build_config
    from r1kit.rl.inputs import prepare_inputs
    from r1kit.stages.grpo import Config

    data = tmp_path / "q.jsonl"
    golds = ["204", "\\frac{", "7", "", "0"]
    data.write_text(
        "".join(json.dumps({"question": f"Q{i}?", "answer": g}) + "\n" for i, g in enumerate(golds))
    )
    model = _distill_like_model(tmp_path / "distill-like")
    cfg = build_config(
        Config,
        None,
        {
            "model": str(model),
            "data": str(data),
            "output": str(tmp_path / "out"),
            "template": "chat",
            "num_generations": 2,
            "prompts_per_step": 2,
        },
    )
    _, ds, template, _ = prepare_inputs(cfg)
    assert template == "chat" and ds["answer"] == ["204", "7", "0"]  # rows 1 and 3 cannot be scored
    assert sorted(cfg._unscorable) == [1, 3] and ds["prefill"] == ["<think>\n"] * 3
    # the rewards get the prompts as chat messages (trl renders them) and the dataset's columns
    completions = ["\\boxed{204}", "fine</think> \\boxed{204}", "\\boxed{7}", "hm</think> Not 0 but 5"]
    idx = [0, 0, 1, 2]
    columns = {c: [ds[c][i] for i in idx] for c in ("answer", "task", "prefill")}
    kwargs = {
        "prompts": [ds["prompt"][i] for i in idx],
        "completions": completions,
        "completion_ids": [[0]] * 4,
        "trainer_state": SimpleNamespace(global_step=1),
        **columns,
    }
    specs = cfg.reward_specs("")
    assert specs[0].fn(**kwargs) == [0.0, 1.0, 0.0, 0.0]
    think = resolve_reward("think_format").fn(**kwargs)
    assert think == [0.0, 1.0, 0.0, 1.0]


def test_grpo_cli_reports_unscorable_golds(tmp_path):
    data = tmp_path / "q.jsonl"
    golds = ["3", "4", "\\frac{", "6", "7"]
    data.write_text(
        "".join(
            json.dumps({"question": f"What is {i}+2?", "answer": g}) + "\n" for i, g in enumerate(golds, 1)
        )
    )
    out = tmp_path / "grpo"
    res = run_cli(
        "grpo",
        "--data",
        data,
        *TINY_GRPO,
        "--max-steps",
        "1",
        "--output",
        out,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["unscorable_gold"] == 1
        and manifest["unscorable_gold_ids"] == [2]
        and manifest["prompts"] == 4
    )
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    screen = [e for e in events if e.get("event") == "unscorable_gold"]
    assert screen and screen[0]["ids"] == [2] and "unbalanced" in screen[0]["reasons"]["2"]
    assert "1 prompt(s) left out" in res.stdout
    # nothing scorable at all is a user mistake, found before any model loads
    from r1kit.config import build_config
    from r1kit.errors import R1kitError
    from r1kit.rl.inputs import prepare_inputs
    from r1kit.stages.grpo import Config

    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps({"question": f"Q{i}", "answer": "\\frac{"}) + "\n" for i in range(4)))
    cfg = build_config(Config, None, {"data": str(bad), "output": str(tmp_path / "g2")})
    with pytest.raises(R1kitError, match="no row of .* has a gold answer the judge can score"):
        prepare_inputs(cfg)


@pytest.mark.slow
def test_every_mbpp_and_humaneval_reference_passes_the_judge(shared_data, tmp_path):
    """All 500 MBPP test-split references (task_id 11-510) and all 164 HumanEval canonical solutions,
    as fenced completions, through the judge with its default sandbox limits (~1 min on 2 cores)."""
    from r1kit.data import prepare_dataset
    from r1kit.judge import judge_many

    mbpp = tmp_path / "mbpp_test.jsonl"
    mbpp.write_text(
        "".join(
            line + "\n"
            for line in (shared_data / "mbpp.jsonl").read_text().splitlines()
            if 11 <= json.loads(line)["task_id"] <= 510
        )
    )
    rows = []
    for ds in (
        prepare_dataset(str(mbpp), task="mbpp"),
        prepare_dataset(str(shared_data / "humaneval.jsonl")),
    ):
        for r in ds:
            rows.append({**r, "completion": f"<think>\nwrite it\n</think>\n```python\n{r['answer']}\n```"})
    assert len(rows) == 664
    verdicts = judge_many(rows)
    failed = [(r["entry_point"], v.reason) for r, v in zip(rows, verdicts) if v.correct is not True]
    assert failed == []
