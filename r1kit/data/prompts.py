"""Prompt datasets for the stages that sample: the template resolved, the rows prepared, both checked.

Every sampling stage (grpo's rollouts, rejection-sample, distill's teacher, dpo-shorten's own
samples, evaluate) reads its prompts the same way, with the options of r1kit.options.PromptOptions:

1. `resolve_template`: `--template auto` becomes `chat` when the tokenizer has a chat template,
   else `raw`; a chat template asked of a tokenizer without one is an error here, before any model
   loads.
2. `load_prompts`: the task adapter maps the columns, the template renders the prompt
   (r1kit.data.tasks.prepare_dataset, called with the options by `prepare_prompt_dataset`), and
   the columns the chosen rewards read are checked.
3. `reply_prefill`: what generation writes at the start of every reply (`--prefill`, else the
   template's, e.g. chat-think's "<think>\\n").

Nothing here loads a model; tokenizers are passed in.
"""

from __future__ import annotations

from typing import Any

from r1kit.errors import R1kitError


def has_chat_template(tokenizer: Any) -> bool:
    return getattr(tokenizer, "chat_template", None) is not None


def resolve_template(template: str, tokenizer: Any, model: str, flag: str, origin: str = "") -> str:
    """The template to render prompts with: 'auto' -> chat or raw by the tokenizer; a template that
    renders chat messages needs the tokenizer's chat template (R1kitError naming the fix; `flag` is the
    option that named the model, e.g. --teacher; `origin` says where the template came from, e.g.
    " (from --preset r1)")."""
    from r1kit.data.templates import is_chat_template

    if template == "auto":
        return "chat" if has_chat_template(tokenizer) else "raw"
    if is_chat_template(template) and not has_chat_template(tokenizer):
        raise R1kitError(
            f"--template {template}{origin} renders chat messages, but the tokenizer of {flag} {model} has no "
            "chat template; use --template auto, raw or r1-zero, or a model with a chat template"
        )
    return template


def check_chat_prompts(tokenizer: Any, dataset: Any, model: str, flag: str) -> None:
    """Prompts that are chat messages need the tokenizer's chat template: fail before generating."""
    if len(dataset) and not isinstance(dataset[0]["prompt"], str) and not has_chat_template(tokenizer):
        raise R1kitError(
            f"the prompts are chat messages but the tokenizer of {flag} {model} has no chat template; "
            "use --template raw or r1-zero, or a model whose tokenizer has a chat template"
        )


def prepare_prompt_dataset(
    cfg: Any, template: str, *, split: str | None = None, limit: int | None = None
) -> Any:
    """r1kit.data.prepare_dataset called with the options `cfg` (r1kit.options.PromptOptions):
    the one place that maps --data, --task, --split, --prompt-field, --answer-field,
    --system-prompt, --limit and --seed to its arguments, for every stage that reads prompts.
    `template` is already resolved (`resolve_template`); `split` and `limit` replace cfg's where
    given (evaluate's default split, a caller's own limit); None = cfg's."""
    from r1kit.data import prepare_dataset

    return prepare_dataset(
        cfg.data,
        task=cfg.task or None,
        split=cfg.split if split is None else split,
        prompt_field=cfg.prompt_field or None,
        answer_field=cfg.answer_field or None,
        template=template,
        system_prompt=cfg.system_prompt or None,
        limit=(cfg.limit if limit is None else limit) or None,
        seed=cfg.seed,
    )


def load_prompts(cfg: Any, template: str, *, limit: int | None = None) -> Any:
    """The prepared prompt dataset (prompt, question, answer, task, ...) for options `cfg`
    (r1kit.options.PromptOptions, and RewardOptions when it has them), with the columns every
    --reward reads checked: R1kitError before any model loads."""
    from r1kit.data import require_columns
    from r1kit.rewards import required_columns
    from r1kit.sampling import reward_params

    ds = prepare_prompt_dataset(cfg, template, limit=limit)
    for spec in getattr(cfg, "reward", ()):
        needed = sorted(required_columns(spec, reward_params(cfg)))
        hint = f"--reward {spec} reads them" + (
            "; or give the target language with --lang" if "lang" in needed else ""
        )
        require_columns(ds, needed, cfg.data, hint)
    return ds


def reply_prefill(cfg: Any, template: str) -> str:
    """What every reply starts with: --prefill when given, else the template's (chat-think: "<think>\\n")."""
    from r1kit.data.templates import template_prefill

    prefill = getattr(cfg, "prefill", None)
    return template_prefill(template) if prefill is None else prefill
