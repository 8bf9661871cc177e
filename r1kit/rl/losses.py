"""GRPO-family losses as pure torch functions (no trainer state): the papers' formulas, readable.

Which code trains: `kimi_loss` is what `r1kit grpo --loss kimi` trains with (trl has no Kimi
loss). The grpo / dapo / dr_grpo losses, clip-higher, the k3 KL and the advantages are trained by
trl's own GRPOTrainer, switched by its GRPOConfig (`loss_type`, `epsilon_high`, `beta`,
`scale_rewards`; r1kit/rl/trainer.py); `policy_loss` and `group_advantages` here are the
reference they are held to: tests/test_losses.py checks these functions against hand-computed
values and trl's loss against them, and tests/test_grpo_loss_pins.py pins the logged loss of real
runs.

Shapes: per-token tensors are (B, T) with B = sequences in the micro-batch and T = completion
length after right padding; `mask` is 1 on real completion tokens and 0 on padding (and on
masked truncated completions). Sequence tensors are (B,).

References (formulas in ../shared/PAPERS.md):
- DeepSeekMath eq. 3 (GRPO objective) and eq. 4 (k3 KL estimator).
- DAPO: clip-higher (epsilon_low / epsilon_high), token-level loss 1/Σ|o_i|.
- Dr. GRPO: no 1/|o_i| and no std normalisation, loss / (B × MAX_TOKENS).
- Kimi k1.5: mirror-descent surrogate with τ log Z ≈ mean reward.
"""

from __future__ import annotations

import torch

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
SCALE_MODES = ("group", "batch", "none")


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π_θ || π_ref), DeepSeekMath eq. 4.

    KL = π_ref/π_θ − log(π_ref/π_θ) − 1, computed from log-probabilities. It is ≥ 0 and 0 exactly
    where the two policies agree on the sampled token.
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def _nanstd(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    # Sample (Bessel-corrected) std ignoring NaN, as trl uses; NaN where fewer than 2 values.
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    sq = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    n = (~torch.isnan(x)).sum(dim=dim, keepdim=True).to(x.dtype)
    var = torch.where(n > 1, sq * n / (n - 1).clamp(min=1.0), torch.full_like(sq, float("nan")))
    std = var.sqrt()
    if not keepdim:
        std = std.squeeze(dim) if dim is not None else std.reshape(())
    return std


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Group-relative advantages Â_i for the G completions of each prompt (DeepSeekMath eq. 3).

    `rewards` is (B,) with the G samples of a prompt consecutive (B = groups × G).
    - "group" (GRPO): (r_i − mean_group) / (std_group + eps)
    - "batch": (r_i − mean_group) / (std_batch + eps), the std over the whole batch
    - "none" (Dr. GRPO): r_i − mean_group
    std is the sample std (Bessel-corrected), as in trl. A NaN reward (every reward function
    returned None) is left out of its group's mean and std and gets advantage 0.
    """
    if scale not in SCALE_MODES:
        raise ValueError(f"scale must be one of {SCALE_MODES}, got {scale!r}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)
    centred = grouped - torch.nanmean(grouped, dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (_nanstd(grouped, dim=1, keepdim=True) + eps)
    elif scale == "batch":
        centred = centred / (_nanstd(rewards) + eps)
    return torch.nan_to_num(centred.reshape(-1), nan=0.0)


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token −min(ρ·Â, clip(ρ, 1−ε_low, 1+ε_high)·Â), ρ = π_θ/π_old (DeepSeekMath eq. 3).

    ε_high > ε_low is DAPO's clip-higher: it lets low-probability tokens with positive advantage
    grow further before the gradient is cut. Returns the per-token loss (B, T) and boolean
    (B, T) masks of where the clip is active: "low" (ρ < 1−ε_low with Â < 0), "high"
    (ρ > 1+ε_high with Â > 0) and "region" (either) — the only places the gradient is zero.
    """
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    low = (ratio < 1.0 - epsilon_low) & (adv < 0)
    high = (ratio > 1.0 + epsilon_high) & (adv > 0)
    return loss, {"low": low, "high": high, "region": low | high}


def aggregate(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    max_completion_length: int | None = None,
    *,
    num_sequences: float | torch.Tensor | None = None,
    num_tokens: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a (B, T) per-token loss to a scalar.

    - "grpo" (DeepSeekMath eq. 3): (1/G) Σ_i (1/|o_i|) Σ_t ℓ_it — per-sequence mean, then mean over
      sequences.
    - "dapo": Σ_i Σ_t ℓ_it / Σ_i |o_i| — every token weighs the same (token-level loss).
    - "dr_grpo": Σ_i Σ_t ℓ_it / (B × MAX_TOKENS) — a constant normaliser, no length bias.

    `num_sequences` / `num_tokens` replace B / Σ|o_i| when the normaliser must span more than
    this micro-batch (gradient accumulation, dynamically dropped groups); by default they are
    counted from this batch.
    """
    mask = mask.to(per_token_loss.dtype)
    summed = per_token_loss * mask
    if num_sequences is None:
        num_sequences = per_token_loss.size(0)
    if loss_type == "grpo":
        seq_mean = summed.sum(-1) / mask.sum(-1).clamp(min=1.0)
        return seq_mean.sum() / _at_least_one(num_sequences)
    if loss_type == "dapo":
        if num_tokens is None:
            num_tokens = mask.sum()
        return summed.sum() / _at_least_one(num_tokens)
    if loss_type == "dr_grpo":
        if not max_completion_length:
            raise ValueError("dr_grpo needs max_completion_length (the constant MAX_TOKENS)")
        return summed.sum() / (_at_least_one(num_sequences) * max_completion_length)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


def _at_least_one(n: float | torch.Tensor) -> float | torch.Tensor:
    return n.clamp(min=1.0) if isinstance(n, torch.Tensor) else max(float(n), 1.0)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the tokens where mask is 1 (0 when the mask is empty)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_type: str = "grpo",
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    max_completion_length: int | None = None,
    num_sequences: float | torch.Tensor | None = None,
    num_tokens: float | torch.Tensor | None = None,
    token_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GRPO loss (negated DeepSeekMath eq. 3), with DAPO / Dr. GRPO aggregation.

    Per token: −min(ρÂ, clip(ρ)Â) + β·KL_k3(π_θ || π_ref); then `aggregate` by `loss_type`.
    The KL term is added to the loss, not folded into the reward, as in the paper.
    Returns (loss, stats) with stats `kl` (masked token mean; 0 when β = 0),
    `clip_low`, `clip_high`, `clip_region` (fractions of masked tokens).
    `token_weight` multiplies the surrogate term per token (trl's vLLM importance-sampling
    correction π_old/π_sampler when rollouts come from vLLM).
    """
    per_token, clips = clipped_surrogate(logp, old_logp, advantages, epsilon_low, epsilon_high)
    if token_weight is not None:
        per_token = per_token * token_weight
    stats: dict[str, torch.Tensor] = {}
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs ref_logp")
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * kl
        stats["kl"] = masked_mean(kl.detach(), mask)
    else:
        stats["kl"] = torch.zeros((), device=logp.device)
    loss = aggregate(
        per_token, mask, loss_type, max_completion_length, num_sequences=num_sequences, num_tokens=num_tokens
    )
    for name, hit in clips.items():
        stats[f"clip_{name}"] = masked_mean(hit.to(logp.dtype), mask)
    return loss, stats


def group_mean_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """r̄ of each sample's group, repeated per sample: Kimi's estimate of τ log Z."""
    grouped = rewards.view(-1, group_size)
    return torch.nanmean(grouped, dim=1, keepdim=True).expand_as(grouped).reshape(-1)


def kimi_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    tau: float,
    *,
    baseline: torch.Tensor | None = None,
    num_sequences: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Kimi k1.5 online-mirror-descent surrogate (Kimi k1.5, sec. 2.3.2), scaled by 1/(2τ).

    The paper's surrogate for max E[r] − τ KL(π_θ || π_θi) is
        L_paper = (1/k) Σ_j (r_j − τ log Z − τ log(π_θ(y_j)/π_θi(y_j)))²,
    with τ log Z ≈ r̄, the mean reward of the k samples of the prompt, and
    log(π_θ(y_j)/π_θi(y_j)) = s_j = Σ_t (log π_θ − log π_θi) over y_j's tokens.

    Scale: write a_j = r_j − r̄. Since ∇s_j = ∇log π_θ(y_j),
        ∇ (a_j − τ s_j)² = −2τ (a_j − τ s_j) ∇log π_θ(y_j)
                         = −2τ [a_j ∇log π_θ(y_j) − (τ/2) ∇ s_j²].
    So L = L_paper / (2τ) has exactly the gradient the paper states,
        ∇L = −(1/k) Σ_j [∇log π_θ(y_j)(r_j − r̄) − (τ/2) ∇(log π_θ(y_j)/π_θi(y_j))²],
    at every θ (at θ = θ_i, s_j = 0 and it is the policy gradient with a mean-reward baseline).
    The 1/(2τ) makes the gradient's scale independent of τ; it does not make it GRPO's. Per token
    of y_j, at θ = θ_i, the Kimi gradient is −(1/k)(r_j − r̄) ∇log π, GRPO's (loss_type grpo) is
    −(1/k)(r_j − r̄) / ((std_group + 1e-4) |y_j|) ∇log π: the Kimi one is |y_j| · (std_group + 1e-4)
    times larger (e.g. ~250× for 500-token completions with 0/1 rewards at std 0.5; checked in
    tests/test_losses.py). Take a learning rate that much smaller than GRPO's, or rely on the
    gradient-norm clip (--max-grad-norm) to bound the step.

    `rewards` is (B,) with groups of `group_size` consecutive samples, unless `baseline` gives
    each sample's r̄ directly (the trainer does that: its micro-batches are shuffled slices of
    the groups). The mean over j runs over the B sequences (or `num_sequences`).
    Returns (loss, stats) with stats `log_ratio` (mean |s_j|).
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if baseline is None:
        baseline = group_mean_baseline(rewards, group_size)
    mask = mask.to(logp.dtype)
    seq_log_ratio = ((logp - old_logp) * mask).sum(-1)
    # A fully masked sequence (truncated and masked, or a dropped group) must add nothing.
    live = (mask.sum(-1) > 0).to(logp.dtype)
    residual = (rewards - baseline - tau * seq_log_ratio) * live
    if num_sequences is None:
        num_sequences = logp.size(0)
    loss = (residual**2).sum() / (2.0 * tau) / _at_least_one(num_sequences)
    return loss, {"log_ratio": seq_log_ratio.detach().abs().mean()}
