"""Kimi k1.5 partial rollouts and repeat detection (r1kit/rl/partial.py, issue 18).

First the buffer's bookkeeping against a scripted sampler whose every trajectory is known in
advance; then real `r1kit grpo --rollout-token-budget` runs on the tiny model, on both rollout
paths (transformers' generate, r1kit's decode loop), with a probe that checks what reaches the
generator and the loss.
"""

import json
from typing import ClassVar

import pytest
import torch
from conftest import arith_jsonl

from r1kit.rl import trainer as trainer_module
from r1kit.rl.partial import PartialRollouts, first_repeat_end, repeat_stop_reward, repeats_at_end

EOS = 0


def full(key: int, length: int, eos: bool = True) -> list[int]:
    """Trajectory `key`'s whole completion: `length` tokens, the last one EOS when `eos`.
    Token values never repeat within 200 tokens (so repeat detection has nothing to find)."""
    body = [10 + (key * 37 + i) % 200 for i in range(length - 1 if eos else length)]
    return body + [EOS] if eos else body


class Script:
    """A sampler that continues each trajectory from wherever its prefix says it is. The prompt
    is one token, the trajectory's key; every call is logged."""

    def __init__(self, lengths: dict[int, int]):
        self.lengths = lengths
        self.calls: list[tuple[int, int, int]] = []  # (key, offset asked for, max_new)

    def __call__(self, prefixes, max_new):
        out = []
        for prefix in prefixes:
            key, done = prefix[0], prefix[1:]
            seq = full(key, self.lengths[key])
            assert done == seq[: len(done)], "the prefix is not the trajectory's own earlier tokens"
            self.calls.append((key, len(done), max_new))
            out.append(seq[len(done) : len(done) + max_new])
        return out


def rows(*keys):
    return [{"key": k} for k in keys]


def step(pr: PartialRollouts, fresh, script):
    batch = pr.plan(fresh)
    return batch, pr.generate([[r["key"]] for r in batch], script)


def test_long_trajectory_is_continued_never_regenerated_and_counted_once():
    # G = 2, budget 4: group (1, 2) has a 10-token member; groups (3, 4), (5, 6), (7, 8) are short
    lengths = {1: 3, 2: 10, 3: 2, 4: 2, 5: 4, 6: 1, 7: 2, 8: 3}
    script = Script(lengths)
    pr = PartialRollouts(2, budget=4, max_length=30, eos_ids=[EOS])

    batch, comps = step(pr, rows(1, 2, 3, 4), script)
    assert [r["key"] for r in batch] == [1, 2, 3, 4]
    assert comps == [[EOS], [EOS], full(3, 2), full(4, 2)]  # group (1, 2) waits: placeholders
    assert pr.spans() == [None, None, (0, 2), (0, 2)] and pr.scored() == [False, False, True, True]
    assert (pr.stats["new_tokens"], pr.stats["buffered_groups"], pr.stats["trained_groups"]) == (
        3 + 4 + 2 + 2,
        1,
        1,
    )

    # the buffered group takes the first slots; fresh group (7, 8) does not fit and is skipped
    batch, comps = step(pr, rows(5, 6, 7, 8), script)
    assert [r["key"] for r in batch] == [1, 2, 5, 6]
    assert (pr.stats["continued"], pr.stats["skipped_groups"]) == (1, 1)
    assert comps[:2] == [[EOS], [EOS]] and pr.spans() == [None, None, (0, 4), (0, 1)]
    assert pr.stats["new_tokens"] == 4 + 4 + 1  # key 2 tokens 4..7, keys 5 and 6; key 1 is done

    batch, comps = step(pr, rows(7, 8, 3, 4), script)
    assert [r["key"] for r in batch] == [1, 2, 7, 8]
    assert comps[:2] == [full(1, 3), full(2, 10)]
    # the loss covers key 2's last segment only (tokens 8, 9); key 1 finished two iterations ago
    assert pr.spans() == [None, (8, 10), (0, 2), (0, 3)]
    assert pr.rows()[1].segments == [(1, 4), (2, 4), (3, 2)] and pr.rows()[1].end == "eos"
    assert (pr.stats["trained_rows"], pr.stats["stale_rows"]) == (4, 1)

    # each token was asked for once, in order: key 2 at offsets 0, 4, 8 with budgets 4, 4, 4
    assert [(off, n) for key, off, n in script.calls if key == 2] == [(0, 4), (4, 4), (8, 4)]
    asked = {}
    for key, off, _ in script.calls:
        assert off == asked.get(key, 0), f"key {key} regenerated from {off}"
        asked[key] = off + len(full(key, lengths[key])[off : off + 4])
    assert asked == {k: n for k, n in lengths.items() if k in (1, 2, 3, 4, 5, 6, 7, 8)}
    assert sum(asked.values()) == 3 + 10 + 2 + 2 + 4 + 1 + 2 + 3


def test_trajectory_loss_covers_every_token_of_a_completed_group():
    lengths = {1: 3, 2: 10}
    pr = PartialRollouts(2, budget=4, max_length=30, eos_ids=[EOS], loss="trajectory")
    for _ in range(3):
        step(pr, rows(1, 2), Script(lengths))
    assert pr.spans() == [(0, 3), (0, 10)]  # the earlier finisher and the earlier segments too
    with pytest.raises(ValueError, match="loss must be one of"):
        PartialRollouts(2, budget=4, max_length=30, eos_ids=[EOS], loss="all")


def test_ends_length_age_and_stop():
    lengths = {1: 40, 2: 40, 3: 40, 4: 40}
    script = Script(lengths)
    # max length 10 with budget 4: 4 + 4 + 2 (the last allowance shrinks to what is left)
    pr = PartialRollouts(2, budget=4, max_length=10, eos_ids=[EOS])
    for _ in range(3):
        step(pr, rows(1, 2), script)
    assert [(t.end, len(t.tokens)) for t in pr.rows()] == [("length", 10), ("length", 10)]
    assert [n for key, _, n in script.calls if key == 1] == [4, 4, 2]
    assert pr.spans() == [(8, 10), (8, 10)]
    # max age 1: one continuation, then the trajectory ends (truncated) after its second segment
    pr = PartialRollouts(2, budget=4, max_length=100, eos_ids=[EOS], max_age=1)
    step(pr, rows(3, 4), script)
    step(pr, rows(3, 4), script)
    assert [(t.end, len(t.tokens), t.segments) for t in pr.rows()] == [("age", 8, [(1, 4), (2, 4)])] * 2
    assert pr.stats["ended_age"] == 2 and pr.buffer == []

    # a segment shorter than its allowance without EOS was cut by a stop condition: finished
    def short(prefixes, max_new):
        return [[11, 12] for _ in prefixes]

    pr = PartialRollouts(2, budget=4, max_length=100, eos_ids=[EOS])
    pr.plan(rows(1, 2))
    assert pr.generate([[1], [2]], short) == [[11, 12], [11, 12]]
    assert [t.end for t in pr.rows()] == ["stop", "stop"]


def test_repeat_detection_cuts_at_the_first_repeating_token():
    assert first_repeat_end([5, 6, 7, 8, 9, 9, 9, 9, 9, 9], 4) == 8  # [9, 9, 9, 9] complete at index 8
    assert first_repeat_end([1, 2, 3, 1, 2, 3, 1, 2], 6) == 6  # "1 2 3" twice
    assert first_repeat_end([1, 2, 3, 4, 5, 6, 7, 8], 4) is None
    assert first_repeat_end([1, 2, 1, 2, 3, 4, 3, 4, 3], 4, start=4) == 8  # only windows ending after `start`
    assert repeats_at_end([9, 1, 2, 1, 2], 4) and not repeats_at_end([1, 2, 1, 2, 3], 4)
    assert not repeats_at_end([7, 7, 7, EOS], 4)  # an EOS-ended completion never counts
    reward = repeat_stop_reward(4)
    assert reward(
        prompts=["p"] * 3, completions=["a"] * 3, completion_ids=[[3, 4, 4, 4, 4], [4, 4, 4, EOS], [1]]
    ) == [-1.0, 0.0, 0.0]

    # the second segment starts a loop that straddles nothing: cut where the window first repeats
    def loop(prefixes, max_new):
        return [([21, 22, 23] if len(p) == 1 else [5, 5, 5, 5, 5, 5])[:max_new] for p in prefixes]

    pr = PartialRollouts(2, budget=6, max_length=100, eos_ids=[EOS], repeat_window=4)
    pr.plan(rows(1, 2))
    pr.generate([[1], [2]], loop)
    assert [t.end for t in pr.rows()] == ["stop", "stop"]  # 3 of 6 allowed tokens, no EOS
    pr = PartialRollouts(2, budget=3, max_length=100, eos_ids=[EOS], repeat_window=4)
    step(pr, rows(1, 2), loop)
    assert [t.end for t in pr.rows()] == ["", ""]
    step(pr, rows(1, 2), loop)  # continued: 21 22 23 | 5 5 5 -> window [5 5 5 5] not yet full
    step(pr, rows(1, 2), loop)
    t = pr.rows()[0]
    assert (t.end, t.tokens) == ("repeat", [21, 22, 23, 5, 5, 5, 5]) and t.segments == [
        (1, 3),
        (2, 3),
        (3, 1),
    ]


# ---------------------------------------------------------------------------------------------
# real runs

PROBLEMS = [(12, 7), (33, 41), (5, 5), (60, 19), (71, 8), (24, 24), (9, 90), (48, 13)]
REWARDS = (
    "def len_reward(prompts=None, completions=(), completion_ids=None, **kw):\n"
    "    return [len(ids) / 24 + (ids[0] % 3 if ids else 0) for ids in completion_ids]\n"
)
BASE = [
    "--model",
    "tiny",
    "--num-generations",
    "4",
    "--prompts-per-step",
    "2",
    "--max-completion-length",
    "24",
    "--reward",
    "part_rewards:len_reward",
    "--learning-rate",
    "1e-3",
    "--seed",
    "0",
    "--no-live",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("partial")
    arith_jsonl(root / "arith.jsonl", PROBLEMS)
    (root / "part_rewards.py").write_text(REWARDS)
    return root


class Probe(trainer_module.R1GRPOTrainer):
    """Checks, in a real run, what the generator is asked and what the loss sees."""

    calls: ClassVar[list] = []
    iterations: ClassVar[list] = []
    losses: ClassVar[list] = []
    seen: ClassVar[dict] = {}
    snap: ClassVar[dict] = {}

    def _r1_timed_generate(self, prompt_ids, *args):
        ids, logprobs = super()._r1_timed_generate(prompt_ids, *args)
        Probe.calls.append(
            (
                [list(map(int, p)) for p in prompt_ids],
                [list(x) for x in ids],
                self.generation_kwargs["max_new_tokens"],
            )
        )
        return ids, logprobs

    def _generate_and_score_completions(self, inputs):
        before = dict(Probe.snap)  # every trajectory's tokens after the previous iteration
        weights = sum(float(p.detach().double().abs().sum()) for p in self.model.parameters())
        out = super()._generate_and_score_completions(inputs)
        if self.model.training:
            rollouts = self._r1_rollouts
            loss_mask = out["completion_mask"] * out["tool_mask"]
            for row, (t, span) in enumerate(zip(rollouts.rows(), rollouts.spans())):
                Probe.seen[id(t)] = t
                prev = before.get(id(t), [])
                assert t.tokens[: len(prev)] == prev  # continued, never regenerated
                want = torch.zeros(loss_mask.size(1), dtype=loss_mask.dtype)
                if span is not None:
                    want[span[0] : span[1]] = 1
                    assert out["completion_ids"][row, : len(t.tokens)].tolist() == t.tokens
                    # exactly the tokens generated now (--partial-loss trajectory: all of them)
                    assert span == (
                        (0, len(t.tokens)) if rollouts.loss == "trajectory" else (len(prev), len(t.tokens))
                    )
                assert torch.equal(loss_mask[row].cpu(), want), (row, span, loss_mask[row])
                Probe.snap[id(t)] = list(t.tokens)
            Probe.iterations.append(
                {
                    "spans": rollouts.spans(),
                    "loss_tokens": int(loss_mask.sum()),
                    "lengths": [n for n, _ in rollouts.lengths()],
                    "weights": weights,
                }
            )
        return out

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from r1kit.rl.losses import policy_loss

        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            logp, _, _ = self._get_per_token_logps_and_entropies(
                model, ids, att, inputs["completion_ids"].size(1)
            )
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mask = inputs["completion_mask"] * inputs["tool_mask"]
        ref, _ = policy_loss(logp, logp, None, inputs["advantages"], mask, loss_type="grpo")
        scale = float(inputs["r1_loss_scale"]) if "r1_loss_scale" in inputs else 1.0
        Probe.losses.append((loss.item(), ref.item() / self.current_gradient_accumulation_steps * scale))
        return loss


def run(work, monkeypatch, name, *args):
    from typer.testing import CliRunner

    from r1kit.cli import app

    monkeypatch.syspath_prepend(str(work))
    monkeypatch.setattr(trainer_module, "R1GRPOTrainer", Probe)
    Probe.calls, Probe.iterations, Probe.losses, Probe.seen, Probe.snap = [], [], [], {}, {}
    out = work / name
    res = CliRunner().invoke(
        app, ["grpo", "--data", str(work / "arith.jsonl"), *BASE, "--output", str(out), "--overwrite", *args]
    )
    assert res.exit_code == 0, res.output[-3000:]
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


@pytest.mark.parametrize(("rollout", "loss"), [("hf", "segment"), ("fast", "segment"), ("hf", "trajectory")])
def test_partial_rollouts_in_a_real_run(work, monkeypatch, rollout, loss):
    logged = run(
        work,
        monkeypatch,
        f"partial-{rollout}-{loss}",
        "--rollout",
        rollout,
        "--rollout-token-budget",
        "8",
        "--max-steps",
        "6",
        "--partial-loss",
        loss,
    )
    assert len(logged) == 6 and len(Probe.iterations) == 6
    assert all(r["rollout/fast_path"] == float(rollout == "fast") for r in logged)
    # both kinds of iteration happened: groups still running only, and groups completed and trained
    assert any(it["lengths"] for it in Probe.iterations) and any(not it["lengths"] for it in Probe.iterations)
    # the generator never gets more than the budget, and gets prompt + earlier tokens as its prefix
    assert {max_new for _, _, max_new in Probe.calls} <= set(range(1, 9))
    trajectories = list(Probe.seen.values())
    assert any(len(t.segments) >= 2 for t in trajectories)  # some trajectory outgrew the budget
    for t in trajectories:
        assert sum(n for _, n in t.segments) == len(t.tokens)  # each token in exactly one segment
        assert len(t.tokens) <= 24 and all(n <= 8 for _, n in t.segments)
    # each generated token is counted once, in the iteration that generated it
    assert sum(r["partial/new_tokens"] for r in logged) == sum(len(t.tokens) for t in trajectories)
    assert sum(r["partial/trained_groups"] for r in logged) >= 1
    # the loss runs over exactly the current segments, and is the GRPO formula over them
    for it in Probe.iterations:
        assert it["loss_tokens"] == sum(b - a for span in it["spans"] if span for a, b in [span])
    assert Probe.losses and all(got == pytest.approx(ref, rel=1e-4, abs=1e-7) for got, ref in Probe.losses)
    # a step without a complete group leaves the weights as they were, also after Adam has momentum
    its = Probe.iterations
    assert any(its[i - 1]["lengths"] and not its[i]["lengths"] for i in range(1, len(its) - 1))
    for i in range(1, len(its) - 1):
        moved = its[i + 1]["weights"] != its[i]["weights"]
        assert moved == bool(its[i]["lengths"]), (i, its[i]["lengths"])
    for record, it in zip(logged, Probe.iterations):
        if it["lengths"]:  # the logged lengths are the trained trajectories' own, not the placeholders'
            assert record["completions/mean_length"] == pytest.approx(sum(it["lengths"]) / len(it["lengths"]))
        else:  # nothing complete: no reward, and the optimizer leaves the weights alone
            assert record.get("reward") is None and record.get("optimizer/skipped_steps") == 1.0


@pytest.mark.parametrize("rollout", ["hf", "fast"])
def test_repeat_stop_ends_and_penalises_loops(work, monkeypatch, rollout):
    # near-greedy sampling: the untrained tiny model loops on one token
    logged = run(
        work,
        monkeypatch,
        f"repeat-{rollout}",
        "--rollout",
        rollout,
        "--repeat-stop",
        "8",
        "--temperature",
        "0.05",
        "--max-steps",
        "2",
    )
    ended = [t for t in Probe.seen.values() if t.end == "repeat"]
    assert ended and sum(r["partial/ended_repeat"] for r in logged) == len(ended)
    for t in ended:  # cut at the first token where the last 8 repeat
        assert first_repeat_end(t.tokens, 8) == len(t.tokens) and len(t.tokens) < 24
    assert all(r["rewards/repeat_stop/mean"] < 0 for r in logged)
    assert min(r["rewards/repeat_stop/mean"] for r in logged) >= -1.0


def test_fast_generator_stops_a_loop_on_the_device():
    from r1kit.generation.fast import FastGenerator
    from r1kit.models import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    gen = FastGenerator(
        build_tiny_model(tok),
        max_batch=4,
        max_len=160,
        eos_token_ids=[tok.eos_token_id],
        pad_token_id=tok.pad_token_id,
    )
    prompts = [tok(f"What is {a}+{b}?")["input_ids"] for a, b in PROBLEMS[:4]]
    free = gen.generate(prompts, max_new_tokens=120, greedy=True)
    cut = gen.generate(prompts, max_new_tokens=120, greedy=True, repeat_window=8)
    for a, b in zip(free, cut):
        assert a.truncated and len(a.token_ids) == 120  # greedy, the untrained model loops to the end
        # stopped at the first check (every 16 steps) that sees 8 repeating tokens: same tokens, fewer
        assert b.stopped and len(b.token_ids) % 16 == 0 and len(b.token_ids) < 120
        assert b.token_ids == a.token_ids[: len(b.token_ids)] and repeats_at_end(b.token_ids, 8)
        assert not repeats_at_end(b.token_ids[: len(b.token_ids) - 16], 8) or len(b.token_ids) == 16


def test_kimi_preset_trains_with_partial_rollouts_and_resets(work, monkeypatch):
    # the kimi preset: mirror-descent loss, prioritized sampling, length reward, optimizer reset,
    # partial rollouts (budget shrunk here to 8 of 24 tokens) and repeat detection
    logged = run(
        work,
        monkeypatch,
        "kimi",
        "--preset",
        "kimi",
        "--reward",
        "accuracy=1",
        "--reward",
        "length=1",
        "--rollout-token-budget",
        "8",
        "--repeat-stop",
        "8",
        "--max-steps",
        "5",
    )
    config = (work / "kimi" / "resolved_config.yaml").read_text()
    for line in (
        "loss: kimi",
        "sampler: prioritized",
        "reset_optimizer: true",
        "rollout_token_budget: 8",
        "repeat_stop: 8",
        "partial_loss: trajectory",
    ):
        assert line in config
    assert [r.get("optimizer/resets") for r in logged] == [1.0] * 5  # one rollout batch per step
    trained = [r for r in logged if r["partial/trained_groups"]]
    assert trained and all(r["kimi/log_ratio"] == r["kimi/log_ratio"] for r in trained)  # finite, not NaN
    assert all(r["loss"] == r["loss"] for r in logged)
    assert Probe.iterations and all(
        it["loss_tokens"] == sum(b - a for span in it["spans"] if span for a, b in [span])
        for it in Probe.iterations
    )
