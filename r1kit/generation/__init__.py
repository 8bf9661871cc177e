"""Generation backends: one interface (`GenerationBackend.generate`), two implementations.

- "hf" (default): transformers `generate`, batched and left-padded, static compiled KV
  cache on CUDA (r1kit/generation/hf.py);
- "vllm": optional extra (r1kit/generation/vllm_backend.py).

Usage::

    from r1kit.generation import SamplingParams, get_backend
    backend = get_backend("hf", model, tokenizer)
    samples = backend.generate(prompts, SamplingParams(n=4, max_new_tokens=256), prefill="<think>\\n")
"""

from r1kit.generation.base import (
    BACKENDS,
    Completion,
    GenerationBackend,
    SamplingParams,
    encode_prompts,
    get_backend,
    render_prompt,
)

__all__ = [
    "BACKENDS", "Completion", "GenerationBackend", "SamplingParams", "encode_prompts", "get_backend",
    "render_prompt",
]
