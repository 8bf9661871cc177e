"""vLLM backend (optional extra: pip install 'r1kit[vllm]').

Same contract as the transformers backend (r1kit/generation/base.py): prompts
are rendered and tokenized by r1kit (`encode_prompts`), so both backends feed a
model exactly the same token ids, and vLLM receives them as token prompts.
`finish_reason == "length"` marks a truncated completion. Stop strings go to vLLM's
`stop=` (the text comes back without them; token_ids keep the tokens that formed them). vLLM needs a
checkpoint folder or a hub id, not an in-memory model; save a "tiny" model
first (r1kit.models.save_model) to use it here.
"""

from __future__ import annotations

from typing import Any

from r1kit.errors import R1kitError
from r1kit.generation.base import Completion, GenerationBackend, Prompt, SamplingParams, encode_prompts

MISSING = "the vllm backend needs the vllm extra: pip install 'r1kit[vllm]'"


class VLLMBackend(GenerationBackend):
    """`model`: checkpoint folder or hub id. `tokenizer`: used to render prompts (None: vLLM's).
    kwargs go to `vllm.LLM` (e.g. dtype, gpu_memory_utilization, max_model_len)."""

    name = "vllm"

    def __init__(self, model: Any, tokenizer: Any = None, **llm_kwargs: Any) -> None:
        try:
            import vllm
        except ImportError as err:
            raise R1kitError(MISSING) from err
        if not isinstance(model, (str, bytes)) and not hasattr(model, "__fspath__"):
            raise R1kitError(
                "the vllm backend loads the model itself: pass a checkpoint folder or hub id, not a loaded model"
            )
        self._vllm = vllm
        self.llm = vllm.LLM(model=str(model), **llm_kwargs)
        self.tokenizer = tokenizer if tokenizer is not None else self.llm.get_tokenizer()

    def generate(
        self, prompts: list[Prompt], params: SamplingParams, prefill: str = ""
    ) -> list[list[Completion]]:
        greedy = params.greedy
        sampling = self._vllm.SamplingParams(
            n=params.n,
            temperature=0.0 if greedy else params.temperature,
            top_p=1.0 if greedy else params.top_p,
            top_k=-1 if greedy or params.top_k == 0 else params.top_k,  # vLLM's "off" is -1
            max_tokens=params.max_new_tokens,
            min_tokens=params.min_new_tokens,
            seed=params.seed,
            repetition_penalty=1.0,
            stop=list(params.stop) or None,
        )
        ids = encode_prompts(self.tokenizer, prompts, prefill)
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in ids], sampling, use_tqdm=False)
        eos = {self.tokenizer.eos_token_id}
        results = []
        for out in outputs:
            samples = []
            for o in out.outputs:
                token_ids = [t for t in o.token_ids if t not in eos]
                samples.append(
                    Completion(
                        text=prefill + o.text,
                        token_ids=token_ids,
                        num_tokens=len(token_ids),
                        truncated=o.finish_reason == "length",
                    )
                )
            results.append(samples)
        return results
