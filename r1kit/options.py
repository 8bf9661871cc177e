"""The option groups every stage's Config is composed of: one meaning, one default, one help per name.

open-r1 builds a script's options from trl's dataclasses (ScriptArguments, ModelConfig, GRPOConfig);
r1kit does the same with its own groups. A stage's Config lists the groups it uses,

    @dataclass
    class Config(TrainingOptions, DataOptions, ModelOptions, StageConfig): ...

and adds only what is its own. So `--lora-dropout` is one field with one default in every stage
that trains, `--batch-size` is always the training micro-batch per device, `--sample-batch-size`
always the number of sequences decoded together, `--limit` always a seeded random subset. The
flags of `--help` and the keys of a YAML file follow from the fields (r1kit/cli.py, r1kit/config.py).

Where a paper fixes another default for one stage (R1's cold start learns at 5e-5, GRPO at 1e-6),
the stage restates the group's field with `restate`: the meaning and help stay the group's, the new
default and a note are added, and tests/test_options.py checks that nothing else differs.

Groups check their own values in `validate` (cooperatively, through super()); the numeric ranges
of every field are in r1kit/ranges.py. This module imports no torch: `--help` reads it.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

from r1kit.config import option
from r1kit.errors import R1kitError

# Literal copies (--help must not import torch): r1kit.models.DTYPES, r1kit.generation.BACKEND_CHOICES,
# r1kit.sampling.KEEP_POLICIES, r1kit.filters.PARAGRAPH_UNITS; tests/test_options.py checks they agree.
DTYPES = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("auto", "fast", "hf", "vllm")
KEEP_POLICIES = ("all-correct", "shortest-correct", "first-correct", "all")
PARAGRAPH_UNITS = ("chars", "words")

MODEL_SPEC = (
    "'tiny', 'tiny-llama', a checkpoint folder, an r1kit stage output, a LoRA adapter folder, "
    "a .gguf file or a hub id"
)
DATA_SPEC = "a save_to_disk folder, an r1kit stage output, a .jsonl/.json/.parquet/.csv file or a hub id"

_SAME = object()


def restate(name: str, default: Any = _SAME, note: str = "", **changes: Any) -> Any:
    """The group field `name` for a stage that needs another default (each name is one group's).

    The help keeps the group's text (so the name keeps its meaning) and adds `note`, which should
    say why this stage differs (the paper's value). `changes` may narrow `choices`.
    """
    group = next(g for g in GROUPS if name in inspect.get_annotations(g))
    base = group.__dataclass_fields__[name]
    if default is _SAME:
        default = base.default if base.default is not dataclasses.MISSING else base.default_factory()
    meta = dict(base.metadata)
    meta["help"] = f"{meta['help']} {note}".strip()
    meta["restated_from"] = group.__name__
    meta.update(changes)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def project(source: Any, cls: type, **values: Any) -> Any:
    """A `cls` config holding the fields of `source` that `cls` also has, then `values`.

    Sound because a name means the same in every stage (the groups above): `r1kit distill`
    builds its rejection-sampling and SFT runs this way from its own options.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    shared = {f.name: getattr(source, f.name) for f in dataclasses.fields(source) if f.name in names}
    return cls(**{**shared, **values})


class OptionGroup:
    """Base of the groups: `validate` runs every group's checks along the MRO (each calls super)."""

    def validate(self) -> None:
        parent = getattr(super(), "validate", None)
        if parent is not None:
            parent()


@dataclass
class ModelOptions(OptionGroup):
    """The model a stage loads (trains, samples or evaluates)."""

    model: str = option("tiny", f"Model: {MODEL_SPEC}.")
    dtype: str = option("auto", "Weights dtype (auto: the checkpoint's own).", choices=DTYPES)


@dataclass
class DataOptions(OptionGroup):
    """The dataset a stage reads."""

    DATA_REQUIRED: ClassVar[str] = "the dataset this stage reads"  # what --data is, in its error message
    TRL_SPLIT: ClassVar[str] = "dataset_train_split"  # trl's name for --split here (r1kit.trl_names)

    data: str = option("", f"Dataset: {DATA_SPEC}.")
    split: str = option("train", "Split to read when the dataset has several.")
    limit: int = option(
        0, "Use a seeded random subset of N rows (0 = all; the same --seed gives the same rows)."
    )

    def validate(self) -> None:
        super().validate()
        if not self.data and not getattr(self, "samples", ""):  # evaluate, dpo-shorten: or saved samples
            raise R1kitError(f"--data is required: {self.DATA_REQUIRED}")


@dataclass
class PromptOptions(DataOptions):
    """Prompt datasets: columns mapped by a task adapter, questions rendered by a template."""

    task: str | None = option(
        None,
        "Task adapter that maps the dataset's columns (gsm8k, math500, mgsm, "
        "humaneval, mbpp, arithmetic, ..., or pkg.mod:fn); default: detected from the columns.",
    )
    prompt_field: str | None = option(
        None,
        "Column holding the question (default: the task's, else detected: question, problem, prompt, ...).",
    )
    answer_field: str | None = option(
        None, "Column holding the gold answer (default: the task's, else detected: answer, solution, ...)."
    )
    template: str = option(
        "auto",
        "Prompt template: auto (chat when the tokenizer has a chat template, else raw), "
        "chat, chat-think (R1's evaluation prompt, reply prefilled with '<think>\\n'), r1-zero "
        "(R1-Zero's training template), raw, or pkg.mod:fn.",
    )
    system_prompt: str | None = option(
        None, "System prompt: a system message for chat templates, a leading paragraph for the others."
    )

    def validate(self) -> None:
        super().validate()
        if self.template != "auto":
            from r1kit.lookup import check_name

            check_name(self.template, ("chat", "chat-think", "r1-zero", "raw"), "template", dotted=True)


@dataclass
class DecodingOptions(OptionGroup):
    """How tokens are drawn: shared by GRPO's rollouts and the sampling stages."""

    temperature: float = option(1.0, "Sampling temperature (R1: 1.0 in RL, 0.6 to evaluate).")
    top_p: float = option(0.95, "Nucleus sampling top-p (1.0 = off; R1 evaluates with 0.95).")
    top_k: int = option(0, "Top-k sampling (0 = off).")

    def validate(self) -> None:
        super().validate()
        if self.temperature <= 0 and not self.argmax():
            raise R1kitError(f"--temperature ({self.temperature}) must be > 0")

    def argmax(self) -> bool:
        """Whether decoding is greedy, where temperature plays no part (evaluate's --greedy)."""
        return False


@dataclass
class SamplingOptions(DecodingOptions):
    """k samples per prompt, decoded in batches by a generation backend (r1kit/generation/)."""

    num_samples: int = option(8, "k: samples per prompt.")
    max_new_tokens: int = option(
        1024, "Most tokens generated per sample; a longer one is cut and counts as truncated."
    )
    sample_batch_size: int = option(64, "Sequences (prompts x samples) decoded together.")
    backend: str = option(
        "auto",
        "Generation backend: auto (fast on a CUDA GPU for a supported model, else hf), "
        "fast (r1kit's decode loop), hf (transformers), vllm.",
        choices=BACKENDS,
    )
    prefill: str | None = option(
        None,
        "Text forced at the start of every reply (default: the template's, "
        "'<think>\\n' for chat-think; '' for none).",
    )
    static_cache: bool = option(True, "On CUDA, generate with a compiled static KV cache (hf backend).")

    def validate(self) -> None:
        super().validate()
        if self.backend == "vllm" and not getattr(self, "samples", ""):  # evaluate, dpo-shorten: none sampled
            from r1kit.training import require_extras

            require_extras(vllm="--backend vllm")  # a missing package: one line now, before any model loads

    def sampling_params(self, n: int | None = None, **extra: Any):
        """r1kit.generation.SamplingParams for these options."""
        from r1kit.generation import SamplingParams

        return SamplingParams(
            n=self.num_samples if n is None else n,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
            seed=getattr(self, "seed", 0),
            batch_size=self.sample_batch_size,
            **extra,
        )


@dataclass
class RewardOptions(OptionGroup):
    """Rule rewards by name (r1kit/rewards/registry.py) and the target language some of them read."""

    reward: list[str] = option(
        ["accuracy"],
        "Reward NAME or NAME=WEIGHT, repeatable: accuracy, format, "
        "think_format, tag_count, language, length, overlong, repetition, code, "
        "code_pass_rate, reward_model, or pkg.mod:fn.",
    )
    lang: str = option(
        "",
        "Target language of the chains of thought (e.g. en) for the language reward and "
        "filter; empty = each row's 'lang' column.",
    )

    def validate(self) -> None:
        super().validate()
        from r1kit.rewards.registry import check_specs

        check_specs(self.reward)  # imports no reward: names only, with did-you-mean


@dataclass
class SelectionOptions(OptionGroup):
    """Which samples become training data: R1's rejection-sampling filters, the keep policy, the mix."""

    keep: str = option(
        "all-correct",
        "Keep policy: all-correct (R1), shortest-correct (Kimi), first-correct, "
        "or all (every sample, wrong ones too, for dpo-shorten --samples).",
        choices=KEEP_POLICIES,
    )
    filter_language: bool = option(True, "Drop mixed-language chains of thought (needs a target language).")
    min_language_share: float = option(
        0.9, "Language filter: least share of target-language words (R1's reward)."
    )
    filter_paragraphs: bool = option(True, "Drop samples with an over-long paragraph.")
    max_paragraph: int = option(4000, "Paragraph filter: longest paragraph allowed, in --paragraph-unit.")
    paragraph_unit: str = option("chars", "Unit of --max-paragraph.", choices=PARAGRAPH_UNITS)
    filter_code_blocks: bool = option(True, "Drop samples with ``` code blocks in non-code tasks.")
    filter_repetition: bool = option(True, "Drop repetitive samples.")
    min_repetition_reward: float = option(
        -0.5, "Repetition filter: least repetition reward (a penalty in [-1, 0])."
    )
    mix_data: str = option("", "Non-reasoning SFT data (a 'messages' column) to mix in.")
    mix_split: str = option("train", "Split of --mix-data.")
    mix_ratio: float = option(
        0.25, "Share of the output that --mix-data makes up (R1: ~200k of ~800k = 0.25)."
    )

    def filter_settings(self):
        """r1kit.filters.FilterSettings for these options."""
        from r1kit.filters import FilterSettings

        return FilterSettings(
            language=self.filter_language,
            min_language_share=self.min_language_share,
            lang=getattr(self, "lang", ""),
            paragraph=self.filter_paragraphs,
            max_paragraph=self.max_paragraph,
            paragraph_unit=self.paragraph_unit,
            code_block=self.filter_code_blocks,
            repetition=self.filter_repetition,
            min_repetition_reward=self.min_repetition_reward,
        )

    def validate(self) -> None:
        super().validate()
        self.filter_settings().validate()


@dataclass
class LoraOptions(OptionGroup):
    """LoRA adapters (peft) instead of full fine-tuning."""

    lora: bool = option(False, "Train LoRA adapters (peft) instead of all weights.")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA alpha.")
    lora_dropout: float = option(0.05, "LoRA dropout (trl's default).")
    lora_target: str = option("all-linear", "LoRA target modules: 'all-linear' or comma-separated names.")
    merge_lora: bool = option(
        True,
        "Merge the LoRA adapters into the saved checkpoint, so the next stage loads a "
        "plain model (--no-merge-lora saves the adapter folder).",
    )

    def lora_config(self, model=None):
        """peft's LoraConfig for these options (None without --lora); see r1kit.training.lora_config."""
        if not self.lora:
            return None
        from r1kit.training import lora_config

        return lora_config(self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_target, model)


@dataclass
class TrainerOptions(OptionGroup):
    """The optimiser, schedule and logging of a trl trainer (sft, grpo, dpo-shorten, distill's student)."""

    learning_rate: float = option(5e-5, "Peak learning rate.")
    lr_scheduler: str = option(
        "cosine",
        "Learning-rate schedule (a transformers name: cosine, constant, linear, "
        "...); cosine decays to --min-lr-ratio x the peak.",
    )
    min_lr_ratio: float = option(
        0.1, "Floor of the cosine schedule as a share of the peak (R1: 5e-5 -> 5e-6 = 0.1)."
    )
    warmup_ratio: float = option(0.0, "Share of the steps for linear warm-up.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    max_grad_norm: float = option(1.0, "Gradient clipping norm.")
    epochs: float = option(1.0, "Passes over the training data when --max-steps is -1.")
    max_steps: int = option(-1, "Stop after this many optimizer steps (-1 = run --epochs).")
    batch_size: int = option(8, "Training micro-batch: sequences per device per forward/backward pass.")
    gradient_checkpointing: bool = option(False, "Recompute activations to save memory.")
    logging_steps: int = option(10, "Log every N steps.")
    report_to: str = option("none", "Passed to trl/transformers report_to (e.g. wandb, tensorboard).")

    def validate(self) -> None:
        super().validate()
        if self.epochs <= 0 and self.max_steps <= 0:
            raise R1kitError(
                f"set --epochs > 0 (got {self.epochs}) or --max-steps > 0 (got {self.max_steps})"
            )
        from r1kit.training import require_extras

        require_extras(
            self.report_to
        )  # a missing tracker package: one line now, not a traceback after loading


@dataclass
class CheckpointOptions(OptionGroup):
    """Trainer checkpoints: how often, whether they are kept, and resuming an interrupted run."""

    save_steps: int = option(
        0, "Save a trainer checkpoint every N steps (0 = only the final one, with --keep-checkpoints)."
    )
    keep_checkpoints: bool = option(
        False, "Keep the trainer checkpoints in OUT/checkpoints after a successful run."
    )
    resume: str = option("", "Resume: 'auto' (this output's interrupted run) or a checkpoint folder.")


@dataclass
class OfflineTrainingOptions(OptionGroup):
    """Trainers on a fixed dataset of examples (SFT, DPO), as against GRPO's rollouts."""

    max_length: int = option(
        1024, "Longest tokenized example (prompt + completion); longer ones are truncated."
    )
    grad_accum: int = option(1, "Gradient accumulation steps: micro-batches per optimizer step.")

    def validate(self) -> None:
        super().validate()
        if self.batch_size < 1:
            raise R1kitError(f"--batch-size ({self.batch_size}) must be >= 1")
        if self.max_length < 8:
            raise R1kitError(f"--max-length ({self.max_length}) is too small (>= 8 tokens)")


@dataclass
class HubOptions(OptionGroup):
    """Sharing the trained model: the output's model folder, with its model card, on the Hugging Face hub."""

    push_to_hub: str = option(
        "",
        "At the end, upload the output's model folder (weights, tokenizer, model card) to "
        "this hub repo (USER/NAME, or NAME in your namespace), from rank 0. Checked before "
        "training: offline (HF_HUB_OFFLINE=1), without a token or unreachable, the run stops "
        "at once.",
        metavar="REPO",
    )
    hub_private: bool = option(
        False, "Create the --push-to-hub repo as private (an existing repo keeps its visibility)."
    )

    def validate(self) -> None:
        super().validate()
        if self.push_to_hub:
            from r1kit.hub import check_push

            check_push(self.push_to_hub)  # the repo id, offline mode and a token: no network


# Groups that go together in several stages.


@dataclass
class ScoredSamplingOptions(RewardOptions, SamplingOptions, PromptOptions):
    """Prompts sampled k times and scored by rewards: what r1kit.sampling.sample_and_score reads
    (rejection-sample, distill's teacher, dpo-shorten's own samples)."""


@dataclass
class TrainingOptions(HubOptions, LoraOptions, CheckpointOptions, TrainerOptions):
    """What a stage that trains with a trl trainer takes: optimiser, schedule, checkpoints, LoRA, the hub."""


GROUPS = (
    ModelOptions,
    DataOptions,
    PromptOptions,
    DecodingOptions,
    SamplingOptions,
    RewardOptions,
    SelectionOptions,
    LoraOptions,
    TrainerOptions,
    CheckpointOptions,
    OfflineTrainingOptions,
    HubOptions,
)
