"""The "fast" generation backend: r1kit's decode loop (r1kit/generation/fast.py) behind the
`GenerationBackend` interface, so `evaluate`, `rejection-sample`, `distill` and `dpo-shorten`
sample with it on a GPU (`--backend fast`, or `auto`).

Same contract as the transformers backend (r1kit/generation/base.py), so the two are
interchangeable: prompts are rendered and tokenized by `encode_prompts` (chat template or plain
text, plus the prefill), expanded into (prompt, sample) rows, sorted longest first and generated
`batch_size` rows at a time; greedy samples of a prompt are computed once and copied; every row
ends like the hf backend's (`finish_completion`: text cut at the first stop string, `token_ids`
up to the token that completed it, `num_tokens` without EOS, `truncated` when neither EOS nor a
stop string came). Greedy completions equal the hf backend's (tests/test_fast_backend.py);
sampled ones follow the same distribution with another random stream.

Stop strings: every `check_every` decode steps the loop hands each live row's tokens to
`_stop_check`, which decodes only the last few tokens (enough to hold the longest stop string
plus the new tokens) and, on a hit, confirms it on the row's whole text; confirmed rows stop
there. The final text is cut by `finish_completion` on the whole text either way, so a check that
misses a stop (it cannot, short of empty-text tokens) costs only extra tokens, never a different
result.

On CUDA the decode steps run as CUDA graphs (captured per batch bucket and attended-length block;
the first call pays the captures), on CPU eagerly: the same computation, so the backend can be
tested on CPU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from r1kit.errors import R1kitError
from r1kit.generation.base import (
    Completion,
    GenerationBackend,
    Prompt,
    SamplingParams,
    cut_at_stop,
    encode_prompts,
    finish_completion,
    generation_ids,
)

# SamplingParams fields that FastGenerator.generate takes under the same name and meaning
DECODING = ("max_new_tokens", "temperature", "top_p", "top_k", "greedy", "min_new_tokens")


class FastBackend(GenerationBackend):
    """`model`: a loaded causal LM of a supported architecture (r1kit.generation.fast.unsupported_reason).

    compile: FastGenerator's mode ("auto" = CUDA graphs on CUDA, eager elsewhere). progress: a rich
    progress bar over rows. static_cache is accepted for symmetry with the hf backend and ignored
    (the loop always keeps a static cache). check_every: decode steps between stop checks.
    """

    name = "fast"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        compile: bool | str = "auto",
        progress: bool = False,
        static_cache: bool = True,
        check_every: int = 16,
    ) -> None:
        from r1kit.generation.fast import unsupported_reason

        reason = unsupported_reason(model)
        if reason:
            raise R1kitError(
                f"the fast generation backend cannot drive this model: {reason}; use --backend hf"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.compile = compile
        self.progress = progress
        self.check_every = check_every
        self.eos_ids, self.pad_id = generation_ids(model, tokenizer)
        self.generator = None  # FastGenerator, built on first use and grown when a call needs more

    def _fast_generator(self, rows: int, needed_len: int):
        from r1kit.generation.fast import FastGenerator

        gen = self.generator
        if gen is None or rows > gen.max_batch or needed_len > gen.max_len:
            if gen is not None:
                gen.release()
            # Some margin, so a slightly longer prompt later does not rebuild (and re-capture).
            max_len = -(-(needed_len + 64) // 64) * 64
            self.generator = gen = FastGenerator(
                self.model,
                max_batch=rows,
                max_len=max_len,
                compile=self.compile,
                eos_token_ids=self.eos_ids,
                pad_token_id=self.pad_id,
                check_every=self.check_every,
            )
        return gen

    def generate(
        self, prompts: list[Prompt], params: SamplingParams, prefill: str = ""
    ) -> list[list[Completion]]:
        prompt_ids = encode_prompts(self.tokenizer, prompts, prefill)
        empty = [i for i, ids in enumerate(prompt_ids) if not ids]
        if empty:
            raise R1kitError(f"prompt {empty[0]} is empty after tokenization; every prompt needs some text")
        if not prompt_ids:
            return []
        n_gen = 1 if params.greedy else params.n
        order = sorted(range(len(prompts)), key=lambda i: -len(prompt_ids[i]))  # stable sort
        units = [(i, j) for i in order for j in range(n_gen)]
        rows = min(params.batch_size, len(units))
        gen = self._fast_generator(rows, max(map(len, prompt_ids)) + params.max_new_tokens)
        stop = self._stop_check(params.stop) if params.stop else None
        decoding = {name: getattr(params, name) for name in DECODING}
        results: list[list[Completion | None]] = [[None] * n_gen for _ in prompts]
        with self._progress(len(units)) as advance:
            for start in range(0, len(units), params.batch_size):
                chunk = units[start : start + params.batch_size]
                outs = gen.generate(
                    [prompt_ids[i] for i, _ in chunk],
                    **decoding,
                    seed=params.seed if start == 0 else None,
                    stop=stop,
                )
                for (i, j), out in zip(chunk, outs):
                    completion = finish_completion(
                        self.tokenizer, out.token_ids, self.eos_ids, params.max_new_tokens, params.stop
                    )
                    completion.text = prefill + completion.text
                    results[i][j] = completion
                advance(len(chunk), sum(results[i][j].num_tokens for i, j in chunk))
        if n_gen < params.n:
            return [
                [dataclasses.replace(r[0], token_ids=list(r[0].token_ids)) for _ in range(params.n)]
                for r in results
            ]
        return results  # type: ignore[return-value]

    def _stop_check(self, stop: list[str]):
        """The loop's stop callback: True for rows whose text so far holds a stop string."""
        return stop_check(self.tokenizer, stop, self.check_every)

    def _progress(self, total: int):
        from r1kit.generation.hf import progress_bar

        return progress_bar(total, self.progress)


def stop_check(tokenizer: Any, stop: list[str], check_every: int):
    """A FastGenerator `stop` callback: True for the rows whose text so far holds a stop string
    (used by this backend and by GRPO rollouts, r1kit/rl/fast_rollout.py)."""
    # A stop string of L characters spans at most L tokens (each token's text is non-empty);
    # the tail also covers every token since the last check.
    tail = check_every + max(map(len, stop)) + 4

    def check(rows: list[list[int]]) -> list[bool]:
        texts = tokenizer.batch_decode([r[-tail:] for r in rows], skip_special_tokens=True)
        flags = []
        for ids, text in zip(rows, texts):
            hit = cut_at_stop(text, stop)[1] is not None
            # confirm on the whole text: a tail can decode differently from the same tokens in context
            flags.append(
                hit and cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), stop)[1] is not None
            )
        return flags

    return check
