"""Batched generation with transformers `model.generate` (the default backend).

Prompts are expanded into (prompt, sample) sequences, sorted by prompt length
(longest first, so padding stays small and an out-of-memory error shows on the
first batch) and generated `batch_size` sequences at a time, then put back in
input order. Batches are LEFT-padded by hand (the tokenizer is not touched), so
every sequence's last prompt token sits at the same position and new tokens are
appended right after it; the attention mask keeps the padding out of attention
and out of the position ids.

Sampling settings come only from `SamplingParams`: the checkpoint's own
generation defaults (e.g. a repetition penalty in generation_config.json) are
overridden, so that every model is evaluated under the same rule.

Stop strings (`SamplingParams.stop`) are checked on the GENERATED text only (`stop_on_generated`,
a stopping criterion; transformers' own `stop_strings` also match across the prompt's end, so
a prompt ending in "Answer:" with stop "::" stopped after one generated ":"), so a row stops
once its completion holds one; the returned text is then cut before the first
occurrence, and `token_ids` end with the token that completed it (r1kit/generation/base.py).

On CUDA, with `static_cache=True` (default), generation uses a static KV cache,
which transformers compiles automatically (measured 3-10x faster on an H200,
GPU.md). Its compiled graph depends on the batch shape, so prompt widths are
rounded up to a multiple of `pad_to_multiple_of` and short final batches are
filled with copies up to the first batch's size: a handful of shapes, compiled
once each. On CPU the dynamic cache is kept (compilation does not pay there).
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
    encode_prompts,
    finish_completion,
    generation_ids,
)


class HFBackend(GenerationBackend):
    """transformers backend. `model` is a loaded causal LM, `tokenizer` its tokenizer.

    static_cache: on CUDA, generate with a compiled static KV cache (ignored on CPU and for
    models that cannot be compiled). progress: show a rich progress bar over sequences.
    """

    name = "hf"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        static_cache: bool = True,
        progress: bool = False,
        pad_to_multiple_of: int = 64,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.progress = progress
        self.pad_to_multiple_of = pad_to_multiple_of
        self.eos_ids, self.pad_id = generation_ids(model, tokenizer)
        self.use_static = (
            static_cache
            and model.device.type == "cuda"
            and bool(getattr(model, "_can_compile_fullgraph", False))
        )

    def generate(
        self, prompts: list[Prompt], params: SamplingParams, prefill: str = ""
    ) -> list[list[Completion]]:
        import torch

        prompt_ids = encode_prompts(self.tokenizer, prompts, prefill)
        # Greedy samples of one prompt are identical: compute one, copy it n times.
        n_gen = 1 if params.greedy else params.n
        order = sorted(range(len(prompts)), key=lambda i: -len(prompt_ids[i]))  # stable sort
        units = [(i, j) for i in order for j in range(n_gen)]
        results: list[list[Completion | None]] = [[None] * n_gen for _ in prompts]
        gen_config = self._generation_config(params)
        rows = min(params.batch_size, len(units)) if self.use_static else 0

        empty = [i for i, ids in enumerate(prompt_ids) if not ids]
        if empty:
            raise R1kitError(f"prompt {empty[0]} is empty after tokenization; every prompt needs some text")
        device = self.model.device
        was_training = self.model.training
        self.model.eval()
        # fork_rng: a seeded evaluation inside training (e.g. a learning check) must not move the
        # caller's random stream.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(params.seed)
            try:
                with self._progress(len(units)) as advance:
                    for start in range(0, len(units), params.batch_size):
                        chunk = units[start : start + params.batch_size]
                        outs = self._generate_batch(
                            [prompt_ids[i] for i, _ in chunk], gen_config, params, rows
                        )
                        for (i, j), completion in zip(chunk, outs):
                            completion.text = prefill + completion.text
                            results[i][j] = completion
                        advance(len(chunk), sum(c.num_tokens for c in outs))
            finally:
                self.model.train(was_training)
        if n_gen < params.n:
            return [
                [dataclasses.replace(r[0], token_ids=list(r[0].token_ids)) for _ in range(params.n)]
                for r in results
            ]
        return results  # type: ignore[return-value]

    def _generation_config(self, params: SamplingParams):
        from transformers import GenerationConfig

        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "min_new_tokens": params.min_new_tokens or None,
            "do_sample": not params.greedy,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
            "repetition_penalty": 1.0,
        }
        if not params.greedy:  # greedy ignores them; setting them only draws warnings
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        if self.use_static:
            kwargs["cache_implementation"] = "static"
        return GenerationConfig(**kwargs)

    def _generate_batch(
        self, seqs: list[list[int]], gen_config, params: SamplingParams, rows: int
    ) -> list[Completion]:
        import torch

        real = len(seqs)
        width = max(len(s) for s in seqs)
        if self.use_static:
            m = self.pad_to_multiple_of
            width = -(-width // m) * m
            seqs = seqs + [seqs[-1]] * (rows - real)
        device = self.model.device
        input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            if s:
                input_ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
                attention_mask[r, width - len(s) :] = 1
        extra = {}
        if params.stop:
            from transformers import StoppingCriteriaList

            extra["stopping_criteria"] = StoppingCriteriaList(
                [stop_on_generated(self.tokenizer, params.stop, width)]
            )
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=gen_config,
            **extra,
        )
        new = out[:real, width:].tolist()
        return [self._completion(ids, params.max_new_tokens, params.stop) for ids in new]

    def _completion(self, ids: list[int], max_new_tokens: int, stop_strings: list[str] = ()) -> Completion:
        return finish_completion(self.tokenizer, ids, self.eos_ids, max_new_tokens, list(stop_strings))

    def _progress(self, total: int):
        return progress_bar(total, self.progress)


def stop_on_generated(tokenizer: Any, stop: list[str], prompt_width: int):
    """A transformers stopping criterion: a row is done once its generated text (after the first
    `prompt_width` columns) holds a stop string. Only the last tokens are decoded each step (enough
    to hold the longest stop string and the new token); a hit is confirmed on the whole generated
    text, since a tail can decode differently from the same tokens in context."""
    import torch
    from transformers import StoppingCriteria

    from r1kit.generation.base import cut_at_stop

    tail = max(map(len, stop)) + 2

    class StopOnGenerated(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            generated = input_ids[:, prompt_width:]
            texts = tokenizer.batch_decode(generated[:, -tail:].tolist(), skip_special_tokens=True)
            done = []
            for r, text in enumerate(texts):
                hit = cut_at_stop(text, stop)[1] is not None
                if hit:
                    whole = tokenizer.decode(generated[r].tolist(), skip_special_tokens=True)
                    hit = cut_at_stop(whole, stop)[1] is not None
                done.append(hit)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnGenerated()


def progress_bar(total: int, show: bool, label: str = "generating"):
    """A context manager yielding `advance(rows, tokens=0)` for generation progress over `total` rows.

    With `show`: on a terminal a transient rich bar (rows, tokens/s, ETA); in a log file one line
    per chunk (r1kit.progress: rows done/total, elapsed, ETA, tokens/s), so `r1kit evaluate ... > log
    2>&1` shows how far sampling got. Without `show`, nothing.
    """
    from contextlib import contextmanager

    from r1kit.progress import Clock, emit, interactive, metrics_text

    @contextmanager
    def bar():
        if not show:
            yield lambda rows, tokens=0: None
            return
        clock = Clock(total)
        done = {"rows": 0, "tokens": 0}

        def count(rows: int, tokens: int) -> float:
            done["rows"] += rows
            done["tokens"] += tokens
            return done["tokens"] / max(clock.elapsed(), 1e-9)

        if not interactive():

            def line(rows: int, tokens: int = 0) -> None:
                rate = count(rows, tokens)
                emit(
                    f"{label} {done['rows']}/{total} sequences | {clock.head(done['rows'])} | "
                    + metrics_text([("tok/s", rate)])
                )

            yield line
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        ) as prog:
            task = prog.add_task("generate", total=total, rate="")

            def advance(rows: int, tokens: int = 0) -> None:
                rate = count(rows, tokens)
                prog.update(task, advance=rows, rate=metrics_text([("tok/s", rate)]))

            yield advance

    return bar()
