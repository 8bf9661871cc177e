"""`r1kit grpo --stop`: rollouts end at a stop string on r1kit's loop and on trl's generate alike.

A reward given as a dotted path records what `r1kit grpo` hands it (the completion texts and
completion_ids, as trl passes them); the tiny model samples characters, so with the vowels as stop
strings most rollouts write one. On both paths every completion that wrote a stop string must end
with the token that completed it, the reward must see the text before it, and the lengths trl
logs (what is trained) must be those of the cut completions.
"""

import json
import textwrap

import pytest

from tests.conftest import run_cli

STOPS = ["a", "e", "i", "o", "u"]
RECORDER = textwrap.dedent("""
    import json, os

    def record(prompts=None, completions=(), completion_ids=None, **kwargs):
        with open(os.environ["STOP_RECORD"], "a") as f:
            for c, ids in zip(completions, completion_ids):
                chat = not isinstance(c, str)  # trl's chat form: [{"role": "assistant", "content": ...}]
                text = c[-1]["content"] if chat else c
                f.write(json.dumps({"text": text, "chat": chat, "ids": list(map(int, ids))}) + "\\n")
        return [0.0 if i % 2 else 1.0 for i in range(len(completions))]
""")


@pytest.fixture
def recorder(tmp_path, monkeypatch):
    (tmp_path / "stop_recorder.py").write_text(RECORDER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("STOP_RECORD", str(record))
    return record


def problems(path):
    path.write_text(
        "".join(
            json.dumps({"question": f"What is {i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(1, 9)
        )
    )
    return path


@pytest.mark.parametrize(("rollout", "template"), [("fast", "chat"), ("hf", "raw")])
def test_rollouts_end_at_the_stop_string_and_the_reward_sees_the_text_before_it(
    rollout, template, tmp_path, recorder
):
    from r1kit.models import build_tiny_tokenizer

    out = tmp_path / "grpo"
    args = [
        "grpo",
        "--model",
        "tiny",
        "--data",
        problems(tmp_path / "p.jsonl"),
        "--task",
        "arithmetic",
        "--reward",
        "stop_recorder:record=1",
        "--num-generations",
        4,
        "--prompts-per-step",
        2,
        "--max-steps",
        2,
        "--max-completion-length",
        24,
        "--rollout",
        rollout,
        "--template",
        template,
        "--no-live",
        "--output",
        out,
    ]
    for s in STOPS:
        args += ["--stop", s]
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    tok = build_tiny_tokenizer()
    rows = [json.loads(line) for line in recorder.read_text().splitlines()]
    assert len(rows) == 16  # 2 steps x 2 prompts x G 4
    assert {r["chat"] for r in rows} == {template == "chat"}
    stopped = 0
    for r in rows:
        full = tok.decode(r["ids"], skip_special_tokens=True)
        assert not any(s in r["text"] for s in STOPS), r  # the reward never sees a stop string
        if any(s in full for s in STOPS):
            stopped += 1
            # the last token completed the first stop string: the text before it is what the reward got
            assert not any(s in tok.decode(r["ids"][:-1], skip_special_tokens=True) for s in STOPS), r
            first = min(full.find(s) for s in STOPS if s in full)
            assert r["text"] == full[:first]
            assert tok.eos_token_id not in r["ids"]
        else:
            assert r["text"] == full and (len(r["ids"]) == 24 or r["ids"][-1] == tok.eos_token_id)
    assert stopped >= 4  # the vowels are common: most rollouts wrote one
    # what was trained is the cut completions: trl's logged lengths are theirs
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r["completions/mean_length"] for r in steps if "completions/mean_length" in r]
    lengths = [len(r["ids"]) for r in rows]
    assert logged == pytest.approx([sum(lengths[:8]) / 8, sum(lengths[8:]) / 8])
    per_step = [
        sum(any(s in tok.decode(r["ids"], skip_special_tokens=True) for s in STOPS) for r in rows[i : i + 8])
        / 8
        for i in (0, 8)
    ]
    assert [
        r["completions/stopped_ratio"] for r in steps if "completions/stopped_ratio" in r
    ] == pytest.approx(per_step)
    fast = [r["rollout/fast_path"] for r in steps if "rollout/fast_path" in r]
    assert fast == ([1.0, 1.0] if rollout == "fast" else [0.0, 0.0])


def test_stop_with_mask_truncated_is_refused_in_one_line(tmp_path):
    res = run_cli(
        "grpo",
        "--model",
        "tiny",
        "--data",
        problems(tmp_path / "p.jsonl"),
        "--stop",
        "\n",
        "--mask-truncated",
        "--max-steps",
        1,
        "--output",
        tmp_path / "grpo",
    )
    assert res.returncode == 2 and "--mask-truncated" in res.stderr and "--stop" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "grpo").exists()


@pytest.mark.parametrize("partial", [["--rollout-token-budget", "8"], ["--repeat-stop", "4"]])
def test_stop_with_partial_rollouts_is_refused_in_one_line(tmp_path, partial):
    res = run_cli(
        "grpo",
        "--model",
        "tiny",
        "--data",
        problems(tmp_path / "p.jsonl"),
        "--stop",
        "\n",
        *partial,
        "--max-steps",
        1,
        "--output",
        tmp_path / "grpo",
    )
    assert res.returncode == 2 and "--stop" in res.stderr and "partial" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "grpo").exists()
