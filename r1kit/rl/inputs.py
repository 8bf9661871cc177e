"""`r1kit grpo`'s inputs: the prompts prepared for trl, the rewards resolved once, golds screened.

Everything here runs before a model loads, so that a wrong template, a missing reward column or
data the judge cannot score fails in one line and writes nothing (r1kit/stages/grpo.py calls
`prepare_inputs` first). The prompts get what trl and the rewards read: the rendered prompt, the
reward columns, `prefill` (the judge reads prefill + completion) and `r1kit_index` (the samplers
map rollouts back to prompts with it).
"""

from __future__ import annotations

from r1kit.errors import R1kitError


def prepare_inputs(cfg):
    """Check the output, model spec, tokenizer, rewards and dataset; return (tokenizer, dataset,
    template, reward specs): the rewards are resolved here, once, with the template's prefill.

    Loads no model. The dataset gets the prompt (rendered by the template; chat templates that
    pre-fill the reply, like chat-think's "<think>\\n", are rendered to text here so the prefill
    is part of the prompt), the reward columns, a `prefill` column for the judge and the format
    rewards (also when the tokenizer's own chat template pre-fills "<think>", as R1 distills'
    do) and an `r1kit_index` column that maps rollouts back to prompts for prioritized sampling.
    Rows whose gold the judge cannot score are left out (`_screen_golds`). `cfg` is
    r1kit.stages.grpo.Config.
    """
    from r1kit.data import is_chat_template, template_prefill
    from r1kit.data.prompts import prepare_prompt_dataset, resolve_template
    from r1kit.models import load_tokenizer, resolve_checkpoint_dir
    from r1kit.outputs import check_output_free
    from r1kit.rewards import required_columns
    from r1kit.rl.trainer import INDEX_COLUMN

    check_output_free(cfg.output, cfg.overwrite)
    resolve_checkpoint_dir(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    from_preset = cfg.PRESETS.get(cfg.preset, {}).get("template") == cfg.template
    template = resolve_template(
        cfg.template, tokenizer, cfg.model, "--model", f" (from --preset {cfg.preset})" if from_preset else ""
    )
    prefill = template_prefill(template)
    specs = cfg.reward_specs(prefill)
    needs = {
        spec.name: sorted(required_columns(text, cfg.reward_params()))
        for text, spec in zip(cfg.reward, specs)
    }
    try:
        ds = prepare_prompt_dataset(cfg, template)
    except R1kitError as err:
        wanting = [name for name, cols in needs.items() if "answer" in cols]
        if "gold answer" in str(err) and wanting:
            raise R1kitError(f"reward {wanting[0]!r} needs a gold answer column, and {err}") from err
        raise
    for name, cols in needs.items():
        missing = [c for c in cols if c not in ds.column_names]
        if missing:
            hint = " (or pass --lang, e.g. --lang en)" if missing == ["lang"] else ""
            raise R1kitError(
                f"reward {name!r} needs column(s) {', '.join(missing)}, which {cfg.data} does not "
                f"provide (columns after preparation: {', '.join(ds.column_names)}){hint}"
            )
    if cfg.sampler == "curriculum":
        ds = _attach_difficulty(ds, cfg)  # before screening: it may align columns of the raw data by row
    ds = _screen_golds(cfg, ds, {c for cols in needs.values() for c in cols})
    prompts_needed = cfg.completions_per_rollout // cfg.num_generations
    if len(ds) < prompts_needed:
        if cfg.updates_per_rollout > 1:
            preset = cfg.PRESETS.get(cfg.preset, {}).get("updates_per_rollout") == cfg.updates_per_rollout
            source = f" (from --preset {cfg.preset})" if preset else ""
            raise R1kitError(
                f"{cfg.data} has {len(ds)} prompts but one rollout batch needs {prompts_needed} distinct "
                f"prompts (--prompts-per-step {cfg.prompts_per_step} × --updates-per-rollout "
                f"{cfg.updates_per_rollout}{source}); lower either"
            )
        raise R1kitError(
            f"{cfg.data} has {len(ds)} prompts but one step needs {prompts_needed} distinct prompts "
            f"({cfg.completions_per_step} completions / G={cfg.num_generations}); lower --prompts-per-step"
        )
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


def _screen_golds(cfg, ds, needed: set[str]):
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
        raise R1kitError(
            f"no row of {cfg.data} has a gold answer the judge can score (e.g. {first}); "
            "check --answer-field and --task"
        )
    return ds.select([i for i in range(len(ds)) if i not in cfg._unscorable], keep_in_memory=True)


def _attach_difficulty(ds, cfg):
    """Keep (or fetch from the raw data) the column the curriculum sorts on, as `r1kit_difficulty`."""
    column = cfg.curriculum_column or ("difficulty" if "difficulty" in ds.column_names else "pass_rate")
    if column not in ds.column_names:
        from r1kit.data import load_dataset_any

        raw = load_dataset_any(cfg.data, split=cfg.split)
        if column not in raw.column_names:
            raise R1kitError(
                f"--sampler curriculum sorts on column {column!r}, which {cfg.data} does not have "
                f"(columns: {', '.join(raw.column_names)}); pass --curriculum-column"
            )
        if cfg.limit and cfg.limit < len(raw):
            # the same seeded subset prepare_dataset took
            raw = raw.shuffle(seed=cfg.seed, keep_in_memory=True).select(
                range(cfg.limit), keep_in_memory=True
            )
        ds = ds.add_column(column, raw[column])
    from r1kit.rl.samplers import difficulty_from_columns

    values = ds[column]
    diff = (
        difficulty_from_columns(pass_rate=values)
        if column == "pass_rate"
        else difficulty_from_columns(values)
    )
    return ds.add_column("r1kit_difficulty", diff)
