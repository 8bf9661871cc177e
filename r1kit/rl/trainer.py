"""`R1GRPOTrainer`: trl's GRPOTrainer plus what trl lacks for the R1 / Kimi k1.5 recipes.

trl 1.16 computes, from the GRPOConfig switches `r1kit.rl.trl_args.grpo_args` sets, exactly what
the papers state (r1kit/rl/losses.py has the same formulas as readable reference code, and
tests/test_losses.py checks them against hand values and against trl's `_compute_loss`):
- advantages Â_i = (r_i − mean of the group) / (std + 1e-4), `scale_rewards` group | batch | none
  (DeepSeekMath eq. 3; "none" is Dr. GRPO), from the weighted sum of the rewards;
- the clipped surrogate with clip-higher (`epsilon`, `epsilon_high`: DAPO) plus β × the k3 KL
  (`beta`: DeepSeekMath eq. 4), aggregated by `loss_type`: grpo (per-sequence mean, eq. 3), dapo
  (token-level, over the tokens of the whole generation batch), dr_grpo (Σ / (B × MAX_TOKENS));
- DAPO's overlong filtering (`mask_truncated_completions`) and R1's reference reset every N
  steps (`sync_ref_model` with `ref_model_mixup_alpha` 1: the reference becomes a copy).

r1kit adds:
- the Kimi k1.5 mirror-descent loss (`loss="kimi"`, `r1kit.rl.losses.kimi_loss`): trl has none;
- DAPO dynamic sampling (r1kit.rl.dynamic): groups whose rewards are all equal are dropped from the
  loss ("mask") or replaced by newly generated groups ("refill"). A dropped group is masked the
  way trl masks a truncated completion (its completion mask is zeroed), and the normalisers
  count only the kept completions: trl's dapo normaliser (`num_items_in_batch`) is recounted; for
  grpo / dr_grpo, whose trl normaliser is the micro-batch size, the loss is scaled by
  (completions in the generation batch) / (kept ones), so that it is the mean over the kept
  sequences, as DAPO's batch of groups with signal would give;
- curriculum / prioritized prompt samplers (r1kit.rl.samplers) in place of RepeatSampler, the
  prioritized success rates updated from every batch of rollouts and saved with checkpoints;
- rollouts through r1kit's CUDA-graph decode loop on a GPU (FastRolloutMixin,
  r1kit/rl/fast_rollout.py), and `rollout/tokens_per_s` in the metrics;
- stop strings for rollouts (`stop`, grpo's --stop; trl has none for its own generate): on every
  rollout path the completion ends after the token that completed the stop string, and the
  rewards read its text before the stop string.
- several optimizer steps per rollout batch (R1 / DeepSeekMath minibatches): trl's own
  `steps_per_generation` (r1kit/rl/trl_args.py), π_old being the policy that sampled the batch;
- Kimi k1.5's optimizer reset (`reset_optimizer`): the optimizer state is emptied whenever a new
  rollout batch is generated, the start of a mirror-descent iteration;
- Kimi k1.5's partial rollouts and repeat detection (`PartialRollouts`, r1kit/rl/partial.py): the
  batch's rows are planned (buffered groups first), each trajectory gets at most a token budget per
  iteration, rows of incomplete groups get no reward and leave the loss, and for the others the loss
  mask (trl's `tool_mask`) covers only the segment generated in this iteration; the replay buffer
  is saved into every checkpoint (one file per process) and restored by `--resume`.

The private trl methods and attributes this relies on are listed in `TRL_CONTRACT`, which
tests/test_trl_contract.py checks against the installed trl.
"""

from __future__ import annotations

import glob
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import gather_object
from transformers import TrainerCallback
from trl import GRPOTrainer

from r1kit.errors import R1kitError
from r1kit.rl.dynamic import choose_groups, keep_mask, zero_variance_groups
from r1kit.rl.fast_rollout import FastRolloutMixin, cut_at_stop_strings, stop_text
from r1kit.rl.losses import group_advantages, group_mean_baseline, kimi_loss, masked_mean
from r1kit.rl.partial import PartialRollouts, check_row, merge_states
from r1kit.rl.samplers import CurriculumSampler, PrioritizedSampler

INDEX_COLUMN = "r1kit_index"
SAMPLER_STATE = "r1kit_sampler.json"
PARTIAL_STATE = "r1kit_partial_rank{rank}.json"  # one per process: each holds its own replay buffer
_LEFT_PADDED = ("prompt_ids", "prompt_mask")
_RIGHT_PADDED = (
    "completion_ids",
    "completion_mask",
    "old_per_token_logps",
    "ref_per_token_logps",
    "sampling_per_token_logps",
    "importance_sampling_ratio",
)

# What r1kit needs from trl's GRPOTrainer (and transformers' Trainer under it) beyond building and
# training it: the methods R1GRPOTrainer / FastRolloutMixin override (they call super()) or call,
# with the leading parameters r1kit passes or receives, and the attributes trl's __init__ sets that
# they read. tests/test_trl_contract.py checks every entry against the installed trl, and that no
# override or private name used in r1kit/rl/ is missing here, so a trl upgrade that changes one of
# them fails with its name instead of in the middle of a run.
TRL_CONTRACT: dict[str, Any] = {
    "overridden": {
        "_get_train_sampler": ("self", "dataset"),
        "_generate_single_turn": (
            "self",
            "prompt_ids",
            "images",
            "multimodal_fields",
            "num_generations",
            "has_tool_images",
        ),
        "_calculate_rewards": ("self", "inputs", "prompts", "completions", "completion_ids_list"),
        "_generate_and_score_completions": ("self", "inputs"),
        "compute_loss": ("self", "model", "inputs", "return_outputs", "num_items_in_batch"),
        "train": ("self", "resume_from_checkpoint"),
    },
    "called": {
        "_get_per_token_logps_and_entropies": (
            "self",
            "model",
            "input_ids",
            "attention_mask",
            "logits_to_keep",
            "batch_size",
            "compute_entropy",
        ),
    },
    "private_attributes": ("_metrics", "_tokenizer", "_is_vlm"),
    "attributes": (
        "eos_token_ids",
        "generation_config",
        "generation_kwargs",
        "max_completion_length",
        "num_generations",
        "num_iterations",
        "reward_func_names",
        "reward_weights",
        "scale_rewards",
        "use_vllm",
        "use_transformers_continuous_batching",
        "optimizer",
    ),
}


@dataclass
class R1Options:
    """r1kit's additions; the rest of the run is configured through trl's GRPOConfig."""

    loss: str = "grpo"  # grpo | dapo | dr_grpo (trl computes them) | kimi (r1kit)
    tau: float = 0.1  # Kimi τ
    dynamic_sampling: str = "off"  # off | mask | refill
    refill_tries: int = 4
    sampler: str = "random"  # random | curriculum | prioritized
    difficulties: list[float] | None = None
    curriculum_schedule: str = "sorted"
    priority_floor: float = 0.05
    initial_success: list[float] | None = None
    success_reward: str = "accuracy"  # reward whose value is a prompt's success (prioritized)
    fast_rollout: str | None = None  # auto | on | off (FastRolloutMixin); None: the class's setting
    fast_rollout_keep_cache: bool | None = None
    stop: tuple[str, ...] = ()  # rollouts end at these strings (FastRolloutMixin docstring)
    reset_optimizer: bool = False  # Kimi: empty the optimizer state at each new rollout batch
    rollout_token_budget: int = 0  # Kimi partial rollouts: new tokens per trajectory per iteration
    rollout_max_age: int = 0  # continuations before a trajectory ends as truncated (0 = no limit)
    repeat_stop: int = 0  # Kimi repeat detection window N (0 = off)
    partial_loss: str = "segment"  # segment (newest segment only) | trajectory (every token)


class R1GRPOTrainer(FastRolloutMixin, GRPOTrainer):
    def __init__(self, *args: Any, r1: R1Options | None = None, **kwargs: Any):
        self.r1 = r1 or R1Options()
        if self.r1.fast_rollout is not None:
            self.fast_rollout = self.r1.fast_rollout
        if self.r1.fast_rollout_keep_cache is not None:
            self.fast_rollout_keep_cache = self.r1.fast_rollout_keep_cache
        self.fast_rollout_stop = tuple(self.r1.stop)
        self._r1_sampler: PrioritizedSampler | CurriculumSampler | None = None
        self._r1_last: tuple[torch.Tensor, list[int]] | None = None
        self._r1_refill_gen = torch.Generator().manual_seed(12345)
        self._r1_pending_sampler_state: dict | None = None
        self._r1_rollouts: PartialRollouts | None = None
        self._r1_step_tokens: torch.Tensor | float = 0.0
        super().__init__(*args, **kwargs)
        if self.r1.dynamic_sampling == "refill" and self.accelerator.num_processes > 1:
            raise ValueError("dynamic sampling 'refill' runs on one process only; use 'mask' with several")
        if self.r1.rollout_token_budget or self.r1.repeat_stop:
            self._r1_rollouts = self._partial_rollouts()
        if self.r1.reset_optimizer and self.is_deepspeed_enabled:
            raise R1kitError(
                "--reset-optimizer cannot empty DeepSpeed's sharded optimizer state; use DDP or FSDP"
            )
        names = list(self.reward_func_names)
        self._r1_success_col = (
            names.index(self.r1.success_reward) if self.r1.success_reward in names else None
        )
        self.add_callback(_SamplerStateSaver(self))
        self.add_callback(_PartialStateSaver(self))
        self.add_callback(_SkipEmptySteps(self))

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
            self._r1_sampler = CurriculumSampler(
                self.r1.difficulties, schedule=self.r1.curriculum_schedule, **layout
            )
        else:
            self._r1_sampler = PrioritizedSampler(
                len(dataset), floor=self.r1.priority_floor, initial=self.r1.initial_success, **layout
            )
            if self._r1_pending_sampler_state:
                self._r1_sampler.load_state_dict(self._r1_pending_sampler_state)
        return self._r1_sampler

    # ---- rollouts and rewards --------------------------------------------------------------
    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        rollouts = self._r1_rollouts if self.model.training else None
        if rollouts is None:
            return self._r1_timed_generate(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )

        def sample(prefixes, max_new_tokens):
            with self._r1_max_new_tokens(max_new_tokens):
                ids, _ = self._r1_timed_generate(
                    prefixes, images, multimodal_fields, num_generations, has_tool_images
                )
            return ids

        # no sampling log-probs: a continued trajectory's earlier segments came from older policies
        return rollouts.generate(prompt_ids, sample), None

    def _r1_timed_generate(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images):
        t0 = time.perf_counter()
        completion_ids, logprobs = super()._generate_single_turn(
            prompt_ids, images, multimodal_fields, num_generations, has_tool_images
        )
        mode = "train" if self.model.training else "eval"
        if self.r1.stop:  # every path (r1kit's loop, trl's generate, vLLM) ends at the stop strings
            completion_ids, logprobs, stopped = cut_at_stop_strings(
                self._tokenizer, completion_ids, logprobs, self.r1.stop
            )
            # trl's completions/clipped_ratio counts these too (no EOS at their end)
            self._metrics[mode]["completions/stopped_ratio"].append(sum(stopped) / max(len(stopped), 1))
        seconds = time.perf_counter() - t0
        tokens = sum(len(ids) for ids in completion_ids)
        self._metrics[mode]["rollout/tokens_per_s"].append(tokens / max(seconds, 1e-9))
        return completion_ids, logprobs

    @contextmanager
    def _r1_max_new_tokens(self, n: int):
        """Both rollout paths read the length limit here: FastRolloutMixin from generation_kwargs,
        trl's transformers path from generation_config."""
        config = getattr(self, "generation_config", None)
        saved = (self.generation_kwargs.get("max_new_tokens"), getattr(config, "max_new_tokens", None))
        self.generation_kwargs["max_new_tokens"] = n
        if config is not None:
            config.max_new_tokens = n
        try:
            yield
        finally:
            self.generation_kwargs["max_new_tokens"] = saved[0]
            if config is not None:
                config.max_new_tokens = saved[1]

    def _partial_rollouts(self) -> PartialRollouts:
        if self.use_vllm or getattr(self, "use_transformers_continuous_batching", False):
            raise R1kitError(
                "partial rollouts and --repeat-stop run on r1kit's decode loop or transformers' "
                "generate, not on vLLM / continuous batching; set --use-vllm off"
            )
        if self.r1.dynamic_sampling == "refill":
            raise R1kitError(
                "partial rollouts keep the rollout batch's shape: use --dynamic-sampling mask, not refill"
            )
        local = self.args.generation_batch_size // self.accelerator.num_processes
        if local % self.num_generations:
            raise R1kitError(
                f"partial rollouts need whole groups on each process: {local} completions per process "
                f"is not a multiple of G={self.num_generations}"
            )
        if self.args.save_strategy != "no" and self.train_dataset is not None and len(self.train_dataset):
            try:  # the buffer's rows go into every checkpoint: refuse before training, not at the first save
                check_row(dict(self.train_dataset[0]))
            except ValueError as err:
                raise R1kitError(
                    f"partial rollouts save the buffered prompts' rows with each checkpoint, and {err}; "
                    "drop that column from --data or turn checkpoints off"
                ) from None
        budget = self.r1.rollout_token_budget or self.max_completion_length
        self.fast_rollout_repeat_window = self.r1.repeat_stop
        return PartialRollouts(
            self.num_generations,
            min(budget, self.max_completion_length),
            self.max_completion_length,
            eos_ids=list(self.eos_token_ids),
            max_age=self.r1.rollout_max_age,
            repeat_window=self.r1.repeat_stop,
            loss=self.r1.partial_loss,
        )

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self.r1.stop:  # the rewards read the text before the stop string, as `evaluate --stop` does
            completions = [stop_text(c, self.r1.stop) for c in completions]
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self._r1_rollouts is not None and self.model.training:
            # rows of groups still running hold a placeholder: no reward, so no advantage, no metrics
            scored = torch.tensor(gather_object(self._r1_rollouts.scored()), device=rewards_per_func.device)
            rewards_per_func[~scored] = torch.nan
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
        training = self.model.training
        rollouts = self._r1_rollouts if training else None
        if rollouts is not None:
            inputs = rollouts.plan(inputs)  # buffered groups first, then fresh prompts
        if training and self.r1.reset_optimizer:
            self._r1_reset_optimizer()
        out = super()._generate_and_score_completions(inputs)  # trl's rollouts, rewards and advantages
        if not training:
            return out
        G = self.num_generations
        rewards_per_func, indices = self._r1_last
        rewards = self._total_rewards(rewards_per_func)
        self._update_success(rewards_per_func, indices)
        if self._r1_success_col is not None:
            self._metrics["train"]["accuracy"].append(
                torch.nanmean(rewards_per_func[:, self._r1_success_col]).item()
            )
        scored = ~torch.isnan(rewards).view(-1, G).all(dim=1)  # groups scored in this batch
        zero = zero_variance_groups(rewards, G)
        self._metrics["train"]["zero_std_fraction"].append(
            zero[scored].float().mean().item() if scored.any() else float("nan")
        )

        keep = self._partial_masks(out, rollouts) if rollouts is not None else None
        if self.r1.dynamic_sampling == "refill" and zero.any():
            out, rewards = self._refill(out, rewards, inputs)
        if self.r1.dynamic_sampling != "off":
            self._drop_flat_groups(out, rewards, keep)
        elif keep is not None:
            self._mask_rows(out, keep)
        if self.r1.loss == "kimi":
            self._kimi_inputs(out, rewards)
        return out

    def _r1_reset_optimizer(self) -> None:
        """Kimi k1.5: a new rollout batch starts policy iteration i of the mirror descent, whose
        surrogate is optimised from scratch, so Adam's moments and step count start over (the
        learning-rate schedule does not). Called before the batch's first micro-step."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            return
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
        inner.state.clear()  # a defaultdict: torch re-initialises each parameter's state at its next step
        self._metrics["train"]["optimizer/resets"].append(1.0)

    def _partial_masks(self, out: dict, rollouts: PartialRollouts) -> torch.Tensor:
        """Loss mask of the current segments (trl's tool_mask, which its loss, normalisers and clip
        metrics honour) and the rows that stay in the loss, over all processes."""
        mask = out["completion_mask"]
        spans = rollouts.spans()
        segment = torch.zeros_like(mask)
        for row, span in enumerate(spans):
            if span is not None:
                segment[row, span[0] : span[1]] = 1
        out["tool_mask"] = segment * out["tool_mask"] if "tool_mask" in out else segment
        keep = torch.tensor(gather_object([span is not None for span in spans]), dtype=torch.bool)
        metrics = self._metrics["train"]
        totals = torch.tensor(
            [[rollouts.stats[k] for k in _PARTIAL_SUMS]], dtype=torch.float64, device=mask.device
        )
        for key, value in zip(_PARTIAL_SUMS, self.accelerator.gather(totals).sum(dim=0).tolist()):
            metrics[f"partial/{key}"].append(value)
        self._partial_length_metrics(rollouts)
        return keep

    def _partial_length_metrics(self, rollouts: PartialRollouts) -> None:
        """trl logged the lengths of what it was handed, placeholders included; replace them by the
        lengths of the trajectories trained in this iteration (whole trajectories, all segments)."""
        pairs = gather_object(rollouts.lengths())
        lengths = [float(n) for n, _ in pairs]
        ended = [float(n) for n, eos in pairs if eos]
        nan = float("nan")
        values = {
            "mean_length": sum(lengths) / len(lengths) if lengths else nan,
            "min_length": min(lengths, default=nan),
            "max_length": max(lengths, default=nan),
            "clipped_ratio": 1 - len(ended) / len(lengths) if lengths else nan,
            "mean_terminated_length": sum(ended) / len(ended) if ended else nan,
            "min_terminated_length": min(ended, default=nan),
            "max_terminated_length": max(ended, default=nan),
        }
        metrics = self._metrics["train"]
        for key, value in values.items():
            if metrics.get(f"completions/{key}"):
                metrics[f"completions/{key}"][-1] = value

    def _local(self, n_local: int) -> slice:
        """This process's rows of a tensor gathered over all processes."""
        start = self.accelerator.process_index * n_local
        return slice(start, start + n_local)

    def _drop_flat_groups(
        self, out: dict, rewards: torch.Tensor, keep_also: torch.Tensor | None = None
    ) -> None:
        """DAPO dynamic sampling: zero-variance groups leave the loss and its normalisers (and so
        do the rows `keep_also` marks False: partial rollouts' incomplete groups)."""
        keep = keep_mask(rewards, self.num_generations)
        scored = ~torch.isnan(rewards)
        self._metrics["train"]["dynamic/kept_fraction"].append(
            keep[scored].float().mean().item() if scored.any() else float("nan")
        )
        self._mask_rows(out, keep if keep_also is None else keep & keep_also)

    def _mask_rows(self, out: dict, keep: torch.Tensor) -> None:
        """Rows (over all processes) with keep False leave the loss; the normalisers count the rest."""
        mask = out["completion_mask"]
        keep_local = keep[self._local(mask.size(0))].to(mask.device)
        out["completion_mask"] = mask * keep_local.unsqueeze(1).to(mask.dtype)
        loss_mask = (
            out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
        )
        out["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()  # trl's dapo normaliser
        out["r1_num_sequences"] = keep.float().sum().to(mask.device)
        if self.r1.loss in ("grpo", "dr_grpo"):  # trl divides by all sequences of the micro-batch
            out["r1_loss_scale"] = (keep.numel() / keep.float().sum().clamp(min=1.0)).to(mask.device)

    def _kimi_inputs(self, out: dict, rewards: torch.Tensor) -> None:
        """Each completion's reward and its group's mean (Kimi's τ log Z), for this process's rows."""
        device = out["completion_mask"].device
        local = self._local(out["completion_mask"].size(0))
        baseline = group_mean_baseline(rewards, self.num_generations)
        scored = torch.where(torch.isnan(rewards), baseline, rewards)  # unscorable: zero advantage
        out["r1_rewards"] = torch.nan_to_num(scored[local]).to(device)
        out["r1_baseline"] = torch.nan_to_num(baseline[local]).to(device)
        out.setdefault("r1_num_sequences", torch.tensor(float(rewards.numel()), device=device))

    def _update_success(self, rewards_per_func: torch.Tensor, indices: list[int]) -> None:
        if not isinstance(self._r1_sampler, PrioritizedSampler) or self._r1_success_col is None:
            return
        pairs = [
            (i, s) for i, s in zip(indices, rewards_per_func[:, self._r1_success_col].tolist()) if i >= 0
        ]
        if pairs:
            self._r1_sampler.update([i for i, _ in pairs], [s for _, s in pairs])

    def _refill(self, out: dict, rewards: torch.Tensor, inputs: list) -> tuple[dict, torch.Tensor]:
        """DAPO dynamic sampling: generate extra groups and swap them in for zero-variance ones.

        The batch is then made of groups from several generations, so its advantages are
        recomputed over it (with --scale-rewards batch the std spans the final batch)."""
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
        picked = {
            k: (v[rows] if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in merged.items()
        }
        picked["advantages"] = group_advantages(all_r[rows], G, self.scale_rewards).to(
            picked["completion_mask"].device
        )
        return picked, all_r[rows]

    def _refill_rows(self, n_groups: int) -> list[dict]:
        ds = self.train_dataset
        if isinstance(self._r1_sampler, PrioritizedSampler):
            idx = torch.multinomial(
                self._r1_sampler.probabilities(),
                n_groups,
                replacement=n_groups > len(ds),
                generator=self._r1_refill_gen,
            ).tolist()
        else:
            idx = torch.randint(len(ds), (n_groups,), generator=self._r1_refill_gen).tolist()
        return [dict(ds[i]) for i in idx for _ in range(self.num_generations)]

    # ---- loss ------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model.training:  # for _SkipEmptySteps: does this optimizer step have any loss token?
            mask = inputs["completion_mask"]
            mask = mask * inputs["tool_mask"] if "tool_mask" in inputs else mask
            self._r1_step_tokens = getattr(self, "_r1_step_tokens", 0.0) + mask.sum().detach()
        if self.r1.loss == "kimi":
            return self._kimi_loss(model, inputs)
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # trl's loss_type
        scale = inputs.get("r1_loss_scale")
        return loss if scale is None else loss * scale

    def _kimi_loss(self, model, inputs):
        """Kimi k1.5's loss on this micro-batch (`kimi_loss`), the mean over j spanning the kept
        sequences of the whole generation batch, as trl's dapo normaliser spans its tokens."""
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        logp, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True
        )
        mask = completion_mask * inputs["tool_mask"] if "tool_mask" in inputs else completion_mask
        old = inputs.get("old_per_token_logps")
        old = logp.detach() if old is None else old
        training = self.model.training
        # share of the generation batch this micro-batch stands for (trl's dapo normaliser)
        share = (
            (self.current_gradient_accumulation_steps / self.args.steps_per_generation) if training else 1.0
        )
        n_seq = inputs["r1_num_sequences"] * share / self.accelerator.num_processes
        loss, stats = kimi_loss(
            logp,
            old,
            inputs["r1_rewards"],
            mask,
            self.num_generations,
            self.r1.tau,
            baseline=inputs["r1_baseline"],
            num_sequences=n_seq,
        )
        mode = "train" if training else "eval"
        self._metrics[mode]["kimi/log_ratio"].append(self._mean_across(stats["log_ratio"]))
        self._metrics[mode]["entropy"].append(self._mean_across(masked_mean(entropies.detach(), mask)))
        return loss

    def _mean_across(self, value: torch.Tensor) -> float:
        return self.accelerator.gather(value.detach().reshape(1)).float().mean().item()

    # ---- checkpoints: the prioritized sampler's success rates travel with them ---------------
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint is True:
            from transformers.trainer_utils import get_last_checkpoint

            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
        path = os.path.join(resume_from_checkpoint, SAMPLER_STATE) if resume_from_checkpoint else None
        if path and os.path.exists(path):
            with open(path) as fh:
                self._r1_pending_sampler_state = json.load(fh)  # read when the sampler is built
        if resume_from_checkpoint and self._r1_rollouts is not None:
            self._r1_load_partial(resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _r1_load_partial(self, folder: str) -> None:
        """Restore this process's replay buffer from the checkpoint. Written by another number of
        processes, the buffers of all of them are dealt out over this run's (`merge_states`)."""
        states = []
        while os.path.exists(path := os.path.join(folder, PARTIAL_STATE.format(rank=len(states)))):
            with open(path) as fh:
                states.append(json.load(fh))
        present = len(glob.glob(os.path.join(folder, PARTIAL_STATE.format(rank="*"))))
        if not present:
            import warnings

            warnings.warn(
                f"{folder} holds no partial-rollout buffer (saved without --rollout-token-budget or by "
                "an older r1kit): the resumed run starts with an empty one",
                stacklevel=2,
            )
            return
        written = {int(s.get("processes", -1)) for s in states}
        if written != {len(states)} or present != len(states):
            raise R1kitError(
                f"{folder} holds {present} partial-rollout buffer file(s), ranks 0..{len(states) - 1} in a "
                f"row, written by {sorted(written)} process(es): the checkpoint is incomplete; resume "
                "from another"
            )
        n = self.accelerator.num_processes
        mine = states if len(states) == n else merge_states(states, n)
        try:
            self._r1_rollouts.load_state_dict(mine[self.accelerator.process_index])
        except ValueError as err:
            raise R1kitError(f"cannot continue the partial rollouts saved in {folder}: {err}") from None


# partial-rollout counts summed over processes into metrics.jsonl as partial/<name> (r1kit/rl/partial.py)
_PARTIAL_SUMS = (
    "new_tokens",
    "continued",
    "trained_groups",
    "buffered_groups",
    "skipped_groups",
    "trained_rows",
    "stale_rows",
    "ended_eos",
    "ended_length",
    "ended_stop",
    "ended_repeat",
    "ended_age",
)


class _SkipEmptySteps(TrainerCallback):
    """An optimizer step none of whose micro-batches has a loss token (every row masked: partial
    rollouts' groups not yet complete, or DAPO's flat groups) leaves the weights alone. Its gradient
    is zero, but AdamW would still move the weights by its momentum and the weight decay, with no
    data behind the move; with the gradients set to None torch's optimizers skip the parameters.
    Counted over all processes, so every rank decides the same (`optimizer/skipped_steps`)."""

    def __init__(self, trainer: R1GRPOTrainer):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        trainer = self.trainer
        tokens, trainer._r1_step_tokens = trainer._r1_step_tokens, 0.0
        if trainer.is_deepspeed_enabled:  # DeepSpeed steps its own optimizer on its own gradients
            return
        device = trainer.accelerator.device
        total = trainer.accelerator.reduce(
            torch.as_tensor(tokens, dtype=torch.float32, device=device).reshape(1), reduction="sum"
        )
        if float(total.sum()) == 0.0:
            for param in trainer.model.parameters():
                param.grad = None
            trainer._metrics["train"]["optimizer/skipped_steps"].append(1.0)


class _SamplerStateSaver(TrainerCallback):
    """Writes the prioritized sampler's success rates into each checkpoint folder (rank 0)."""

    def __init__(self, trainer: R1GRPOTrainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        sampler = self.trainer._r1_sampler
        if isinstance(sampler, PrioritizedSampler) and args.should_save:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            with open(os.path.join(folder, SAMPLER_STATE), "w") as fh:
                json.dump(sampler.state_dict(), fh)


class _PartialStateSaver(TrainerCallback):
    """Writes each process's partial-rollout replay buffer into each checkpoint folder (every
    rank: the buffers differ), through a temporary file so that a cut-short save leaves none."""

    def __init__(self, trainer: R1GRPOTrainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        rollouts = self.trainer._r1_rollouts
        if rollouts is None:
            return
        accelerator = self.trainer.accelerator
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, PARTIAL_STATE.format(rank=accelerator.process_index))
        with open(path + ".tmp", "w") as fh:
            json.dump({**rollouts.state_dict(), "processes": accelerator.num_processes}, fh)
        os.replace(path + ".tmp", path)


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
