"""Curriculum / prioritized samplers (Kimi k1.5) and DAPO dynamic-sampling filtering."""

import pytest
import torch
from trl.trainer.utils import RepeatSampler

from r1kit.rl.dynamic import choose_groups, keep_mask, zero_variance_groups
from r1kit.rl.samplers import CurriculumSampler, PrioritizedSampler, difficulty_from_columns


def chunks_of(indices, mini, batch, repeat):
    """Undo the RepeatSampler layout: check it and return the distinct chunks."""
    block = mini * batch * repeat
    assert len(indices) % block == 0
    out = []
    for b in range(0, len(indices), block):
        part = indices[b : b + block]
        one = part[: mini * batch]
        assert part == one * repeat  # the chunk is repeated repeat_count times
        chunk = one[::mini]
        assert one == [i for i in chunk for _ in range(mini)]  # each index G times in a row
        assert len(set(chunk)) == batch  # distinct prompts within a chunk
        out.append(chunk)
    return out


def test_same_layout_and_length_as_trl_repeat_sampler():
    n, mini, batch, repeat = 7, 2, 3, 4
    trl_list = list(RepeatSampler(list(range(n)), mini, batch, repeat, shuffle=True, seed=1))
    cur = CurriculumSampler([0.0] * n, mini, batch, repeat, seed=1)
    pri = PrioritizedSampler(n, mini, batch, repeat, seed=1)
    for sampler in (cur, pri):
        got = list(sampler)
        assert len(got) == len(trl_list) == len(sampler) == (7 // 3) * 3 * 2 * 4
        assert len(chunks_of(got, mini, batch, repeat)) == 2
    assert len(chunks_of(trl_list, mini, batch, repeat)) == 2


def test_curriculum_sorted_order_with_shuffled_buckets():
    diff = [3, 1, 2, 1, 3, 2, 1, 2, 3]  # buckets: {1,3,6}, {2,5,7}, {0,4,8}
    s = CurriculumSampler(diff, mini_repeat_count=2, batch_size=3, seed=0)
    chunks = chunks_of(list(s), 2, 3, 1)
    assert [sorted(c) for c in chunks] == [[1, 3, 6], [2, 5, 7], [0, 4, 8]]
    # within-bucket order changes between epochs/seeds, the bucket order does not
    orders = {tuple(CurriculumSampler(diff, 1, 9, seed=k).ordered()) for k in range(6)}
    assert len(orders) > 1
    assert all([diff[i] for i in o] == sorted(diff) for o in orders)


def test_curriculum_sorted_draws_every_prompt_including_the_hardest():
    # 10 prompts in chunks of 3: an epoch has 3 chunks (9 prompts), one prompt sits out. It must
    # not be the hardest one every epoch: over epochs every prompt is drawn, each epoch easy first.
    diff = [5, 9, 0, 7, 2, 8, 1, 6, 3, 4]  # prompt 1 (difficulty 9) is the hardest
    s = CurriculumSampler(diff, mini_repeat_count=2, batch_size=3, seed=0)
    seen = set()
    for _ in range(8):  # one pass over the sampler = one epoch
        drawn = [i for c in chunks_of(list(s), 2, 3, 1) for i in c]
        assert len(drawn) == len(set(drawn)) == 9
        assert [diff[i] for i in drawn] == sorted(diff[i] for i in drawn)
        seen |= set(drawn)
    assert seen == set(range(10))
    assert len(s) == 3 * 3 * 2


def test_curriculum_from_pass_rate():
    # pass rate 0.9 is the easiest: difficulty 1 − pass rate; missing → hardest
    d = difficulty_from_columns(pass_rate=[0.1, 0.9, None, 0.5])
    assert d[:2] == pytest.approx([0.9, 0.1]) and d[3] == pytest.approx(0.5) and d[2] == float("inf")
    s = CurriculumSampler(d, 1, 1, seed=0)
    assert list(s) == [1, 3, 0, 2]
    with pytest.raises(ValueError):
        difficulty_from_columns()


def test_curriculum_window_widens_linearly():
    diff = list(range(20))  # prompt i has difficulty i
    s = CurriculumSampler(diff, 1, 2, seed=0, schedule="window", start=0.25)
    # 10 chunks: window = ceil((0.25 + 0.75·c/9)·20) → chunk 0: 5 easiest, chunk 9: all 20
    assert [s.window_size(c) for c in (0, 3, 9)] == [5, 10, 20]
    chunks = chunks_of(list(s), 1, 2, 1)
    assert all(i < 5 for i in chunks[0]) and all(i < 10 for i in chunks[3])


def test_prioritized_probabilities_after_updates():
    s = PrioritizedSampler(4, mini_repeat_count=4, batch_size=2, floor=0.05)
    assert torch.allclose(s.probabilities(), torch.full((4,), 0.25, dtype=torch.float64))
    # prompt 0 solved 4/4, prompt 1 solved 1/4, prompts 2 and 3 unseen (rate 0)
    s.update([0, 0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0])
    # weights max(1 − rate, 0.05) = [0.05, 0.75, 1, 1], Σ = 2.8
    assert s.probabilities().tolist() == pytest.approx([0.05 / 2.8, 0.75 / 2.8, 1 / 2.8, 1 / 2.8])
    # prompt 0 now fails 4 times: 4/8 = 0.5 → weights [0.5, 0.75, 1, 1], Σ = 3.25; NaN skipped
    s.update([0, 0, 0, 0, 2], [0, 0, 0, 0, float("nan")])
    assert s.probabilities().tolist() == pytest.approx([0.5 / 3.25, 0.75 / 3.25, 1 / 3.25, 1 / 3.25])
    state = s.state_dict()
    t = PrioritizedSampler(4, 4, 2, floor=0.05)
    t.load_state_dict(state)
    assert torch.allclose(t.probabilities(), s.probabilities())


def test_prioritized_draws_follow_probabilities_and_updates_apply_lazily():
    s = PrioritizedSampler(4, mini_repeat_count=1, batch_size=1, floor=0.05, seed=3)
    s.update([0, 1], [1.0, 1.0])  # weights [0.05, 0.05, 1, 1]
    counts = torch.zeros(4)
    for _ in range(300):
        for i in s:
            counts[i] += 1
    freq = counts / counts.sum()  # expected [0.0238, 0.0238, 0.476, 0.476]
    assert freq[0] < 0.05 and freq[1] < 0.05 and abs(freq[2] - 0.476) < 0.05
    # an update between chunks changes the very next chunk drawn
    s = PrioritizedSampler(3, 1, 1, floor=1e-6, seed=0)
    it = iter(s)
    next(it)
    s.update([0, 1], [1.0, 1.0])
    assert next(it) == 2 and next(it) == 2


def test_initial_success_rates():
    s = PrioritizedSampler(2, 1, 1, floor=0.1, initial=[0.8, None])
    assert s.probabilities().tolist() == pytest.approx([0.2 / 1.2, 1.0 / 1.2])


def test_dynamic_filtering_on_toy_rewards():
    # groups of 4: mixed, all correct, all wrong, mixed with NaN, single scored value
    r = torch.tensor(
        [
            1,
            0,
            0,
            1,
            1,
            1,
            1,
            1,
            0,
            0,
            0,
            0,
            1,
            float("nan"),
            0,
            1,
            float("nan"),
            float("nan"),
            1,
            float("nan"),
        ],
        dtype=torch.float32,
    )
    assert zero_variance_groups(r, 4).tolist() == [False, True, True, False, True]
    keep = keep_mask(r, 4)
    assert keep.tolist() == [True] * 4 + [False] * 8 + [True] * 4 + [False] * 4
    assert 1 - keep.float().mean().item() == pytest.approx(3 / 5)
    # refill: candidates in generation order; take signal groups first, top up with zero-variance ones
    assert choose_groups([False, True, False, True, True], 2) == [1, 3]
    assert choose_groups([False, True, False], 2) == [0, 1]
    with pytest.raises(ValueError):
        choose_groups([True], 2)


def test_refill_merges_rollouts_with_their_padding():
    from r1kit.rl.trainer import _concat_outputs

    a = {
        "prompt_ids": torch.tensor([[5, 6]]),
        "prompt_mask": torch.tensor([[1, 1]]),
        "completion_ids": torch.tensor([[7]]),
        "completion_mask": torch.tensor([[1]]),
        "advantages": torch.tensor([0.5]),
        "num_items_in_batch": torch.tensor(1),
    }
    b = {
        "prompt_ids": torch.tensor([[4, 5, 6]]),
        "prompt_mask": torch.tensor([[1, 1, 1]]),
        "completion_ids": torch.tensor([[8, 9]]),
        "completion_mask": torch.tensor([[1, 1]]),
        "advantages": torch.tensor([-0.5]),
        "num_items_in_batch": torch.tensor(2),
    }
    m = _concat_outputs([a, b])
    assert m["prompt_ids"].tolist() == [[0, 5, 6], [4, 5, 6]]  # prompts padded on the left
    assert m["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert m["completion_ids"].tolist() == [[7, 0], [8, 9]]  # completions on the right
    assert m["completion_mask"].tolist() == [[1, 0], [1, 1]]
    assert m["advantages"].tolist() == [0.5, -0.5] and m["num_items_in_batch"] is None
    with pytest.raises(ValueError, match="cannot merge"):
        _concat_outputs([{**a, "pixel_values": torch.zeros(1)}, {**b, "pixel_values": torch.zeros(1)}])
