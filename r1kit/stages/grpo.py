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

Where r1kit differs from the papers: batches, rollout lengths and step counts are whatever you
ask for (R1 used 512 samples of up to 32768 tokens per step); the reference reset copies the
policy into the reference model (trl's sync with α = 1), and a resumed run restarts with the
initial policy as reference; `--loss kimi` replaces the paper's τ·log Z by the group mean
reward, as Kimi does, and is scaled by 1/(2τ); DAPO refill runs on one process only
(`--dynamic-sampling mask` works everywhere).

Example:

    r1kit grpo --model runs/sft --data runs/data --reward accuracy=1 --output runs/grpo \\
        --num-generations 8 --prompts-per-step 8 --max-steps 100 --learning-rate 1e-4 \\
        --max-completion-length 192
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from typing import ClassVar

from r1kit.config import StageConfig, option
from r1kit.errors import R1kitError
from r1kit.rl.presets import PRESETS

LOSSES = ("grpo", "dapo", "dr_grpo", "kimi")
SCALES = ("group", "batch", "none")
DYNAMIC = ("off", "mask", "refill")
SAMPLERS = ("random", "curriculum", "prioritized")
VLLM = ("auto", "on", "off")


@dataclass
class Config(StageConfig):
    """`r1kit grpo`'s options. `--preset` fills what YAML and flags leave unset (`build_config`)."""

    PRESETS: ClassVar = PRESETS
    INPUTS = ("model", "data", "reward_model", "resume")  # checked against --output (r1kit.outputs)

    model: str = option("tiny", "Policy: 'tiny', a checkpoint folder, an r1kit stage output, a .gguf file or a hub id.")
    data: str = option("", "Prompt dataset: a save_to_disk folder, an r1kit stage output, a .jsonl/.json/.parquet/.csv file or a hub id.")
    split: str = option("train", "Split to train on when the data has several.")
    task: str = option("", "Task adapter (e.g. gsm8k, math500, arithmetic); empty = detect from the columns.")
    prompt_field: str = option("", "Column holding the question (generic data).")
    answer_field: str = option("", "Column holding the gold answer (generic data).")
    system_prompt: str = option("", "System prompt (a system message for chat templates).")
    limit: int = option(0, "Use a seeded random subset of N prompts (0 = all).")
    preset: str = option("", f"Paper settings in one flag ({', '.join(PRESETS)}); flags and --config win over it.")
    template: str = option("auto", "Prompt template: auto (chat if the tokenizer has a chat template, else raw), r1-zero, chat-think, chat, raw.")
    reward: list[str] = option(["accuracy=1"], "Reward NAME=WEIGHT (accuracy, format, think_format, tag_count, language, length, overlong, repetition, code, ... or pkg.mod:fn).")
    num_generations: int = option(8, "G: completions sampled per prompt (R1 16).")
    prompts_per_step: int = option(8, "Distinct prompts per optimizer step; the step's batch is prompts × G completions.")
    generation_batch_size: int = option(0, "Completions per step (trl's generation_batch_size; must be divisible by G). 0 = prompts-per-step × G.")
    batch_size: int = option(0, "Completions per device per forward/backward pass (0 = the whole step's batch). Smaller values accumulate gradients.")
    max_completion_length: int = option(1024, "Longest completion in tokens.")
    temperature: float = option(1.0, "Sampling temperature for rollouts (R1 1.0).")
    top_p: float = option(1.0, "Nucleus sampling for rollouts.")
    stop: list[str] = option([], "Stop string for rollouts (repeatable; e.g. 'Question:' or a newline after few-shot "
                             "prompts of a base model): a completion ends where it first writes one; the rewards read "
                             "the text before it, and training keeps the tokens up to the one that completed it. "
                             "Logged as completions/stopped_ratio (trl's clipped_ratio counts them too: no EOS).",
                             metavar="TEXT")
    loss: str = option("grpo", "Loss: grpo (per-sequence mean, the paper), dapo (token-level), dr_grpo (Σ/(B×max length)), kimi (Kimi k1.5 mirror descent).", choices=LOSSES)
    tau: float = option(0.1, "Kimi τ: weight of the KL to the previous policy in --loss kimi.")
    beta: float = option(0.0, "KL coefficient β (k3 estimator, added to the loss; R1 0.001, DeepSeekMath 0.04).")
    ref_reset_steps: int = option(0, "Reset the reference model to the current policy every N steps (R1 400; 0 = never; needs β > 0).")
    epsilon: float = option(0.2, "Clip ε (the lower one with clip-higher).")
    epsilon_high: float | None = option(None, "Upper clip ε (DAPO clip-higher 0.28); unset: the same as --epsilon.")
    scale_rewards: str = option("group", "Advantage scaling: group (GRPO std), batch (batch std), none (Dr. GRPO).", choices=SCALES)
    mask_truncated: bool = option(False, "Leave completions cut at the max length out of the loss (DAPO overlong filtering).")
    dynamic_sampling: str = option("off", "DAPO dynamic sampling for groups with equal rewards: off, mask (drop and report), refill (generate replacements).", choices=DYNAMIC)
    refill_tries: int = option(4, "Most extra generation rounds per step for --dynamic-sampling refill.")
    sampler: str = option("random", "Prompt order: random, curriculum (easy first), prioritized (∝ 1 − success rate; Kimi k1.5).", choices=SAMPLERS)
    curriculum_column: str = option("", "Curriculum difficulty: a difficulty column, or pass_rate (easy = high pass rate). Empty = difficulty, else pass_rate.")
    curriculum_schedule: str = option("sorted", "sorted (ascending difficulty, shuffled within equal values) or window (linearly widening easy-first window).", choices=("sorted", "window"))
    priority_floor: float = option(0.05, "Prioritized sampling: smallest weight a solved prompt keeps.")
    success_reward: str = option("accuracy", "Reward whose value counts as success for prioritized sampling.")
    length_warmup_steps: int = option(0, "The length reward is 0 for the first N steps (Kimi warms up without it).")
    lang: str = option("", "Target language of the language reward (e.g. en); empty = the dataset's lang column.")
    overlong_cache: int = option(0, "DAPO L_cache in tokens for the overlong reward (0 = max-completion-length / 5, DAPO's 4096 of 20480).")
    num_iterations: int = option(1, "Policy updates per batch of rollouts (μ in GRPO).")
    learning_rate: float = option(1e-6, "Peak learning rate (DeepSeekMath 1e-6, R1 3e-6; the tiny model needs ~1e-4).")
    lr_scheduler: str = option("constant", "Learning-rate schedule (transformers name: constant, cosine, linear, ...).")
    warmup_ratio: float = option(0.0, "Fraction of steps for linear warm-up.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    max_grad_norm: float = option(1.0, "Gradient clipping norm.")
    max_steps: int = option(-1, "Optimizer steps (-1 = run --epochs over the prompts).")
    max_minutes: float = option(0.0, "Stop after this many minutes of training (checked after each step; 0 = no limit).")
    epochs: float = option(1.0, "Passes over the prompts when --max-steps is -1.")
    lora: bool = option(False, "Train LoRA adapters (peft); the saved checkpoint is merged.")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA alpha.")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_target: str = option("all-linear", "LoRA target modules: 'all-linear' or comma-separated names.")
    gradient_checkpointing: bool = option(False, "Recompute activations to save memory.")
    dtype: str = option("auto", "Weights dtype.", choices=("auto", "float32", "bfloat16", "float16"))
    rollout: str = option("auto", "Rollouts without vLLM: auto (r1kit's CUDA-graph decode loop on a GPU, transformers generate on a CPU), fast (r1kit's loop everywhere), hf (transformers generate, static cache on a GPU).", choices=("auto", "fast", "hf"))
    rollout_cache: str = option("release", "GPU rollouts with r1kit's loop: release (free the KV cache and CUDA graphs after each generation: training keeps the memory trl's own path gives it) or keep (hold them through training: ~5% faster steps, more memory).", choices=("release", "keep"))
    reward_model: str = option("", "Sequence-classification checkpoint scored by --reward reward_model=W (R1's all-scenario RL stage).")
    vllm_server: str = option("", "Base URL of a running `trl vllm-serve` (server mode, e.g. http://host:8000); rollouts go there instead of colocated vLLM.")
    use_vllm: str = option("auto", "Rollouts with vLLM (colocate): auto = when vllm is installed and a GPU is present.", choices=VLLM)
    vllm_gpu_memory: float = option(0.3, "Share of GPU memory vLLM may take in colocate mode.")
    logging_steps: int = option(1, "Log every N steps.")
    save_steps: int = option(0, "Save a trainer checkpoint every N steps (0 = only at the end when --keep-checkpoints).")
    keep_checkpoints: bool = option(False, "Keep trainer checkpoints in OUT/checkpoints after a successful run.")
    resume: str = option("", "Resume: 'auto' (from this output's interrupted run) or a checkpoint folder.")
    report_to: str = option("none", "Passed to trl/transformers report_to (e.g. wandb, tensorboard).")
    kl_warn: float = option(1.0, "Warn once when the logged KL to the reference exceeds this.")
    hacking_window: int = option(10, "Logs over which 'format reward up, accuracy down' raises a reward-hacking warning.")
    live: bool = option(True, "Show the rich live metrics view.")

    def __post_init__(self) -> None:
        if self.epsilon_high is None:  # trl's rule: no clip-higher unless asked for
            self.epsilon_high = self.epsilon

    @classmethod
    def fit_preset(cls, preset: dict, given: dict) -> dict:
        """Preset values that cannot apply to this run step aside (the same values given explicitly
        are errors in `validate`): a KL weight next to --loss kimi (its KL term is τ's), and a
        reference reset without a reference model (β = 0) or with LoRA (the reference is the base)."""
        preset = dict(preset)
        if given.get("loss", preset.get("loss")) == "kimi" and "beta" not in given:
            preset.pop("beta", None)
        beta = given.get("beta", preset.get("beta", cls.beta))
        if (beta == 0 or given.get("lora")) and "ref_reset_steps" not in given:
            preset.pop("ref_reset_steps", None)
        return preset

    @property
    def completions_per_step(self) -> int:
        return self.generation_batch_size or self.prompts_per_step * self.num_generations

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise R1kitError("--data is required: the prompt dataset")
        for check in (_check_batch, _check_optimiser, _check_reference, _check_sampling, _check_ranges):
            check(self)
        if self.template != "auto":
            from r1kit.data import get_template

            get_template(self.template)
        from r1kit.training import require_extras

        require_extras(self.report_to, vllm="--use-vllm on" if self.use_vllm == "on" else "")  # before any model loads

    def reward_params(self, prefill: str = "") -> dict:
        """Parameters for the registry's factory rewards (each takes the keys it knows)."""
        cache = self.overlong_cache or max(1, self.max_completion_length // 5)
        return {"prefill": prefill or None, "lang": self.lang or None, "max_len": self.max_completion_length,
                "cache_len": min(cache, self.max_completion_length), "warmup_steps": self.length_warmup_steps,
                "group_size": self.num_generations, "checkpoint": self.reward_model or None}

    def reward_specs(self, prefill: str = "") -> list:
        """The --reward list resolved to RewardSpecs and checked against the run (done once, in
        `prepare_inputs`, where the template's prefill is known)."""
        from r1kit.rewards import resolve_reward

        if not self.reward:
            raise R1kitError("give at least one --reward NAME=WEIGHT, e.g. --reward accuracy=1")
        specs = [resolve_reward(spec, self.reward_params(prefill)) for spec in self.reward]
        _check_rewards(self, [spec.name for spec in specs])
        return specs


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _check_batch(cfg: Config) -> None:
    """Groups of G completions, and a step's batch that splits into micro-batches on every process
    (trl: generation_batch_size divisible by per_device_train_batch_size × num_processes)."""
    G, world = cfg.num_generations, _world()
    if G < 2:
        raise R1kitError(f"--num-generations (G={G}) must be >= 2: GRPO's advantage compares the G completions of a prompt")
    if cfg.generation_batch_size and cfg.generation_batch_size % G:
        raise R1kitError(f"--generation-batch-size ({cfg.generation_batch_size}) must be divisible by "
                         f"--num-generations ({G}) so that every prompt's group is complete")
    if cfg.prompts_per_step < 1:
        raise R1kitError(f"--prompts-per-step ({cfg.prompts_per_step}) must be >= 1")
    per_step = cfg.completions_per_step
    micro = cfg.batch_size or per_step // world
    if micro < 1 or per_step % (micro * world):
        given = (f"--batch-size ({micro})" if cfg.batch_size
                 else f"the per-device batch ({per_step} // {world} processes = {micro}, from --batch-size 0)")
        raise R1kitError(
            f"a step's batch of {per_step} completions ({per_step // G} prompts × G={G}) must be divisible by "
            f"{given} × {world} processes (WORLD_SIZE) = {micro * world} "
            f"(trl: generation_batch_size ({per_step}) must be divisible by per_device_train_batch_size × num_processes); "
            f"change --prompts-per-step or --batch-size")
    if cfg.max_completion_length < 1:
        raise R1kitError(f"--max-completion-length ({cfg.max_completion_length}) must be >= 1")


def _check_optimiser(cfg: Config) -> None:
    """Step count, learning rate and the loss's own coefficients."""
    if cfg.max_steps == 0 or (cfg.max_steps < 0 and cfg.epochs <= 0):
        raise R1kitError(f"set --max-steps > 0 (got {cfg.max_steps}) or --epochs > 0 (got {cfg.epochs})")
    if cfg.num_iterations < 1:
        raise R1kitError(f"--num-iterations ({cfg.num_iterations}) must be >= 1")
    if cfg.learning_rate <= 0:
        raise R1kitError(f"--learning-rate ({cfg.learning_rate}) must be > 0")
    if not 0 <= cfg.warmup_ratio < 1:
        raise R1kitError(f"--warmup-ratio ({cfg.warmup_ratio}) must be in [0, 1)")
    if not 0 < cfg.epsilon < 1 or cfg.epsilon_high <= 0:
        raise R1kitError(f"--epsilon ({cfg.epsilon}) must be in (0, 1) and --epsilon-high ({cfg.epsilon_high}) > 0")
    if cfg.tau <= 0:
        raise R1kitError(f"--tau ({cfg.tau}) must be > 0")
    if cfg.temperature <= 0:
        raise R1kitError(f"--temperature ({cfg.temperature}) must be > 0")


def _check_reference(cfg: Config) -> None:
    """The KL term needs a reference model, and R1's reference reset needs one it can overwrite."""
    if cfg.beta < 0:
        raise R1kitError(f"--beta ({cfg.beta}) must be >= 0")
    if cfg.loss == "kimi" and cfg.beta != 0:
        raise R1kitError(f"--loss kimi carries its own KL term (--tau); set --beta 0 (got {cfg.beta})")
    if cfg.ref_reset_steps < 0:
        raise R1kitError(f"--ref-reset-steps ({cfg.ref_reset_steps}) must be >= 0")
    if cfg.ref_reset_steps and cfg.beta == 0:
        raise R1kitError(f"--ref-reset-steps {cfg.ref_reset_steps} needs --beta > 0 (with β = 0 there is no reference model)")
    if cfg.ref_reset_steps and cfg.lora:
        raise R1kitError("--ref-reset-steps needs full fine-tuning: with --lora the reference is the base model "
                         "(adapters off); set --ref-reset-steps 0")


def _check_sampling(cfg: Config) -> None:
    """DAPO dynamic sampling, the Kimi prompt samplers and the vLLM server client."""
    if cfg.vllm_server and importlib.util.find_spec("vllm") is None:  # trl's client needs vllm too
        raise R1kitError(f"--vllm-server {cfg.vllm_server} needs the vllm package here too (pip install 'r1kit[vllm]')")
    if cfg.dynamic_sampling == "refill" and _world() > 1:
        raise R1kitError(f"--dynamic-sampling refill runs on one process (found {_world()}); use --dynamic-sampling mask")
    if cfg.dynamic_sampling == "refill" and cfg.refill_tries < 1:
        raise R1kitError(f"--refill-tries ({cfg.refill_tries}) must be >= 1")
    if not 0 < cfg.priority_floor <= 1:
        raise R1kitError(f"--priority-floor ({cfg.priority_floor}) must be in (0, 1]")
    if any(not s for s in cfg.stop):
        raise R1kitError("--stop needs a non-empty string")
    if cfg.stop and cfg.mask_truncated:
        # trl counts a completion without a final EOS as truncated, and one ended by a stop string has none
        raise R1kitError("--mask-truncated would leave every completion ended by a --stop string out of the loss "
                         "(trl sees no EOS at its end); drop one of them")


def _check_ranges(cfg: Config) -> None:
    for flag, value in (("max-minutes", cfg.max_minutes), ("overlong-cache", cfg.overlong_cache),
                        ("limit", cfg.limit), ("length-warmup-steps", cfg.length_warmup_steps)):
        if value < 0:
            raise R1kitError(f"--{flag} ({value}) must be >= 0")


def _check_rewards(cfg: Config, names: list[str]) -> None:
    """What the resolved rewards ask of the run."""
    if len(set(names)) != len(names):
        raise R1kitError(f"a reward is given twice in --reward {' '.join(cfg.reward)}")
    per_step, world, G = cfg.completions_per_step, _world(), cfg.num_generations
    if "length" in names and world > 1 and (per_step // world) % G:
        # trl scores each process's slice of the step; the length reward needs whole groups there
        raise R1kitError(
            f"--reward length needs each process to hold whole groups: {per_step} completions / {world} processes "
            f"= {per_step // world} per process is not a multiple of G={G}; make --prompts-per-step a multiple of {world}")
    if cfg.sampler == "prioritized" and cfg.success_reward not in names:
        raise R1kitError(f"--sampler prioritized reads success from --success-reward {cfg.success_reward!r}, "
                         f"which is not among the rewards ({', '.join(names)})")


# ---------------------------------------------------------------------------------------------
# run: inputs are checked (tokenizer and dataset only) before the model loads


def prepare_inputs(cfg: Config):
    """Check the output, model spec, tokenizer, rewards and dataset; return (tokenizer, dataset,
    template, reward specs): the rewards are resolved here, once, with the template's prefill.

    Loads no model. The dataset gets the prompt (rendered by the template; chat templates that
    pre-fill the reply, like chat-think's "<think>\\n", are rendered to text here so the prefill
    is part of the prompt), the reward columns, a `prefill` column for the judge and the format
    rewards (also when the tokenizer's own chat template pre-fills "<think>", as R1 distills'
    do) and an `r1kit_index` column that maps rollouts back to prompts for prioritized sampling.
    Rows whose gold the judge cannot score are left out (`_screen_golds`).
    """
    from r1kit.data import is_chat_template, prepare_dataset, template_prefill
    from r1kit.models import load_tokenizer, resolve_checkpoint_dir
    from r1kit.outputs import check_output_free
    from r1kit.rewards import required_columns
    from r1kit.rl.trainer import INDEX_COLUMN

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    has_chat = getattr(tokenizer, "chat_template", None) is not None
    template = cfg.template if cfg.template != "auto" else ("chat" if has_chat else "raw")
    if is_chat_template(template) and not has_chat:
        source = f" (from --preset {cfg.preset})" if PRESETS.get(cfg.preset, {}).get("template") == template else ""
        raise R1kitError(f"--template {template}{source} renders chat messages, but the tokenizer of {cfg.model} has "
                         "no chat template; use --template r1-zero or raw, or a model with a chat template")
    prefill = template_prefill(template)
    specs = cfg.reward_specs(prefill)
    needs = {spec.name: sorted(required_columns(text, cfg.reward_params())) for text, spec in zip(cfg.reward, specs)}
    try:
        ds = prepare_dataset(cfg.data, task=cfg.task or None, split=cfg.split, prompt_field=cfg.prompt_field or None,
                             answer_field=cfg.answer_field or None, template=template,
                             system_prompt=cfg.system_prompt or None, limit=cfg.limit or None, seed=cfg.seed)
    except R1kitError as err:
        wanting = [name for name, cols in needs.items() if "answer" in cols]
        if "gold answer" in str(err) and wanting:
            raise R1kitError(f"reward {wanting[0]!r} needs a gold answer column, and {err}") from err
        raise
    for name, cols in needs.items():
        missing = [c for c in cols if c not in ds.column_names]
        if missing:
            hint = " (or pass --lang, e.g. --lang en)" if missing == ["lang"] else ""
            raise R1kitError(f"reward {name!r} needs column(s) {', '.join(missing)}, which {cfg.data} does not "
                             f"provide (columns after preparation: {', '.join(ds.column_names)}){hint}")
    if cfg.sampler == "curriculum":
        ds = _attach_difficulty(ds, cfg)  # before screening: it may align columns of the raw data by row
    ds = _screen_golds(cfg, ds, {c for cols in needs.values() for c in cols})
    prompts_needed = cfg.completions_per_step // cfg.num_generations
    if len(ds) < prompts_needed:
        raise R1kitError(f"{cfg.data} has {len(ds)} prompts but one step needs {prompts_needed} distinct prompts "
                         f"({cfg.completions_per_step} completions / G={cfg.num_generations}); lower --prompts-per-step")
    if prefill:
        def render(row):
            text = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
            # an R1-distill chat template already ends with "<think>\n": do not open a second block
            return {"prompt": text if text.rstrip().endswith(prefill.strip()) else text + prefill}

        ds = ds.map(render, keep_in_memory=True)
    elif is_chat_template(template):
        from r1kit.rewards._text import detect_think_prefill

        prefill = detect_think_prefill(tokenizer)  # trl renders these prompts; rewards see messages
    if prefill:
        # the judge and the format rewards read prefill + completion (reasoning left open is no answer)
        ds = ds.add_column("prefill", [prefill] * len(ds))
    ds = ds.add_column(INDEX_COLUMN, list(range(len(ds))))
    return tokenizer, ds, template, specs


def _screen_golds(cfg: Config, ds, needed: set[str]):
    """Leave out the rows whose gold the judge cannot score (r1kit.judge rule 5), before training:
    they could never be rewarded nor counted wrong. Their indices in the prepared data are kept on
    cfg._unscorable (written to metrics.jsonl and the manifest by `run`)."""
    from r1kit.judge import gold_problem, task_kind

    cfg._unscorable = {}
    if not needed & {"answer", "tests"}:
        return ds
    golds = ds["answer"] if "answer" in ds.column_names else [None] * len(ds)
    tasks = ds["task"] if "task" in ds.column_names else [None] * len(ds)
    tests = ds["tests"] if "tests" in ds.column_names else [None] * len(ds)
    for i, (gold, task, test) in enumerate(zip(golds, tasks, tests)):
        code = task_kind(task) == "code"
        if (code and "tests" in needed) or (not code and "answer" in needed):
            problem = gold_problem(gold, task, test)
            if problem:
                cfg._unscorable[i] = problem
    if not cfg._unscorable:
        return ds
    if len(cfg._unscorable) == len(ds):
        first = next(iter(cfg._unscorable.values()))
        raise R1kitError(f"no row of {cfg.data} has a gold answer the judge can score (e.g. {first}); "
                         "check --answer-field and --task")
    return ds.select([i for i in range(len(ds)) if i not in cfg._unscorable], keep_in_memory=True)


def _attach_difficulty(ds, cfg: Config):
    """Keep (or fetch from the raw data) the column the curriculum sorts on, as `r1kit_difficulty`."""
    column = cfg.curriculum_column or ("difficulty" if "difficulty" in ds.column_names else "pass_rate")
    if column not in ds.column_names:
        from r1kit.data import load_dataset_any

        raw = load_dataset_any(cfg.data, split=cfg.split)
        if column not in raw.column_names:
            raise R1kitError(f"--sampler curriculum sorts on column {column!r}, which {cfg.data} does not have "
                             f"(columns: {', '.join(raw.column_names)}); pass --curriculum-column")
        if cfg.limit and cfg.limit < len(raw):
            # the same seeded subset prepare_dataset took
            raw = raw.shuffle(seed=cfg.seed, keep_in_memory=True).select(range(cfg.limit), keep_in_memory=True)
        ds = ds.add_column(column, raw[column])
    from r1kit.rl.samplers import difficulty_from_columns

    values = ds[column]
    diff = difficulty_from_columns(pass_rate=values) if column == "pass_rate" else difficulty_from_columns(values)
    return ds.add_column("r1kit_difficulty", diff)


def _named(fn, name: str):
    """The reward under its registry name, so trl logs it as rewards/<name>/mean."""

    def reward(prompts=None, completions=(), completion_ids=None, **kwargs):
        return fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)

    reward.__name__ = name
    return reward


def run(cfg: Config):
    from r1kit.rl.trl_args import use_vllm

    tokenizer, ds, template, specs = prepare_inputs(cfg)
    vllm = use_vllm(cfg)

    import torch
    from transformers import PrinterCallback

    from r1kit.models import load_model, save_model
    from r1kit.outputs import is_main_process, stage_output
    from r1kit.rl.callbacks import GRPOMetricsCallback, TimeLimit
    from r1kit.rl.trainer import R1GRPOTrainer, R1Options
    from r1kit.rl.trl_args import grpo_args, reference_snapshot
    from r1kit.training import lora_config, resolve_resume

    rewards = [_named(s.fn, s.name) for s in specs]
    options = R1Options(
        loss=cfg.loss, tau=cfg.tau, dynamic_sampling=cfg.dynamic_sampling, refill_tries=cfg.refill_tries,
        sampler=cfg.sampler, curriculum_schedule=cfg.curriculum_schedule,
        difficulties=ds["r1kit_difficulty"] if cfg.sampler == "curriculum" else None,
        priority_floor=cfg.priority_floor, success_reward=cfg.success_reward,
        initial_success=ds["pass_rate"] if cfg.sampler == "prioritized" and "pass_rate" in ds.column_names else None,
        fast_rollout={"auto": "auto", "fast": "on", "hf": "off"}[cfg.rollout],
        fast_rollout_keep_cache=cfg.rollout_cache == "keep", stop=tuple(cfg.stop),
    )
    torch.manual_seed(cfg.seed)
    inputs = {"model": cfg.model, "data": cfg.data, "preset": cfg.preset or None, "template": template}
    with stage_output(cfg, "grpo", inputs, keep_checkpoints=cfg.keep_checkpoints, resume=bool(cfg.resume)) as out:
        from r1kit.judge import exclusion_summary

        excluded = exclusion_summary(sorted(getattr(cfg, "_unscorable", {})))
        out.extra.update(excluded)
        if excluded["unscorable_gold"]:
            out.log({"event": "unscorable_gold", "count": excluded["unscorable_gold"],
                     "ids": excluded["unscorable_gold_ids"], "reasons": {str(i): why for i, why in
                                                                       list(cfg._unscorable.items())[:20]}})
            if is_main_process():
                print(f"{excluded['unscorable_gold']} prompt(s) left out: the judge cannot score their gold answer "
                      f"(rows {', '.join(map(str, excluded['unscorable_gold_ids'][:20]))}; see metrics.jsonl)")
        model = load_model(cfg.model, dtype=cfg.dtype, seed=cfg.seed)
        # before GRPOConfig starts the process group: once it is up, save_pretrained writes on
        # rank 0 only and the other ranks would find an empty reference folder
        ref_snapshot = reference_snapshot(cfg, model, tokenizer)
        args = grpo_args(cfg, str(out.checkpoints_dir), vllm, [spec.weight for spec in specs])
        callback = GRPOMetricsCallback(out, kl_threshold=cfg.kl_warn, window=cfg.hacking_window,
                                       live=cfg.live and is_main_process(), max_minutes=cfg.max_minutes)
        try:
            trainer = R1GRPOTrainer(
                model=model, reward_funcs=rewards, args=args, train_dataset=ds, processing_class=tokenizer,
                peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target, model) if cfg.lora else None,
                callbacks=[callback, *([TimeLimit(cfg.max_minutes)] if cfg.max_minutes else [])], r1=options,
            )
        finally:
            if ref_snapshot:
                shutil.rmtree(ref_snapshot, ignore_errors=True)
        trainer.remove_callback(PrinterCallback)  # the live view and metrics.jsonl replace its prints
        with out.timed("train"):
            result = trainer.train(resume_from_checkpoint=resolve_resume(cfg.resume, out.checkpoints_dir))
        if cfg.lora:
            if is_main_process():
                save_model(trainer.model.merge_and_unload(), tokenizer, out.model_dir)
        elif trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
            trainer.save_model(str(out.model_dir))  # gathers sharded weights, writes on rank 0
        elif is_main_process():
            save_model(trainer.accelerator.unwrap_model(trainer.model), tokenizer, out.model_dir)
        out.log({"event": "summary", **result.metrics, "prompts": len(ds), "warnings": list(callback.warned.values())})
        out.extra.update(global_step=trainer.state.global_step, prompts=len(ds), warnings=list(callback.warned))
    if is_main_process():
        print(f"wrote {out.final}")
    return out.final
