"""GRPO reinforcement learning from rule rewards: R1-Zero, R1, DAPO, Dr. GRPO and Kimi k1.5.

Runs trl's GRPOTrainer through r1kit's subclass (r1kit/rl/trainer.py): for each prompt G
completions are sampled, scored by the chosen rewards, and trained on with the group-relative
advantage Â_i = (r_i − mean r)/std r and the clipped surrogate with a k3 KL term
(DeepSeekMath eq. 3-4; formulas in r1kit/rl/losses.py, computed by trl through the GRPOConfig
switches r1kit/rl/trl_args.py sets; the Kimi loss and dynamic sampling are r1kit's). Variants:
`--loss dapo` (token-level), `--loss dr_grpo` (no length/std normalisation), `--loss kimi --tau T`
(Kimi k1.5 mirror-descent surrogate), clip-higher (`--epsilon-high`), DAPO dynamic sampling, Kimi
curriculum and prioritized sampling, and a reference-model reset every N steps (R1: 400).
`--preset` sets a paper's choices in one flag (r1kit/rl/presets.py); flags and --config still win.
The prompts and rewards are prepared by r1kit/rl/inputs.py; the end of training (resume, saving
from rank 0, the summary) is r1kit.training.train_and_save, shared with sft and dpo-shorten.

Policy iterations as the papers run them: `--updates-per-rollout N` samples one rollout batch of
prompts-per-step × G × N completions with π_old and takes N optimizer steps over its minibatches
(R1: 8192 outputs per rollout, 16 minibatches of 512); `--num-iterations μ` passes over the batch
μ times. `--reset-optimizer` empties the optimizer state at each new rollout batch (Kimi k1.5).
`--rollout-token-budget T` runs Kimi's partial rollouts (r1kit/rl/partial.py): at most T new
tokens per trajectory per iteration, unfinished ones continued in later iterations from a replay
buffer, the loss on each trajectory's newest segment (`--partial-loss segment`) or on all of it
(`trajectory`); `--repeat-stop N` ends a rollout whose last N tokens repeat and `--repeat-penalty
P` adds −P to its reward.

Where r1kit differs from the papers:

(1) Scale: batches, rollout lengths and step counts are whatever you ask for (R1: 32 prompts × 16
samples of up to 32768 tokens per step; DeepSeekMath: batch 1024, 64 samples per question);
R1's later switches (temperature 0.7 in its second stage, 65536 tokens after 8.2k steps) are not
scheduled, and R1's clip ε, reported as 10 and unverified, stays 0.2.

(2) Advantages divide by the group's sample std + 1e-4 (trl), not by the std alone.

(3) The reference reset copies the policy into the reference model (trl's sync with α = 1); a
resumed run restarts with the initial policy as reference. DeepSeekMath's iterative RL, which
also retrains the reward model between iterations, is not run.

(4) `--loss kimi` replaces τ·log Z by the group's mean reward, as Kimi does, and is scaled by
1/(2τ); its per-token gradient is |o|·(std + 1e-4) times GRPO's, so learning rates do not carry
over. Kimi's τ, samples per problem, updates per iteration, length-reward warm-up, token budget
and repeat window are unreported: the kimi presets keep τ 0.1 and one update per rollout (with
the reset, each step is then Adam's first: about lr·sign(g)), warm the length reward up for 20
steps, and use a 256-token budget and a 64-token repeat window.

(5) Partial rollouts are synchronous (Kimi's rollout workers run asynchronously) and keep the
rollout batch's shape: a group is scored and trained when its last member finishes; until then
its slots hold placeholders that leave the loss (a step with no complete group changes no weight);
buffered groups displace fresh prompts, which are skipped until a later epoch. With
`--partial-loss segment` (the default) every earlier segment is context and a member that finished
in an earlier iteration counts in its group's mean and std but adds no loss term; Kimi trains
earlier segments and excludes only "certain segments", which `--partial-loss trajectory` (the kimi
preset) approximates by training every token as if the current policy had sampled it, with no
importance correction. With a budget below the typical length, segment mode lost accuracy on the
CPU learning check and trajectory mode did not (bench/RESULTS.md). The buffer is saved with every
checkpoint, one file per process, and `--resume` continues its trajectories (resumed with another
number of processes, all the buffered groups are dealt out over the new ones, oldest first); vLLM
rollouts do not support it.
`--rollout-max-age A` ends a trajectory as truncated after A continuations.

(6) Repeat detection checks every 16 decoding steps on r1kit's loop and at segment ends on
transformers' generate, and cuts the trajectory back to its first repeating token on both; the
penalty's size is r1kit's choice (Kimi: "additional penalties").

(7) Kimi's curriculum difficulty comes from a column you provide (e.g. the pass_rate of `r1kit
rejection-sample` over 10 SFT samples); prioritized sampling keeps solved prompts at
--priority-floor instead of 0; Kimi's filter of prompts answered without reasoning is not built in.

(8) DAPO refill runs on one process only (`--dynamic-sampling mask` works everywhere), and not
with partial rollouts. Multimodal inputs (Kimi's vision data) are not supported.

Example:

\b
    r1kit grpo --model runs/sft --data runs/data --reward accuracy=1 --output runs/grpo \\
        --num-generations 8 --prompts-per-step 8 --max-steps 100 --learning-rate 1e-4 \\
        --max-completion-length 192
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from r1kit.config import StageConfig, option
from r1kit.options import (
    DecodingOptions,
    ModelOptions,
    PromptOptions,
    RewardOptions,
    TrainingOptions,
    restate,
)
from r1kit.rl.config_checks import check_config, check_rewards
from r1kit.rl.options import (
    DYNAMIC,
    LOSSES,
    SAMPLERS,
    SCALES,
    PolicyIterationOptions,
    RolloutOptions,
    described,
)
from r1kit.rl.presets import PRESETS


@dataclass
class Config(
    PolicyIterationOptions,
    RolloutOptions,
    TrainingOptions,
    RewardOptions,
    DecodingOptions,
    PromptOptions,
    ModelOptions,
    StageConfig,
):
    """`r1kit grpo`'s options. `--preset` fills what YAML and flags leave unset (`build_config`)."""

    PRESETS: ClassVar = PRESETS
    INPUTS = ("model", "data", "reward_model", "resume")  # checked against --output (r1kit.outputs)
    DATA_REQUIRED = "the prompt dataset"

    model: str = restate("model", note="The policy.")
    preset: str = option(
        "", f"Paper settings in one flag ({', '.join(PRESETS)}); flags and --config win over it."
    )
    num_generations: int = option(8, "G: completions sampled per prompt (R1 16).")
    prompts_per_step: int = option(
        8, "Distinct prompts per optimizer step; the step's batch is prompts × G completions."
    )
    generation_batch_size: int = option(
        0,
        "Completions per rollout batch (trl's generation_batch_size; divisible by "
        "G and by --updates-per-rollout). 0 = prompts-per-step × G × "
        "updates-per-rollout.",
    )
    batch_size: int = restate(
        "batch_size",
        0,
        "grpo: completions; 0 = the whole step's batch per device, a smaller value accumulates gradients.",
    )
    max_completion_length: int = option(1024, "Longest completion in tokens.")
    top_p: float = restate("top_p", 1.0, "grpo: 1.0, so that rollouts are samples of the policy.")
    stop: list[str] = option(
        [],
        "Stop string for rollouts (repeatable; e.g. 'Question:' or a newline after few-shot "
        "prompts of a base model): a completion ends where it first writes one; the rewards read "
        "the text before it, and training keeps the tokens up to the one that completed it. "
        "Logged as completions/stopped_ratio (trl's clipped_ratio counts them too: no EOS).",
        metavar="TEXT",
    )
    loss: str = option("grpo", f"Loss: {described(LOSSES)}.", choices=tuple(LOSSES))
    tau: float = option(0.1, "Kimi τ: weight of the KL to the previous policy in --loss kimi.")
    beta: float = option(
        0.0,
        "KL coefficient β to the reference model (k3 estimator, added to the loss; R1 0.001, "
        "DeepSeekMath 0.04).",
    )
    ref_reset_steps: int = option(
        0, "Reset the reference model to the current policy every N steps (R1 400; 0 = never; needs β > 0)."
    )
    epsilon: float = option(0.2, "Clip ε (the lower one with clip-higher).")
    epsilon_high: float | None = option(
        None, "Upper clip ε (DAPO clip-higher 0.28); unset: the same as --epsilon."
    )
    scale_rewards: str = option("group", f"Advantage scaling: {described(SCALES)}.", choices=tuple(SCALES))
    mask_truncated: bool = option(
        False, "Leave completions cut at the max length out of the loss (DAPO overlong filtering)."
    )
    dynamic_sampling: str = option(
        "off",
        f"DAPO dynamic sampling for groups with equal rewards: {described(DYNAMIC)}.",
        choices=tuple(DYNAMIC),
    )
    refill_tries: int = option(4, "Most extra generation rounds per step for --dynamic-sampling refill.")
    sampler: str = option("random", f"Prompt order: {described(SAMPLERS)}.", choices=tuple(SAMPLERS))
    curriculum_column: str = option(
        "",
        "Curriculum difficulty: a difficulty column, or pass_rate (easy = high pass "
        "rate). Empty = difficulty, else pass_rate.",
    )
    curriculum_schedule: str = option(
        "sorted",
        "sorted (ascending difficulty, shuffled within equal values) or window "
        "(linearly widening easy-first window).",
        choices=("sorted", "window"),
    )
    priority_floor: float = option(0.05, "Prioritized sampling: smallest weight a solved prompt keeps.")
    success_reward: str = option("accuracy", "Reward whose value counts as success for prioritized sampling.")
    length_warmup_steps: int = option(
        0, "The length reward is 0 for the first N steps (Kimi warms up without it)."
    )
    overlong_cache: int = option(
        0,
        "DAPO L_cache in tokens for the overlong reward (0 = max-completion-length / 5, "
        "DAPO's 4096 of 20480).",
    )
    reward_model: str = option(
        "",
        "Sequence-classification checkpoint scored by --reward reward_model=W (R1's all-scenario RL stage).",
    )
    num_iterations: int = option(1, "Policy updates per batch of rollouts (μ in GRPO).")
    learning_rate: float = restate(
        "learning_rate", 1e-6, "(DeepSeekMath 1e-6, R1 3e-6; the tiny model needs ~1e-4)"
    )
    lr_scheduler: str = restate("lr_scheduler", "constant", "grpo: constant, as DeepSeekMath.")
    logging_steps: int = restate("logging_steps", 1)
    max_minutes: float = option(
        0.0, "Stop after this many minutes of training (checked after each step; 0 = no limit)."
    )
    kl_warn: float = option(1.0, "Warn once when the logged KL to the reference exceeds this.")
    hacking_window: int = option(
        10, "Logs over which 'format reward up, accuracy down' raises a reward-hacking warning."
    )
    live: bool = option(True, "Show the rich live metrics view.")

    def __post_init__(self) -> None:
        if self.epsilon_high is None:  # trl's rule: no clip-higher unless asked for
            self.epsilon_high = self.epsilon
        super().__post_init__()

    @classmethod
    def fit_preset(cls, preset: dict, given: dict) -> dict:
        """Preset values that cannot apply to this run step aside (the same values given explicitly
        are errors in `validate`): a KL weight next to --loss kimi (its KL term is τ's), a reference
        reset without a reference model (β = 0) or with LoRA (the reference is the base), and
        partial rollouts / repeat detection next to DAPO refill or vLLM rollouts."""
        preset = dict(preset)
        if given.get("loss", preset.get("loss")) == "kimi" and "beta" not in given:
            preset.pop("beta", None)
        beta = given.get("beta", preset.get("beta", cls.beta))
        if (beta == 0 or given.get("lora")) and "ref_reset_steps" not in given:
            preset.pop("ref_reset_steps", None)
        if (
            given.get("dynamic_sampling") == "refill"
            or given.get("vllm_server")
            or given.get("use_vllm") == "on"
        ):
            for key in (
                "rollout_token_budget",
                "repeat_stop",
            ):  # partial rollouts need r1kit's fixed-shape rollouts
                if key not in given:
                    preset.pop(key, None)
        return preset

    @property
    def completions_per_rollout(self) -> int:
        """One rollout batch (trl's generation_batch_size): N optimizer steps' completions."""
        return (
            self.generation_batch_size
            or self.prompts_per_step * self.num_generations * self.updates_per_rollout
        )

    @property
    def completions_per_step(self) -> int:
        return self.completions_per_rollout // self.updates_per_rollout

    def validate(self) -> None:
        super().validate()
        check_config(self)
        if self.use_vllm == "on":
            from r1kit.training import require_extras

            require_extras(vllm="--use-vllm on")  # before any model loads

    def reward_params(self, prefill: str = "") -> dict:
        """Parameters for the registry's factory rewards (each takes the keys it knows)."""
        cache = self.overlong_cache or max(1, self.max_completion_length // 5)
        return {
            "prefill": prefill or None,
            "lang": self.lang or None,
            "max_len": self.max_completion_length,
            "cache_len": min(cache, self.max_completion_length),
            "warmup_steps": self.length_warmup_steps,
            "group_size": self.num_generations,
            "checkpoint": self.reward_model or None,
        }

    def reward_specs(self, prefill: str = "") -> list:
        """The --reward list resolved to RewardSpecs and checked against the run (done once, in
        `prepare_inputs`, where the template's prefill is known)."""
        from r1kit.rewards import resolve_reward

        specs = [resolve_reward(spec, self.reward_params(prefill)) for spec in self.reward]
        check_rewards(self, [spec.name for spec in specs])
        return specs


def _named(fn, name: str):
    """The reward under its registry name, so trl logs it as rewards/<name>/mean."""

    def reward(prompts=None, completions=(), completion_ids=None, **kwargs):
        return fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)

    reward.__name__ = name
    return reward


def run(cfg: Config):
    from r1kit.rl.inputs import prepare_inputs
    from r1kit.rl.trl_args import use_vllm

    tokenizer, ds, template, specs = prepare_inputs(cfg)
    # partial rollouts and repeat detection drive r1kit's loop or transformers' generate: vLLM "auto" yields
    vllm = use_vllm(cfg) and not (cfg.use_vllm == "auto" and (cfg.rollout_token_budget or cfg.repeat_stop))

    import shutil

    import torch

    from r1kit.models import load_model
    from r1kit.outputs import is_main_process, stage_output
    from r1kit.rl.callbacks import GRPOMetricsCallback, TimeLimit
    from r1kit.rl.trainer import R1GRPOTrainer, R1Options
    from r1kit.rl.trl_args import grpo_args, reference_snapshot
    from r1kit.training import train_and_save

    rewards = [_named(s.fn, s.name) for s in specs]
    derived = {
        "difficulties": ds["r1kit_difficulty"] if cfg.sampler == "curriculum" else None,
        "initial_success": ds["pass_rate"]
        if cfg.sampler == "prioritized" and "pass_rate" in ds.column_names
        else None,
        "fast_rollout": {"auto": "auto", "fast": "on", "hf": "off"}[cfg.rollout],
        "fast_rollout_keep_cache": cfg.rollout_cache == "keep",
        "stop": tuple(cfg.stop),
    }
    # every other field of R1Options is the grpo option of the same name, passed as it is
    same = {f.name: getattr(cfg, f.name) for f in fields(R1Options) if f.name not in derived}
    options = R1Options(**same, **derived)
    weights = [spec.weight for spec in specs]
    if cfg.repeat_stop and cfg.repeat_penalty:
        from r1kit.rl.partial import repeat_stop_reward

        rewards.append(_named(repeat_stop_reward(cfg.repeat_stop), "repeat_stop"))
        weights.append(cfg.repeat_penalty)
    torch.manual_seed(cfg.seed)
    inputs = {"model": cfg.model, "data": cfg.data, "preset": cfg.preset or None, "template": template}
    with stage_output(
        cfg, "grpo", inputs, keep_checkpoints=cfg.keep_checkpoints, resume=bool(cfg.resume)
    ) as out:
        from r1kit.judge import exclusion_summary

        excluded = exclusion_summary(sorted(getattr(cfg, "_unscorable", {})))
        out.extra.update(excluded)
        if excluded["unscorable_gold"]:
            out.log(
                {
                    "event": "unscorable_gold",
                    "count": excluded["unscorable_gold"],
                    "ids": excluded["unscorable_gold_ids"],
                    "reasons": {str(i): why for i, why in list(cfg._unscorable.items())[:20]},
                }
            )
            if is_main_process():
                print(
                    f"{excluded['unscorable_gold']} prompt(s) left out: the judge cannot score their gold answer "
                    f"(rows {', '.join(map(str, excluded['unscorable_gold_ids'][:20]))}; see metrics.jsonl)"
                )
        model = load_model(cfg.model, dtype=cfg.dtype, seed=cfg.seed)
        # before GRPOConfig starts the process group: once it is up, save_pretrained writes on
        # rank 0 only and the other ranks would find an empty reference folder
        ref_snapshot = reference_snapshot(cfg, model, tokenizer)
        args = grpo_args(cfg, str(out.checkpoints_dir), vllm, weights)
        callback = GRPOMetricsCallback(
            out,
            kl_threshold=cfg.kl_warn,
            window=cfg.hacking_window,
            live=cfg.live and is_main_process(),
            max_minutes=cfg.max_minutes,
        )
        try:
            trainer = R1GRPOTrainer(
                model=model,
                reward_funcs=rewards,
                args=args,
                train_dataset=ds,
                processing_class=tokenizer,
                peft_config=cfg.lora_config(model),
                r1=options,
                callbacks=[callback, *([TimeLimit(cfg.max_minutes)] if cfg.max_minutes else [])],
            )
        finally:
            if ref_snapshot:
                shutil.rmtree(ref_snapshot, ignore_errors=True)
        train_and_save(
            trainer,
            cfg,
            out,
            tokenizer,
            summary=lambda: {"prompts": len(ds), "warnings": list(callback.warned.values())},
        )
        out.extra.update(prompts=len(ds), warnings=list(callback.warned))
    if is_main_process():
        print(f"wrote {out.final}")
    return out.final
