"""Generation backends: one interface (`GenerationBackend.generate`), three implementations.

- "hf" (default): transformers `generate`, batched and left-padded, static compiled KV
  cache on CUDA (r1kit/generation/hf.py);
- "fast": r1kit's own decode loop (CUDA graphs on a GPU, eager on CPU; per-architecture adapters
  in arch.py) for the architectures it supports (r1kit/generation/fast_backend.py);
- "vllm": optional extra (r1kit/generation/vllm_backend.py);
- "auto": "fast" on a CUDA GPU when the model is supported, else "hf" (prints which).

Usage::

    from r1kit.generation import SamplingParams, get_backend
    backend = get_backend("hf", model, tokenizer)
    samples = backend.generate(prompts, SamplingParams(n=4, max_new_tokens=256), prefill="<think>\\n")
"""

from r1kit.generation.base import (
    BACKEND_CHOICES,
    BACKENDS,
    Completion,
    GenerationBackend,
    SamplingParams,
    choose_backend,
    encode_prompts,
    get_backend,
    render_prompt,
)

__all__ = [
    "BACKENDS",
    "BACKEND_CHOICES",
    "Completion",
    "GenerationBackend",
    "SamplingParams",
    "choose_backend",
    "encode_prompts",
    "get_backend",
    "render_prompt",
]
