"""The partial-rollout replay buffer travels with checkpoints (r1kit/rl/partial.py, trainer.py).

First the state round trip and the dealing-out of several processes' buffers on a hand-built and a
scripted buffer; then real `r1kit grpo --rollout-token-budget` runs: one run of 4 steps against a
run of 2 steps resumed for 2 more, which must continue the saved trajectories and log the same.
"""

import json
import shutil

import pytest
import test_partial_rollouts as runs
from conftest import run_cli
from test_partial_rollouts import BASE, EOS, Script, rows, step

from r1kit.rl.partial import Group, PartialRollouts, Trajectory, check_row, merge_states


def hand_built() -> PartialRollouts:
    pr = PartialRollouts(2, budget=4, max_length=30, eos_ids=[EOS])
    pr.iteration = 3
    row = {
        "prompt": [{"role": "user", "content": "What is 2+2?"}],
        "answer": "4",
        "r1kit_index": 7,
        "w": 0.5,
        "tags": ("a", "b"),
        "none": None,
    }
    long = Trajectory(dict(row), [11, 12, 13, 14, 15, 16, 17, 18, 19], [(1, 4), (2, 4), (3, 1)], "")
    done = Trajectory(dict(row), [21, 22, EOS], [(1, 3)], "eos")
    other = Trajectory({"prompt": "p", "answer": "1", "r1kit_index": 2}, [31, 32, 33, 34], [(3, 4)], "")
    pr.buffer = [
        Group([long, done], born=1),
        Group([other, Trajectory(dict(other.row), [41, 42, 43, 44], [(3, 4)], "")], born=3),
    ]
    return pr


def test_state_round_trips_through_json():
    pr = hand_built()
    state = json.loads(json.dumps(pr.state_dict()))
    back = PartialRollouts(2, budget=4, max_length=30, eos_ids=[EOS])
    back.load_state_dict(state)
    assert back.iteration == 3 and [g.born for g in back.buffer] == [1, 3]
    long, done = back.buffer[0].members
    assert (long.tokens, long.segments, long.end) == (
        [11, 12, 13, 14, 15, 16, 17, 18, 19],
        [(1, 4), (2, 4), (3, 1)],
        "",
    )
    assert (done.tokens, done.segments, done.end) == ([21, 22, EOS], [(1, 3)], "eos")
    # the row comes back equal, its tuple as a list (the one conversion check_row makes)
    assert long.row == {
        "prompt": [{"role": "user", "content": "What is 2+2?"}],
        "answer": "4",
        "r1kit_index": 7,
        "w": 0.5,
        "tags": ["a", "b"],
        "none": None,
    }
    assert [[t.tokens for t in g.members] for g in back.buffer] == [
        [t.tokens for t in g.members] for g in pr.buffer
    ]
    assert back.state_dict() == state  # a second round trip changes nothing
    # the restored buffer is continued where it stopped: the long member gets tokens 9.., the new
    # iteration is 4, and its group (the oldest) takes the first slots
    seen = []

    def sample(prefixes, max_new):
        seen.extend((p, max_new) for p in prefixes)
        return [[90, 91, EOS] for _ in prefixes]

    batch = back.plan(rows(5, 6))
    assert batch[0]["r1kit_index"] == 7 and back.iteration == 4
    back.generate([[1], [1]], sample)
    assert seen == [
        ([1, 11, 12, 13, 14, 15, 16, 17, 18, 19], 4)
    ]  # only the unfinished member, after its tokens
    assert long.segments[-1] == (4, 3) and back.spans() == [(9, 12), None] and back.scored() == [True, True]


def test_restored_buffer_continues_exactly_like_the_original():
    lengths = {1: 3, 2: 14, 3: 2, 4: 9, 5: 4, 6: 1, 7: 2, 8: 3}
    a = PartialRollouts(2, budget=4, max_length=30, eos_ids=[EOS])
    for keys in ((1, 2, 3, 4), (5, 6, 7, 8)):
        step(a, rows(*keys), Script(lengths))
    assert a.buffer and any(len(t.segments) >= 2 for g in a.buffer for t in g.members)
    b = PartialRollouts(2, budget=4, max_length=30, eos_ids=[EOS])
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for keys in ((7, 8, 3, 4), (5, 6, 1, 2), (1, 2, 3, 4)):
        batch_a, comps_a = step(a, rows(*keys), Script(lengths))
        batch_b, comps_b = step(b, rows(*keys), Script(lengths))
        assert (batch_a, comps_a, a.spans(), a.stats) == (batch_b, comps_b, b.spans(), b.stats)
    assert sum(a.stats.values()) > 0 and a.iteration == b.iteration == 5


def test_rows_that_are_not_json_are_refused_and_bad_states_rejected():
    with pytest.raises(ValueError, match="column 'image' holds a bytes"):
        check_row({"prompt": "p", "image": b"\x89PNG"})
    with pytest.raises(ValueError, match=r"column 'meta.when' holds a"):
        import datetime

        check_row({"meta": {"when": datetime.date(2025, 1, 1)}})
    with pytest.raises(ValueError, match="non-string key 1"):
        check_row({"map": {1: "a"}})
    state = hand_built().state_dict()
    with pytest.raises(ValueError, match="this run's G is 4"):
        PartialRollouts(4, budget=4, max_length=30, eos_ids=[EOS]).load_state_dict(state)
    with pytest.raises(ValueError, match="already has 9 tokens, not below this run's max length 8"):
        PartialRollouts(2, budget=4, max_length=8, eos_ids=[EOS]).load_state_dict(state)


def test_buffers_of_another_process_count_are_dealt_out_oldest_first():
    def state(borns):
        return {
            "version": 1,
            "iteration": 6,
            "group_size": 2,
            "buffer": [{"born": b, "members": []} for b in borns],
        }

    # two processes' buffers onto one: all groups, oldest first, rank 0 before rank 1 at equal age
    (one,) = merge_states([state([2, 5]), state([1, 5])], 1)
    assert [g["born"] for g in one["buffer"]] == [1, 2, 5, 5] and one["iteration"] == 6
    # one onto three: round-robin in that order
    three = merge_states([state([4, 1, 3, 2, 5])], 3)
    assert [[g["born"] for g in s["buffer"]] for s in three] == [[1, 4], [2, 5], [3]]
    with pytest.raises(ValueError, match="disagree on the iteration"):
        merge_states([state([1]), {**state([1]), "iteration": 5}], 1)


# ---------------------------------------------------------------------------------------------
# real runs

# the prompts, reward module and flags of test_partial_rollouts.py's real runs (its `work` fixture)
work = runs.work
# budget 8 of 24 tokens: most trajectories need 2-3 iterations; a checkpoint after every step
RUN = [*BASE, "--rollout-token-budget", "8", "--save-steps", "1", "--keep-checkpoints"]
TIMING = {"time", "step_time", "tokens_per_s", "rollout/tokens_per_s"}


def grpo(work, *args):
    return run_cli("grpo", "--data", work / "arith.jsonl", *RUN, *args, cwd=work)


def logged(out):
    return [
        {k: v for k, v in r.items() if k not in TIMING}
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if "loss" in r
    ]


def test_resume_continues_the_buffered_trajectories(work):
    whole, first, second, dealt = (work / n for n in ("whole", "first", "second", "dealt"))
    for out, extra in ((whole, ["--max-steps", "4"]), (first, ["--max-steps", "2"])):
        res = grpo(work, "--output", out, *extra)
        assert res.returncode == 0, res.stderr[-3000:]
    saved = json.loads((first / "checkpoints" / "checkpoint-2" / "r1kit_partial_rank0.json").read_text())
    waiting = [t for g in saved["buffer"] for t in g["members"] if not t["end"]]
    assert saved["iteration"] == 2 and saved["processes"] == 1 and waiting
    assert all(sum(n for _, n in t["segments"]) == len(t["tokens"]) > 0 for t in waiting)

    res = grpo(work, "--output", second, "--max-steps", "4", "--resume", first / "checkpoints")
    assert res.returncode == 0, res.stderr[-3000:]
    uninterrupted, resumed = logged(whole), logged(second)
    assert [r["step"] for r in resumed] == [3, 4]
    # step 3 continues the trajectories that were waiting at step 2 (an empty buffer continues none)
    assert resumed[0]["partial/continued"] == len(waiting) == uninterrupted[2]["partial/continued"]
    # and the resumed run is the uninterrupted one: same tokens, rewards, losses, and buffer
    assert resumed == uninterrupted[2:]
    for name in ("checkpoint-3", "checkpoint-4"):
        assert json.loads(
            (second / "checkpoints" / name / "r1kit_partial_rank0.json").read_text()
        ) == json.loads((whole / "checkpoints" / name / "r1kit_partial_rank0.json").read_text())

    # a checkpoint written by 2 processes, resumed by 1: both buffers are continued, oldest first
    # (split so that dealing them out restores the original order, hence the same run again)
    ckpt = work / "two" / "checkpoint-2"
    shutil.copytree(first / "checkpoints" / "checkpoint-2", ckpt)
    assert len(saved["buffer"]) == 2 and saved["buffer"][0]["born"] <= saved["buffer"][1]["born"]
    for rank in (0, 1):
        part = {**saved, "processes": 2, "buffer": [saved["buffer"][rank]]}
        (ckpt / f"r1kit_partial_rank{rank}.json").write_text(json.dumps(part))
    res = grpo(work, "--output", dealt, "--max-steps", "3", "--resume", ckpt)
    assert res.returncode == 0, res.stderr[-3000:]
    assert logged(dealt) == uninterrupted[2:3]

    # rank 1's file missing: incomplete, refused in one line before training
    (ckpt / "r1kit_partial_rank1.json").unlink()
    res = grpo(work, "--output", work / "refused", "--max-steps", "3", "--resume", ckpt)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "1 partial-rollout buffer file(s)" in lines[0] and "written by [2]" in lines[0]
    assert not (work / "refused" / "metrics.jsonl").exists()
