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

Backends (`get_backend`): "hf" (transformers `generate`), "fast" (r1kit's decode loop:
CUDA graphs on a GPU, eager on CPU; r1kit/generation/fast_backend.py), "vllm", and "auto", which
picks "fast" for a model on a CUDA GPU whose architecture the loop supports and "hf" otherwise,
and prints which in one line.

This module imports nothing heavy; backends import torch / vllm themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from r1kit.errors import R1kitError
from r1kit.lookup import check_name, lookup

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
            raise R1kitError(
                f"temperature ({self.temperature}) must be > 0 for sampling; use greedy decoding instead"
            )
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


def finish_completion(
    tokenizer: Any, ids: list[int], eos_ids: list[int], max_new_tokens: int, stop: list[str] = ()
) -> Completion:
    """The Completion for one row of generated ids (without the prefill; text gets it later).

    Everything from the first EOS on is dropped (backends pad finished rows); a stop string cuts the
    text before its first occurrence and keeps the tokens up to the one that completed it.
    Shared by the hf and fast backends, so both count tokens and truncation the same way.
    """
    eos = set(eos_ids)
    end = next((k for k, t in enumerate(ids) if t in eos), None)
    kept = list(ids[:end]) if end is not None else list(ids[:max_new_tokens])
    text = tokenizer.decode(kept, skip_special_tokens=True)
    if stop:
        cut, at = cut_at_stop(text, list(stop))
        if at is not None:
            kept = kept[: tokens_to_stop(tokenizer, kept, list(stop))]
            return Completion(text=cut, token_ids=kept, num_tokens=len(kept), truncated=False)
    return Completion(text=text, token_ids=kept, num_tokens=len(kept), truncated=end is None)


def tokens_to_stop(tokenizer: Any, ids: list[int], stop: list[str]) -> int:
    """Fewest leading tokens whose text holds a stop string (binary search over prefixes; a prefix's
    decoded text grows with the prefix, so "holds a stop string" is monotone)."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if cut_at_stop(tokenizer.decode(ids[:mid], skip_special_tokens=True), stop)[1] is None:
            lo = mid + 1
        else:
            hi = mid
    return hi


def generation_ids(model: Any, tokenizer: Any) -> tuple[list[int], int]:
    """(EOS ids, pad id) for generation: the model's generation_config EOS ids and the tokenizer's,
    the tokenizer's pad (else the generation config's, else the first EOS)."""
    gen = getattr(model, "generation_config", None)
    eos = _as_ids(getattr(gen, "eos_token_id", None)) + _as_ids(tokenizer.eos_token_id)
    eos_ids = list(dict.fromkeys(eos))  # ordered, unique
    if not eos_ids:
        raise ValueError("the tokenizer and the model's generation_config define no eos token")
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = getattr(gen, "pad_token_id", None)
    return eos_ids, int(pad) if pad is not None else eos_ids[0]


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    if hasattr(value, "tolist"):
        value = value.tolist()
        return [int(v) for v in value] if isinstance(value, list) else [int(value)]
    return [int(value)]


class GenerationBackend:
    """Samples completions. Subclasses implement `generate`."""

    name = "base"

    def generate(
        self, prompts: list[Prompt], params: SamplingParams, prefill: str = ""
    ) -> list[list[Completion]]:
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
    "fast": "r1kit.generation.fast_backend:FastBackend",
    "vllm": "r1kit.generation.vllm_backend:VLLMBackend",
}
# What a stage's --backend accepts ("auto" resolves to fast or hf, see choose_backend).
BACKEND_CHOICES = ("auto", "fast", "hf", "vllm")


def choose_backend(model: Any) -> tuple[str, str]:
    """What "auto" means for a loaded model: ("fast", why) on a CUDA GPU for an architecture r1kit's
    decode loop supports, else ("hf", why not)."""
    from r1kit.generation.fast import unsupported_reason

    device = getattr(model, "device", None)
    if getattr(device, "type", None) != "cuda":
        return "hf", "not on a CUDA GPU"
    reason = unsupported_reason(model)
    if reason:
        return "hf", f"r1kit's decode loop cannot drive it: {reason}"
    return "fast", f"CUDA GPU, {model.config.model_type} is supported by r1kit's decode loop"


def get_backend(name: str | None, model: Any, tokenizer: Any = None, **kwargs: Any) -> GenerationBackend:
    """Build a backend by name: "hf" (default; `model` is a loaded transformers model), "fast" (a
    loaded model of a supported architecture), "auto" (fast or hf, see `choose_backend`; prints
    which), "vllm" (`model` is a checkpoint folder or hub id), or "pkg.mod:Class". kwargs go to the
    constructor (the hf and fast backends take the same ones)."""
    name = name or "hf"
    if name == "auto":
        name, why = choose_backend(model)
        label = "fast (r1kit decode loop)" if name == "fast" else "hf (transformers generate)"
        print(f"generation backend: {label}; auto: {why}", flush=True)
    check_name(name, BACKEND_CHOICES, "generation backend", dotted=True)
    return lookup(BACKENDS, name, "generation backend", dotted=True, load=True)(model, tokenizer, **kwargs)
