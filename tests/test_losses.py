"""GRPO-family losses against hand-computed numbers on a 2-prompt × 4-sample toy batch.

Toy batch (G = 4): prompt A rewards [1, 0, 0, 1], prompt B rewards [1, 1, 1, 0].
Dr. GRPO advantages (r − group mean): A mean 0.5 → [0.5, −0.5, −0.5, 0.5];
B mean 0.75 → [0.25, 0.25, 0.25, −0.75]. Completions have up to T = 2 tokens.
"""

import math
from types import SimpleNamespace

import pytest
import torch

from r1kit.rl.losses import (
    aggregate,
    clipped_surrogate,
    group_advantages,
    k3_kl,
    kimi_loss,
    policy_loss,
)

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
ADV_NONE = torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75])
EPS = 1e-4

# Per-token ratios ρ = π_θ/π_old and masks; 1.0 where a token is padding (mask 0).
RATIOS = torch.tensor(
    [
        [1.0, 1.3],  # A=+0.5: −0.5·1, −min(0.65, 0.6)=−0.6 (high clip)     seq mean −0.55,  sum −1.1
        [0.7, 1.0],  # A=−0.5: −min(−0.35, −0.4)=+0.4 (low clip), +0.5       mean  0.45,  sum  0.9
        [1.3, 1.0],  # A=−0.5: −min(−0.65, −0.6)=+0.65 (no clip: wrong side)  mean  0.65,  sum  0.65
        [0.7, 1.0],  # A=+0.5: −min(0.35, 0.4)=−0.35 (no clip), −0.5          mean −0.425, sum −0.85
        [1.0, 1.0],  # A=+0.25: −0.25, −0.25                                  mean −0.25,  sum −0.5
        [1.25, 1.0],  # A=+0.25: −min(0.3125, 0.3)=−0.3 (high clip at ε 0.2)   mean −0.3,   sum −0.3
        [1.0, 1.0],  # A=+0.25: −0.25, −0.25                                  mean −0.25,  sum −0.5
        [1.0, 1.0],  # A=−0.75: +0.75, +0.75                                  mean  0.75,  sum  1.5
    ]
)
MASK = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 1], [1, 1], [1, 0], [1, 1], [1, 1]])
# 14 tokens. Σ of sequence sums = −0.2; Σ of sequence means = 0.075.


def toy_logps():
    old = torch.log(torch.full((8, 2), 0.3))
    return old + torch.log(RATIOS), old


def test_group_advantages_each_scale():
    assert torch.allclose(group_advantages(REWARDS, 4, "none"), ADV_NONE)
    # A: deviations ±0.5, sample var 4·0.25/3 = 1/3, std 0.577350; B: var (3·0.0625+0.5625)/3 = 0.25, std 0.5
    sa, sb = math.sqrt(1 / 3), 0.5
    expected = torch.tensor(
        [
            0.5 / (sa + EPS),
            -0.5 / (sa + EPS),
            -0.5 / (sa + EPS),
            0.5 / (sa + EPS),
            0.25 / (sb + EPS),
            0.25 / (sb + EPS),
            0.25 / (sb + EPS),
            -0.75 / (sb + EPS),
        ]
    )
    got = group_advantages(REWARDS, 4, "group", eps=EPS)
    assert torch.allclose(got, expected, atol=1e-6)
    assert got[0].item() == pytest.approx(0.86588, abs=1e-5) and got[7].item() == pytest.approx(
        -1.49970, abs=1e-5
    )
    # batch: mean 5/8, Σ(r−0.625)² = 5·0.140625 + 3·0.390625 = 1.875, var 1.875/7, std 0.517549
    sbatch = math.sqrt(1.875 / 7)
    assert torch.allclose(
        group_advantages(REWARDS, 4, "batch", eps=EPS), ADV_NONE / (sbatch + EPS), atol=1e-6
    )


def test_group_advantages_equal_rewards_and_nan():
    # an all-correct group has zero advantage in every mode
    assert torch.equal(group_advantages(torch.ones(4), 4, "group"), torch.zeros(4))
    # NaN (unscorable) is left out: group [1, 0, NaN, 1] has mean 2/3 → advantages 1/3, −2/3, 0, 1/3
    got = group_advantages(torch.tensor([1.0, 0.0, float("nan"), 1.0]), 4, "none")
    assert torch.allclose(got, torch.tensor([1 / 3, -2 / 3, 0.0, 1 / 3]))
    with pytest.raises(ValueError):
        group_advantages(torch.ones(6), 4)


def test_k3_kl_values():
    logp = torch.zeros(3)
    ref = torch.tensor([math.log(2.0), -math.log(2.0), 0.0])
    # π_ref/π_θ = 2: 2 − ln2 − 1 = 0.306853; = 1/2: 0.5 + ln2 − 1 = 0.193147; equal: 0
    assert torch.allclose(k3_kl(logp, ref), torch.tensor([0.306853, 0.193147, 0.0]), atol=1e-6)
    assert (k3_kl(torch.randn(50), torch.randn(50)) >= 0).all()


def test_each_loss_variant_value():
    logp, old = toy_logps()
    kw = {"epsilon_low": 0.2, "epsilon_high": 0.2, "max_completion_length": 4}
    grpo, stats = policy_loss(logp, old, None, ADV_NONE, MASK, loss_type="grpo", **kw)
    assert grpo.item() == pytest.approx(0.075 / 8, abs=1e-6)  # mean of 8 sequence means
    dapo, _ = policy_loss(logp, old, None, ADV_NONE, MASK, loss_type="dapo", **kw)
    assert dapo.item() == pytest.approx(-0.2 / 14, abs=1e-6)  # Σ tokens / 14 tokens
    dr, _ = policy_loss(logp, old, None, ADV_NONE, MASK, loss_type="dr_grpo", **kw)
    assert dr.item() == pytest.approx(-0.2 / (8 * 4), abs=1e-6)  # Σ tokens / (B·MAX_TOKENS)
    # clipped tokens: low = seq1 tok0; high = seq0 tok1, seq5 tok0 — of 14 tokens
    assert stats["clip_low"].item() == pytest.approx(1 / 14)
    assert stats["clip_high"].item() == pytest.approx(2 / 14)
    assert stats["clip_region"].item() == pytest.approx(3 / 14)
    assert stats["kl"].item() == 0.0


def test_clip_higher():
    logp, old = toy_logps()
    # ε_high 0.28: seq5's ρ = 1.25 is inside [0.8, 1.28], so its mean −0.3 becomes −0.3125;
    # seq0's ρ = 1.3 is now clipped at 1.28: −0.64 instead of −0.6, its mean −0.55 → −0.57.
    # Σ of means 0.075 − 0.0125 − 0.02 = 0.0425
    loss, stats = policy_loss(
        logp, old, None, ADV_NONE, MASK, loss_type="grpo", epsilon_low=0.2, epsilon_high=0.28
    )
    assert loss.item() == pytest.approx(0.0425 / 8, abs=1e-6)
    assert stats["clip_high"].item() == pytest.approx(1 / 14)  # only seq0's ρ = 1.3 is still clipped
    # the clipped token has zero gradient, the unclipped one does not
    lp = logp.clone().requires_grad_(True)
    per_tok, _ = clipped_surrogate(lp, old, ADV_NONE, 0.2, 0.28)
    per_tok[5, 0].backward()
    assert lp.grad[5, 0].item() == pytest.approx(-0.25 * 1.25)  # d(−ρA)/dlogp = −ρA
    lp.grad = None
    per_tok, _ = clipped_surrogate(lp, old, ADV_NONE, 0.2, 0.2)
    per_tok[5, 0].backward()
    assert lp.grad[5, 0].item() == 0.0


def test_kl_term_added_to_loss():
    logp, old = toy_logps()
    ref = logp.detach().clone()
    ref[0, 0] += math.log(2.0)  # k3 = 0.306853 on one token, 0 elsewhere
    base, _ = policy_loss(logp, old, None, ADV_NONE, MASK, loss_type="dapo")
    with_kl, stats = policy_loss(logp, old, ref, ADV_NONE, MASK, loss_type="dapo", beta=0.5)
    assert with_kl.item() - base.item() == pytest.approx(0.5 * 0.306853 / 14, abs=1e-6)
    assert stats["kl"].item() == pytest.approx(0.306853 / 14, abs=1e-6)


def test_aggregate_normalisers():
    per_tok = torch.tensor([[1.0, 3.0], [2.0, 9.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    assert aggregate(per_tok, mask, "grpo").item() == pytest.approx((2.0 + 2.0) / 2)
    assert aggregate(per_tok, mask, "dapo").item() == pytest.approx(6.0 / 3)
    assert aggregate(per_tok, mask, "dr_grpo", 5).item() == pytest.approx(6.0 / 10)
    # global normalisers for gradient accumulation / dropped groups
    assert aggregate(per_tok, mask, "grpo", num_sequences=4).item() == pytest.approx(1.0)
    assert aggregate(per_tok, mask, "dapo", num_tokens=12).item() == pytest.approx(0.5)


# Kimi: a 1-step categorical policy over 3 actions with logits θ; one prompt, k = 4 samples
# y = [0, 1, 2, 0], rewards [1, 0, 0, 1] → r̄ = 0.5, a = [0.5, −0.5, −0.5, 0.5]; τ = 0.5.
ACTIONS = torch.tensor([0, 1, 2, 0])
KREWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0])
TAU = 0.5


def kimi_at(theta, theta_old):
    logp = torch.log_softmax(theta, -1)[ACTIONS].unsqueeze(1)
    old = torch.log_softmax(theta_old, -1)[ACTIONS].unsqueeze(1)
    return kimi_loss(logp, old, KREWARDS, torch.ones(4, 1), group_size=4, tau=TAU)[0]


def hand_gradient(theta, theta_old):
    # ∇L = −(1/k) Σ_j [(r_j − r̄) − τ s_j] ∇log π(y_j),  ∇log π(y) = onehot(y) − softmax(θ)
    pi = torch.softmax(theta, -1)
    s = torch.log_softmax(theta, -1)[ACTIONS] - torch.log_softmax(theta_old, -1)[ACTIONS]
    a = KREWARDS - KREWARDS.mean()
    grads = torch.nn.functional.one_hot(ACTIONS, 3).float() - pi
    return -((a - TAU * s).unsqueeze(1) * grads).mean(0)


def test_kimi_loss_at_old_policy():
    theta = torch.zeros(3, requires_grad=True)
    loss = kimi_at(theta, torch.zeros(3))
    assert loss.item() == pytest.approx(0.25 / (2 * TAU))  # mean a² = 0.25, scaled by 1/(2τ)
    loss.backward()
    # −(1/4)[a0(e0−⅓) + a1(e1−⅓) + a2(e2−⅓) + a3(e0−⅓)] = −(1/4)[1, −0.5, −0.5] (Σa = 0)
    assert torch.allclose(theta.grad, torch.tensor([-0.25, 0.125, 0.125]), atol=1e-6)


def test_kimi_loss_value_and_gradient_off_policy():
    # θ = [ln 2, 0, 0]: π = [0.5, 0.25, 0.25] against π_old = ⅓ each
    # s = [ln 1.5, ln 0.75, ln 0.75, ln 1.5] = [0.405465, −0.287682, −0.287682, 0.405465]
    # a − τs = [0.297267, −0.356159, −0.356159, 0.297267]; squares 0.088368, 0.126849
    # L = mean / (2τ) = (2·0.088368 + 2·0.126849)/4 = 0.107608
    theta = torch.tensor([math.log(2.0), 0.0, 0.0], requires_grad=True)
    loss = kimi_at(theta, torch.zeros(3))
    assert loss.item() == pytest.approx(0.107608, abs=1e-5)
    loss.backward()
    # Σ (a−τs)(e_y − π) = [0.653427, −0.326713, −0.326713]; × −1/4
    assert torch.allclose(theta.grad, torch.tensor([-0.163357, 0.081678, 0.081678]), atol=1e-5)
    assert torch.allclose(theta.grad, hand_gradient(theta.detach(), torch.zeros(3)), atol=1e-6)


def test_kimi_loss_multi_token_and_baseline():
    # the log ratio is summed over a completion's tokens; padding adds nothing
    logp = torch.tensor([[0.1, 0.2, 5.0], [0.0, 0.0, 0.0]])
    old = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    loss, stats = kimi_loss(logp, old, torch.tensor([1.0, 0.0]), mask, group_size=2, tau=1.0)
    # r̄ 0.5: (0.5 − 0.3)² + (−0.5)² = 0.04 + 0.25 → /2 (mean) /2 (2τ)
    assert loss.item() == pytest.approx(0.29 / 4)
    assert stats["log_ratio"].item() == pytest.approx(0.15)
    # an explicit per-sample baseline gives the same as grouping
    same, _ = kimi_loss(logp, old, torch.tensor([1.0, 0.0]), mask, 2, 1.0, baseline=torch.tensor([0.5, 0.5]))
    assert same.item() == pytest.approx(loss.item())


def test_kimi_per_token_gradient_is_length_times_std_times_grpo():
    # at θ = θ_old, d loss / d log π of each real token: Kimi −(r_j − r̄)/B, GRPO −Â_j/(|o_j| B)
    # with Â_j = (r_j − r̄)/(std_group + 1e-4): the ratio is |o_j| · (std_group + 1e-4)
    _, old = toy_logps()
    lp_kimi, lp_grpo = old.clone().requires_grad_(True), old.clone().requires_grad_(True)
    kimi_loss(lp_kimi, old, REWARDS, MASK, 4, tau=0.5)[0].backward()
    adv = group_advantages(REWARDS, 4, "group")
    policy_loss(lp_grpo, old, None, adv, MASK, loss_type="grpo")[0].backward()
    std = torch.tensor([math.sqrt(1 / 3)] * 4 + [0.5] * 4) + EPS
    lengths = MASK.sum(-1).float()
    real = MASK.bool()
    ratio = lp_kimi.grad[real] / lp_grpo.grad[real]
    assert torch.allclose(ratio, (lengths * std).unsqueeze(1).expand_as(MASK)[real], rtol=1e-5)
    assert lp_kimi.grad[0, 0].item() == pytest.approx(-0.5 / 8)  # −(r_0 − r̄)/B


def _trl_loss(loss_type, logp, old, ref, adv, mask, beta, eps_low, eps_high, max_len):
    """trl 1.16's own GRPOTrainer._compute_loss on the same tensors, with a stand-in `self`."""
    from trl import GRPOTrainer

    class Acc:
        num_processes = 1
        gather = staticmethod(lambda x: x.reshape(-1))
        gather_for_metrics = gather
        reduce = staticmethod(lambda x, reduction="sum": x)

    fake = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
        aux_loss_enabled=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        loss_type=loss_type,
        epsilon_low=eps_low,
        epsilon_high=eps_high,
        use_vllm=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=max_len,
        accelerator=Acc(),
        _entropy_bonus_enabled=False,
        _metrics={"train": __import__("collections").defaultdict(list)},
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
    )
    inputs = {
        "prompt_ids": torch.zeros(8, 1, dtype=torch.long),
        "prompt_mask": torch.ones(8, 1, dtype=torch.long),
        "completion_ids": torch.zeros(8, 2, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "old_per_token_logps": old,
        "num_items_in_batch": mask.sum(),
    }
    if ref is not None:
        inputs["ref_per_token_logps"] = ref
    return GRPOTrainer._compute_loss(fake, None, inputs)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_same_as_trl(loss_type):
    logp, old = toy_logps()
    ref = logp + torch.linspace(-0.5, 0.5, 16).view(8, 2)
    adv = group_advantages(REWARDS, 4, "group")
    ours, _ = policy_loss(
        logp,
        old,
        ref,
        adv,
        MASK,
        loss_type=loss_type,
        beta=0.04,
        epsilon_low=0.2,
        epsilon_high=0.28,
        max_completion_length=4,
    )
    theirs = _trl_loss(loss_type, logp, old, ref, adv, MASK, 0.04, 0.2, 0.28, 4)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)


class _Acc:
    num_processes, process_index, is_main_process = 1, 0, True
    gather = staticmethod(lambda x: x.reshape(-1))
    gather_for_metrics = gather
    reduce = staticmethod(lambda x, reduction="sum": x)


def _r1_trainer(loss_type, accum):
    """An R1GRPOTrainer shell holding only what its loss path reads: trl's attributes as trl 1.16
    sets them for this run, and per-token log-probabilities from the toy batch (row = prompt id)."""
    from collections import defaultdict

    from r1kit.rl.trainer import R1GRPOTrainer, R1Options

    logp, _ = toy_logps()
    trainer = R1GRPOTrainer.__new__(R1GRPOTrainer)
    trainer.__dict__.update(
        _get_per_token_logps_and_entropies=lambda model, ids, *a, **k: (
            logp[ids[:, 0]],
            torch.zeros(len(ids), 2),
            None,
        ),
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=accum,
        accelerator=_Acc(),
        args=SimpleNamespace(
            steps_per_generation=accum, use_bias_correction_kl=False, delta=None, report_to=[]
        ),
        state=SimpleNamespace(global_step=0),
        r1=R1Options(loss=loss_type, tau=0.5),
        num_generations=4,
        loss_type=loss_type if loss_type != "kimi" else "grpo",
        beta=0.0,
        epsilon_low=0.2,
        epsilon_high=0.28,
        max_completion_length=4,
        use_vllm=False,
        aux_loss_enabled=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        _entropy_bonus_enabled=False,
        _metrics={"train": defaultdict(list)},
    )
    return trainer


def _generation_batch(trainer, rewards, advantages):
    """The toy batch as `_generate_and_score_completions` hands it on, r1kit's additions included."""
    _, old = toy_logps()
    out = {
        "prompt_ids": torch.arange(8).unsqueeze(1),
        "prompt_mask": torch.ones(8, 1, dtype=torch.long),
        "completion_ids": torch.zeros(8, 2, dtype=torch.long),
        "completion_mask": MASK.clone(),
        "advantages": advantages,
        "old_per_token_logps": old,
        "num_items_in_batch": MASK.sum(),
    }
    if trainer.r1.dynamic_sampling != "off":
        trainer._drop_flat_groups(out, rewards)
    if trainer.r1.loss == "kimi":
        trainer._kimi_inputs(out, rewards)
    return out


def _r1_loss(loss_type, parts, *, rewards=REWARDS, advantages=ADV_NONE, dynamic="off"):
    """The summed loss of the micro-batches `parts` (row lists) of one generation batch, through
    R1GRPOTrainer.compute_loss (trl's `_compute_loss` for grpo / dapo / dr_grpo)."""
    trainer = _r1_trainer(loss_type, accum=len(parts))
    trainer.r1.dynamic_sampling = dynamic
    batch = _generation_batch(trainer, rewards, advantages)
    total = 0.0
    for rows in parts:
        idx = torch.tensor(rows)
        micro = {k: (v[idx] if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in batch.items()}
        total += trainer.compute_loss(None, micro).item()
    return total


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo", "kimi"])
def test_gradient_accumulation_sums_to_the_full_batch_loss(loss_type):
    # one generation batch of 8 in one pass == the sum of two accumulated micro-batches of 4
    full = _r1_loss(loss_type, [list(range(8))])
    halves = _r1_loss(loss_type, [[0, 3, 5, 6], [1, 2, 4, 7]])
    assert halves == pytest.approx(full, abs=1e-6)
    if loss_type != "kimi":
        ours, _ = policy_loss(
            *toy_logps(),
            None,
            ADV_NONE,
            MASK,
            loss_type=loss_type,
            epsilon_low=0.2,
            epsilon_high=0.28,
            max_completion_length=4,
        )
        assert full == pytest.approx(ours.item(), abs=1e-6)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo", "kimi"])
def test_dynamic_sampling_mask_is_the_loss_of_the_kept_groups(loss_type):
    # prompt B's rewards all equal: DAPO drops its group, and the loss is the one of prompt A's
    # group alone, normalised over A's sequences / tokens only (not over the whole batch)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    adv = torch.cat([ADV_NONE[:4], torch.zeros(4)])  # trl's advantages: 0 for a flat group
    masked = _r1_loss(
        loss_type, [[0, 3, 5, 6], [1, 2, 4, 7]], rewards=rewards, advantages=adv, dynamic="mask"
    )
    logp, old = toy_logps()
    if loss_type == "kimi":
        alone, _ = kimi_loss(logp[:4], old[:4], rewards[:4], MASK[:4], 4, 0.5)
    else:
        alone, _ = policy_loss(
            logp[:4],
            old[:4],
            None,
            ADV_NONE[:4],
            MASK[:4],
            loss_type=loss_type,
            epsilon_low=0.2,
            epsilon_high=0.28,
            max_completion_length=4,
        )
    assert masked == pytest.approx(alone.item(), abs=1e-6)
    # by hand from the toy table with ε_high 0.28 (seq 0's second token clipped at 1.28: −0.64):
    # A's sequence means −0.57, 0.45, 0.65, −0.425 (Σ 0.105); token losses Σ −0.44 over 7 tokens;
    # kimi: s_j = ln 1.3, ln 0.7, ln 1.3, ln 0.7, residuals (a_j − 0.5 s_j)² summed 1.098026
    by_hand = {"grpo": 0.105 / 4, "dapo": -0.44 / 7, "dr_grpo": -0.44 / (4 * 4), "kimi": 1.098026 / 4}
    assert masked == pytest.approx(by_hand[loss_type], abs=1e-6)
