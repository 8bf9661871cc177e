"""`R1GRPOTrainer`: trl's GRPOTrainer with r1kit's losses, advantages and samplers.

What it changes, and nothing else:

- advantages are recomputed with `r1kit.rl.losses.group_advantages` from the rewards trl
  computed (same weighted sum of reward functions), so `--scale-rewards` is r1kit's code;
- `_compute_loss` gets per-token log-probabilities and entropies from trl's own
  `_get_per_token_logps_and_entropies` and then calls `r1kit.rl.losses.policy_loss`
  (grpo / dapo / dr_grpo) or `kimi_loss` (Kimi k1.5 mirror descent);
- DAPO dynamic sampling ("mask" or "refill", r1kit.rl.dynamic);
- curriculum / prioritized prompt samplers (r1kit.rl.samplers) in place of RepeatSampler,
  prioritized success rates updated from every batch of rollouts;
- rollouts through r1kit's CUDA-graph decode loop on a GPU (FastRolloutMixin,
  r1kit/rl/fast_rollout.py), falling back to trl's generation where it does not apply.

Gradient accumulation: trl splits one generation batch into `steps_per_generation`
micro-batches and accumulates them. r1kit normalises each micro-batch by the counts of the
whole generation batch (sequences for grpo / dr_grpo / kimi, tokens for dapo) scaled by
gradient_accumulation_steps / steps_per_generation, which is what trl does for its "dapo" loss
and reduces to trl's `mean / gradient_accumulation_steps` for "grpo" when no group is dropped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from r1kit.rl.dynamic import choose_groups, keep_mask, zero_variance_groups
from r1kit.rl.fast_rollout import FastRolloutMixin
from r1kit.rl.losses import group_advantages, group_mean_baseline, kimi_loss, masked_mean, policy_loss
from r1kit.rl.samplers import CurriculumSampler, PrioritizedSampler

INDEX_COLUMN = "r1kit_index"
SAMPLER_STATE = "r1kit_sampler.json"
_LEFT_PADDED = ("prompt_ids", "prompt_mask")
_RIGHT_PADDED = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                 "sampling_per_token_logps", "importance_sampling_ratio")


@dataclass
class R1Options:
    """r1kit's additions; the rest of the run is configured through trl's GRPOConfig."""

    loss: str = "grpo"                 # grpo | dapo | dr_grpo | kimi
    tau: float = 0.1                   # Kimi τ
    scale_rewards: str = "group"       # group | batch | none
    dynamic_sampling: str = "off"      # off | mask | refill
    refill_tries: int = 4
    sampler: str = "random"            # random | curriculum | prioritized
    difficulties: list[float] | None = None
    curriculum_schedule: str = "sorted"
    curriculum_start: float = 0.25
    priority_floor: float = 0.05
    initial_success: list[float] | None = None
    success_reward: str = "accuracy"   # reward whose value is a prompt's success (prioritized)
    reward_names: list[str] = field(default_factory=list)


class R1GRPOTrainer(FastRolloutMixin, GRPOTrainer):
    def __init__(self, *args: Any, r1: R1Options | None = None, **kwargs: Any):
        self.r1 = r1 or R1Options()
        self._r1_sampler: PrioritizedSampler | CurriculumSampler | None = None
        self._r1_last: tuple[torch.Tensor, list[int]] | None = None
        self._r1_refill_gen = torch.Generator().manual_seed(12345)
        self._r1_pending_sampler_state: dict | None = None
        super().__init__(*args, **kwargs)
        if self.r1.dynamic_sampling == "refill" and self.accelerator.num_processes > 1:
            raise ValueError("dynamic sampling 'refill' runs on one process only; use 'mask' with several")
        names = self.r1.reward_names or list(self.reward_func_names)
        self._r1_success_col = names.index(self.r1.success_reward) if self.r1.success_reward in names else None

    # ---- prompt sampling -------------------------------------------------------------------
    def _get_train_sampler(self, dataset=None):
        if self.r1.sampler == "random":
            return super()._get_train_sampler(dataset)
        dataset = self.train_dataset if dataset is None else dataset
        layout = {
            "mini_repeat_count": self.num_generations,
            "batch_size": self.args.generation_batch_size // self.num_generations,
            "repeat_count": self.num_iterations * self.args.steps_per_generation,
            "seed": self.args.seed,
        }
        if self.r1.sampler == "curriculum":
            self._r1_sampler = CurriculumSampler(self.r1.difficulties, schedule=self.r1.curriculum_schedule,
                                                 start=self.r1.curriculum_start, **layout)
        else:
            self._r1_sampler = PrioritizedSampler(len(dataset), floor=self.r1.priority_floor,
                                                  initial=self.r1.initial_success, **layout)
            if self._r1_pending_sampler_state:
                self._r1_sampler.load_state_dict(self._r1_pending_sampler_state)
        return self._r1_sampler

    # ---- rollouts and advantages -----------------------------------------------------------
    def _generate(self, prompts: list):
        t0 = time.perf_counter()
        result = super()._generate(prompts)
        seconds = time.perf_counter() - t0
        mode = "train" if self.model.training else "eval"
        tokens = sum(len(ids) for ids in result[1])
        self._metrics[mode]["rollout/tokens_per_s"].append(tokens / max(seconds, 1e-9))
        return result

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        indices = gather_object([int(x.get(INDEX_COLUMN, -1)) for x in inputs])
        self._r1_last = (rewards_per_func, indices)
        return rewards_per_func

    def _total_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        # trl's weighted sum ("sum_then_normalize"); a row every function left unscored stays NaN
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        total = (rewards_per_func * weights).nansum(dim=1)
        total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        return total

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return out
        G = self.num_generations
        rewards_per_func, indices = self._r1_last
        rewards = self._total_rewards(rewards_per_func)
        mode = "train"
        self._update_success(rewards_per_func, indices)
        if self._r1_success_col is not None:
            self._metrics[mode]["accuracy"].append(torch.nanmean(rewards_per_func[:, self._r1_success_col]).item())
        zero = zero_variance_groups(rewards, G)
        self._metrics[mode]["zero_std_fraction"].append(zero.float().mean().item())

        if self.r1.dynamic_sampling == "refill" and zero.any():
            out, rewards = self._refill(out, rewards, inputs)

        advantages = group_advantages(rewards, G, self.r1.scale_rewards)
        keep = (keep_mask(rewards, G) if self.r1.dynamic_sampling != "off"
                else torch.ones_like(rewards, dtype=torch.bool))
        if self.r1.dynamic_sampling != "off":
            self._metrics[mode]["dynamic/kept_fraction"].append(keep.float().mean().item())

        n_local = out["completion_ids"].size(0)
        local = slice(self.accelerator.process_index * n_local, (self.accelerator.process_index + 1) * n_local)
        keep_local = keep[local].to(out["completion_mask"].device)
        out["advantages"] = (advantages[local] * keep_local).to(out["completion_mask"].device)
        out["r1_keep"] = keep_local.float()
        # normalisers over the whole generation batch (all processes), see the module docstring
        loss_mask = out["completion_mask"] * keep_local.unsqueeze(1)
        out["r1_num_tokens"] = self.accelerator.gather(loss_mask.sum().float()).sum()
        out["r1_num_sequences"] = keep.float().sum().to(loss_mask.device)
        if self.r1.loss == "kimi":
            baseline = group_mean_baseline(rewards, G)
            scored = torch.where(torch.isnan(rewards), baseline, rewards)  # unscorable: zero advantage
            out["r1_rewards"] = torch.nan_to_num(scored[local]).to(loss_mask.device)
            out["r1_baseline"] = torch.nan_to_num(baseline[local]).to(loss_mask.device)
        return out

    def _update_success(self, rewards_per_func: torch.Tensor, indices: list[int]) -> None:
        if not isinstance(self._r1_sampler, PrioritizedSampler) or self._r1_success_col is None:
            return
        pairs = [(i, s) for i, s in zip(indices, rewards_per_func[:, self._r1_success_col].tolist()) if i >= 0]
        if pairs:
            self._r1_sampler.update([i for i, _ in pairs], [s for _, s in pairs])

    def _refill(self, out: dict, rewards: torch.Tensor, inputs: list) -> tuple[dict, torch.Tensor]:
        """DAPO dynamic sampling: generate extra groups and swap them in for zero-variance ones."""
        G = self.num_generations
        n_groups = rewards.numel() // G
        outs, all_rewards = [out], [rewards]
        extra = 0
        for _ in range(self.r1.refill_tries):
            signal = ~zero_variance_groups(torch.cat(all_rewards), G)
            missing = n_groups - int(signal.sum())
            if missing <= 0:
                break
            rows = self._refill_rows(missing)
            extra += missing
            outs.append(super()._generate_and_score_completions(rows))
            rewards_per_func, indices = self._r1_last
            self._update_success(rewards_per_func, indices)
            all_rewards.append(self._total_rewards(rewards_per_func))
        self._metrics["train"]["dynamic/refill_groups"].append(float(extra))
        if len(outs) == 1:
            return out, rewards
        all_r = torch.cat(all_rewards)
        groups = choose_groups((~zero_variance_groups(all_r, G)).tolist(), n_groups)
        rows = torch.tensor([g * G + j for g in groups for j in range(G)])
        merged = _concat_outputs(outs)
        picked = {k: (v[rows] if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in merged.items()}
        picked["num_items_in_batch"] = picked["completion_mask"].sum()
        return picked, all_r[rows]

    def _refill_rows(self, n_groups: int) -> list[dict]:
        ds = self.train_dataset
        if isinstance(self._r1_sampler, PrioritizedSampler):
            idx = torch.multinomial(self._r1_sampler.probabilities(), n_groups, replacement=n_groups > len(ds),
                                    generator=self._r1_refill_gen).tolist()
        else:
            idx = torch.randint(len(ds), (n_groups,), generator=self._r1_refill_gen).tolist()
        return [dict(ds[i]) for i in idx for _ in range(self.num_generations)]

    # ---- loss ------------------------------------------------------------------------------
    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        logp, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True
        )
        keep = inputs.get("r1_keep")
        mask = completion_mask if keep is None else completion_mask * keep.unsqueeze(1)
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        old = inputs.get("old_per_token_logps")
        old = logp.detach() if old is None else old

        training = self.model.training
        # share of the generation batch this micro-batch stands for (trl's dapo normaliser)
        share = (self.current_gradient_accumulation_steps / self.args.steps_per_generation) if training else 1.0
        share = share / self.accelerator.num_processes
        n_seq = inputs.get("r1_num_sequences")
        n_seq = float(completion_ids.size(0)) if n_seq is None else n_seq * share
        n_tok = inputs.get("r1_num_tokens")
        n_tok = mask.sum() if n_tok is None else n_tok * share
        mode = "train" if training else "eval"

        if self.r1.loss == "kimi":
            loss, stats = kimi_loss(logp, old, inputs["r1_rewards"], mask, self.num_generations, self.r1.tau,
                                    baseline=inputs["r1_baseline"], num_sequences=n_seq)
            self._metrics[mode]["kimi/log_ratio"].append(self._mean_across(stats["log_ratio"]))
        else:
            is_weight = inputs.get("importance_sampling_ratio") if self.use_vllm else None
            loss, stats = policy_loss(
                logp, old, inputs.get("ref_per_token_logps"), inputs["advantages"], mask,
                loss_type=self.r1.loss, beta=self.beta, epsilon_low=self.epsilon_low,
                epsilon_high=self.epsilon_high, max_completion_length=self.max_completion_length,
                num_sequences=n_seq, num_tokens=n_tok, token_weight=is_weight,
            )
            if self.beta != 0.0:
                self._metrics[mode]["kl"].append(self._mean_across(stats["kl"]))
            for side in ("low", "high", "region"):
                self._metrics[mode][f"clip_ratio/{side}_mean"].append(self._mean_across(stats[f"clip_{side}"]))
        self._metrics[mode]["entropy"].append(self._mean_across(masked_mean(entropies.detach(), mask)))
        return loss

    def _mean_across(self, value: torch.Tensor) -> float:
        return self.accelerator.gather(value.detach().reshape(1)).float().mean().item()

    # ---- checkpoints: the prioritized sampler's success rates travel with them ---------------
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if isinstance(self._r1_sampler, PrioritizedSampler) and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            with open(os.path.join(folder, SAMPLER_STATE), "w") as fh:
                json.dump(self._r1_sampler.state_dict(), fh)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        path = os.path.join(checkpoint, SAMPLER_STATE) if checkpoint else None
        if path and os.path.exists(path):
            with open(path) as fh:
                self._r1_pending_sampler_state = json.load(fh)
            if isinstance(self._r1_sampler, PrioritizedSampler):
                self._r1_sampler.load_state_dict(self._r1_pending_sampler_state)


def _concat_outputs(outs: list[dict]) -> dict:
    """Concatenate generation outputs along the batch, padding prompts left and completions right."""
    merged: dict[str, Any] = {}
    for key in outs[0]:
        values = [o.get(key) for o in outs]
        if key in ("advantages",):
            merged[key] = torch.cat(values)
        elif key in _LEFT_PADDED or key in _RIGHT_PADDED:
            if any(v is None for v in values):
                merged[key] = None
                continue
            width = max(v.size(1) for v in values)
            pad_value = 0 if key != "importance_sampling_ratio" else 1.0
            padded = []
            for v in values:
                gap = width - v.size(1)
                pad = (gap, 0) if key in _LEFT_PADDED else (0, gap)
                padded.append(torch.nn.functional.pad(v, pad, value=pad_value))
            merged[key] = torch.cat(padded)
        elif key == "num_items_in_batch":
            merged[key] = None
        else:
            raise ValueError(f"dynamic sampling 'refill' cannot merge rollout field {key!r}; use 'mask'")
    return merged
