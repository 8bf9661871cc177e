"""The generation interface shared by every backend.

`evaluate`, `rejection-sample`, `distill` and `dpo-shorten` sample completions
through one call, `backend.generate(prompts, params, prefill)`, which returns,
for each prompt, `params.n` `Completion`s. How prompts become model input is
the same in every backend (`render_prompt`):

- a prompt that is a list of chat messages is rendered with the tokenizer's
  chat template and its generation prompt (`add_generation_prompt=True`);
- a plain string is used as it is;
- `prefill` (e.g. "<think>\\n" for the R1 evaluation prompt, which forces the
  reply to open its reasoning block) is appended to the rendered prompt, and it
  is ALSO prepended to every returned `Completion.text`, so that answer
  extraction and format checks see the whole reply. `token_ids` and
  `num_tokens` cover only what the model generated, never the prefill.

Token accounting (all backends): `num_tokens` counts the generated tokens up to
but excluding the end-of-sequence token, and never padding; `truncated` is True
when no end-of-sequence token came within `max_new_tokens`.

Stop strings (`SamplingParams.stop`, e.g. "Question:" for few-shot prompts of a
base model): a sample ends at the first occurrence of any of them, like an
end-of-sequence token. `Completion.text` is cut just before it (the stop string
itself is not returned); `token_ids` / `num_tokens` keep the generated tokens up
to and including the token that completed the stop string (what the model
actually produced, as vLLM counts them); `truncated` is False for such a sample.

This module imports nothing heavy; backends import torch / vllm themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from r1kit.config import did_you_mean
from r1kit.errors import R1kitError

Prompt = str | list  # a string, or chat messages [{"role": ..., "content": ...}, ...]


@dataclass
class SamplingParams:
    """How to sample. R1's evaluation setting is temperature 0.6, top-p 0.95 (PAPERS.md).

    n: samples per prompt. greedy: argmax decoding (temperature, top_p, top_k ignored; the n
    samples of a prompt are then identical and computed once). top_k 0 = off, top_p 1.0 = off.
    batch_size: most sequences (prompts x samples) in one forward batch. min_new_tokens forces a
    length (benchmarks); seed makes a call reproducible. stop: strings that end a sample (see the
    module docstring for what the returned text and token counts then hold).
    """

    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 512
    greedy: bool = False
    seed: int = 0
    batch_size: int = 64
    min_new_tokens: int = 0
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise R1kitError(f"stop strings must be non-empty strings, got {self.stop!r}")
        if self.n < 1:
            raise R1kitError(f"number of samples per prompt ({self.n}) must be >= 1")
        if self.max_new_tokens < 1:
            raise R1kitError(f"max_new_tokens ({self.max_new_tokens}) must be >= 1")
        if self.batch_size < 1:
            raise R1kitError(f"batch_size ({self.batch_size}) must be >= 1")
        if not self.greedy and self.temperature <= 0:
            raise R1kitError(f"temperature ({self.temperature}) must be > 0 for sampling; use greedy decoding instead")
        if not 0 < self.top_p <= 1:
            raise R1kitError(f"top_p ({self.top_p}) must be in (0, 1]")
        if self.top_k < 0:
            raise R1kitError(f"top_k ({self.top_k}) must be >= 0 (0 = off)")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise R1kitError(
                f"min_new_tokens ({self.min_new_tokens}) must be between 0 and max_new_tokens ({self.max_new_tokens})"
            )


@dataclass
class Completion:
    """One sampled reply. text starts with the prefill; token_ids/num_tokens exclude it and EOS."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    num_tokens: int = 0
    truncated: bool = False


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, int | None]:
    """(text before the earliest stop string, its index in text), or (text, None) when none occurs."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    if not hits:
        return text, None
    first = min(hits)
    return text[:first], first


class GenerationBackend:
    """Samples completions. Subclasses implement `generate`."""

    name = "base"

    def generate(self, prompts: list[Prompt], params: SamplingParams, prefill: str = "") -> list[list[Completion]]:
        """For each prompt, `params.n` completions (outer list = prompts, in input order)."""
        raise NotImplementedError


def render_prompt(tokenizer: Any, prompt: Prompt, prefill: str = "") -> tuple[str, bool]:
    """(text fed to the model, whether it came from the chat template).

    A chat-rendered text already carries the template's special tokens (e.g. BOS), so backends
    tokenize it without adding special tokens again; a plain string gets them added.
    """
    if isinstance(prompt, str):
        return prompt + prefill, False
    if not isinstance(prompt, (list, tuple)) or not all(isinstance(m, dict) for m in prompt):
        raise R1kitError(f"a prompt must be a string or a list of chat messages, got {type(prompt).__name__}")
    if getattr(tokenizer, "chat_template", None) is None:
        raise R1kitError(
            "prompts are chat messages but the tokenizer has no chat template; use --template raw or "
            "r1-zero, or a model whose tokenizer has a chat template"
        )
    text = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
    return text + prefill, True


def encode_prompts(tokenizer: Any, prompts: list[Prompt], prefill: str = "") -> list[list[int]]:
    """Token ids of each rendered prompt (see `render_prompt` for special tokens)."""
    ids = []
    for prompt in prompts:
        text, chat = render_prompt(tokenizer, prompt, prefill)
        ids.append(list(tokenizer(text, add_special_tokens=not chat)["input_ids"]))
    return ids


# name -> "module:Class"; a "pkg.mod:Class" name is the dotted-import escape hatch.
BACKENDS: dict[str, str] = {
    "hf": "r1kit.generation.hf:HFBackend",
    "vllm": "r1kit.generation.vllm_backend:VLLMBackend",
}


def _import(target: str) -> Callable[..., GenerationBackend]:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise R1kitError(f"cannot import generation backend {target!r}: {err}") from err


def get_backend(name: str | None, model: Any, tokenizer: Any = None, **kwargs: Any) -> GenerationBackend:
    """Build a backend by name: "hf" (default; `model` is a loaded transformers model) or "vllm"
    (`model` is a checkpoint folder or hub id), or "pkg.mod:Class". kwargs go to the constructor."""
    name = name or "hf"
    if name in BACKENDS:
        return _import(BACKENDS[name])(model, tokenizer, **kwargs)
    if ":" in name:
        return _import(name)(model, tokenizer, **kwargs)
    raise R1kitError(
        f"unknown generation backend {name!r}{did_you_mean(name, BACKENDS)}; choose one of {', '.join(BACKENDS)}"
    )
