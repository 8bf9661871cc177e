"""`FastRolloutMixin`: GRPO rollouts through r1kit's FastGenerator instead of transformers' generate.

Mix it in front of trl's GRPOTrainer (or r1kit's R1GRPOTrainer)::

    class Trainer(FastRolloutMixin, R1GRPOTrainer): ...

It overrides only trl's `_generate_single_turn(prompt_ids, images, multimodal_fields,
num_generations, has_tool_images=False) -> (completion_ids, logprobs)`, the method whose
non-vLLM branch calls `model.generate`. The return contract is trl's: one list of token ids per
prompt row (prompts arrive already repeated num_generations times), cut after the first EOS and
including it; logprobs None (trl's transformers path), or the sampled tokens' log-probabilities
when `fast_rollout_logprobs` is set (trl then treats them like vLLM's sampling log-probs).

Sampling settings are trl's `generation_kwargs` (temperature, top_p, top_k, max_new_tokens,
min_new_tokens, do_sample), so a run samples the same distribution as with trl's generate.
Anything FastGenerator does not implement (min_p, repetition_penalty != 1, other generation
kwargs, vLLM, continuous batching, images, DeepSpeed / FSDP, an unsupported architecture) sends
the call to trl's own path, with one warning saying why.

The generator is built once and reused. By default its KV cache and CUDA graphs are freed
after each rollout (training then has the memory trl's own path leaves it) and re-captured at the
next one; with `fast_rollout_keep_cache` they persist. Either way the graphs read the parameters
through their storage, which optimizer steps update in place (torch optimizers write into `param` with
foreach add_/mul_/addcdiv_ ops; the tensors are never replaced), so captured graphs keep seeing
the current weights. LoRA (peft) layers are called like any other submodule, so adapters work;
if any parameter's storage moves (model.to(), a reload), the generator notices and re-captures.
DeepSpeed ZeRO-3 and FSDP shard the weights, hence the fall back to trl there.

Stop strings (`fast_rollout_stop`, grpo's `--stop`): the loop ends a row once its text holds one
(checked every `check_every` decode steps, so a row may run a few tokens past it). Whatever path
generated them, `cut_at_stop_strings` then cuts every completion after the token that completed
the stop string (the tokens the model produced up to there are trained, as vLLM counts them; the
EOS that trl's own path may have generated later is gone), and `stop_text` cuts the text the rewards
see before the stop string, as `r1kit evaluate --stop` does (r1kit.generation.base).
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

# generation kwargs FastGenerator honours (trl always sets the first group)
_HANDLED = {
    "max_new_tokens",
    "do_sample",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "cache_implementation",
    "min_new_tokens",
    "disable_compile",
}


class FastRolloutMixin:
    """Routes trl GRPO generation to `r1kit.generation.fast.FastGenerator` where it applies.

    fast_rollout: "auto" (on CUDA only), "on" (also on CPU; tests), "off".
    fast_rollout_mode: FastGenerator's compile argument ("auto" = CUDA graphs on CUDA).
    fast_rollout_keep_cache: False (default): free the KV cache and graphs after each generation,
    so training runs in the memory trl's own path leaves it (graphs are re-captured every step,
    ~0.1 s each; measured 4-5% of a step on the H200); True: keep them between steps (faster, at
    the cost of the whole KV cache held through training).
    fast_rollout_kv_block: attended-length granularity of the captured decode graphs (FastGenerator
    kv_block; 0 = one graph over the whole cache). None: 128 when the cache is kept, else a
    quarter of the cache length (at most 4 captures per bucket per step).
    fast_rollout_repeat_window: N > 0 stops a row on the GPU once its last N tokens repeat a pattern
    of at most N/2 tokens (Kimi's repeat detection, `--repeat-stop`; r1kit/rl/partial.py).
    """

    fast_rollout: str = "auto"
    fast_rollout_mode: str | bool = "auto"
    fast_rollout_keep_cache: bool = False
    fast_rollout_logprobs: bool = False
    fast_rollout_stop: tuple[str, ...] = ()
    fast_rollout_min_bucket: int = 8
    fast_rollout_kv_block: int | None = None
    fast_rollout_repeat_window: int = 0
    fast_rollout_log: list[dict]
    _fast_gen: Any = None
    _fast_warned: bool = False

    def _fast_rollout_blocker(self, model: Any, images: Any, multimodal_fields: Any) -> str | None:
        """None when the fast path applies, else why not."""
        from r1kit.generation.fast import unsupported_reason

        if self.fast_rollout == "off":
            return "fast_rollout is off"
        if getattr(self, "use_vllm", False) or getattr(self, "use_transformers_continuous_batching", False):
            return "vLLM / continuous batching is configured"
        if images is not None or multimodal_fields or getattr(self, "_is_vlm", False):
            return "multimodal inputs"
        if self.accelerator.device.type != "cuda" and self.fast_rollout != "on":
            return "not on CUDA"
        if getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False):
            return "DeepSpeed / FSDP shard the weights"
        kwargs = getattr(self, "generation_kwargs", None) or {}
        extra = sorted(k for k, v in kwargs.items() if k not in _HANDLED and v is not None)
        if extra:
            return f"generation kwargs {extra} are not implemented by FastGenerator"
        if kwargs.get("min_p") not in (None, 0, 0.0):
            return "min_p is not implemented by FastGenerator"
        if kwargs.get("repetition_penalty") not in (None, 1, 1.0):
            return "repetition_penalty is not implemented by FastGenerator"
        return unsupported_reason(model)

    def _fast_generator(self, model: Any, rows: int, needed_len: int):
        from r1kit.generation.fast import FastGenerator, base_model

        gen = self._fast_gen
        if (
            gen is None
            or gen.model is not base_model(model)
            or rows > gen.max_batch
            or needed_len > gen.max_len
        ):
            if gen is not None:
                gen.release()
            # Margin on the length so slightly longer prompts later do not force a rebuild.
            max_len = -(-(needed_len + 64) // 64) * 64
            kv_block = self.fast_rollout_kv_block
            if kv_block is None:
                kv_block = 128 if self.fast_rollout_keep_cache else -(-max_len // 4 // 128) * 128
            gen = FastGenerator(
                model,
                max_batch=rows,
                max_len=max_len,
                compile=self.fast_rollout_mode,
                eos_token_ids=list(self.eos_token_ids),
                pad_token_id=self._tokenizer.pad_token_id,
                min_bucket=self.fast_rollout_min_bucket,
                kv_block=kv_block,
                share_pool=self.fast_rollout_keep_cache,
            )
            gen.generator.manual_seed(int(self.args.seed) + 1000 * int(self.accelerator.process_index))
            self._fast_gen = gen
        return gen

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        model = self.accelerator.unwrap_model(self.model)
        blocker = self._fast_rollout_blocker(model, images, multimodal_fields)
        mode = "train" if self.model.training else "eval"
        if hasattr(self, "_metrics"):  # 1 when this step's rollouts used r1kit's loop (metrics.jsonl)
            self._metrics[mode]["rollout/fast_path"].append(float(blocker is None))
        if blocker is not None:
            expected = self.fast_rollout == "on" or self.accelerator.device.type == "cuda"
            if self.fast_rollout != "off" and expected and not self._fast_warned:
                logger.warning("r1kit fast rollouts not used (%s); generating with trl's path", blocker)
                self._fast_warned = True
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        kw = self.generation_kwargs or {}
        max_new = int(kw.get("max_new_tokens") or self.max_completion_length)
        gen = self._fast_generator(model, len(prompt_ids), max(map(len, prompt_ids)) + max_new)
        import torch

        stop = None
        if self.fast_rollout_stop:
            from r1kit.generation.fast_backend import stop_check

            stop = stop_check(self._tokenizer, list(self.fast_rollout_stop), gen.check_every)
        track = gen.on_cuda and not self.fast_rollout_keep_cache  # what a released rollout leaves behind
        before = torch.cuda.memory_allocated(gen.device) if track else 0
        t0 = time.perf_counter()
        # Under the trainer's mixed precision (bf16 autocast over fp32 weights, e.g. a dequantized
        # GGUF), as trl's own generate runs (accelerate wraps model.forward in autocast): the loop's
        # KV cache then holds bf16 (FastGenerator follows autocast's dtype).
        with self.accelerator.autocast():
            outs = gen.generate(
                [list(map(int, p)) for p in prompt_ids],
                max_new_tokens=max_new,
                temperature=float(kw.get("temperature") or 1.0),
                top_p=float(kw.get("top_p") or 1.0),
                top_k=int(kw.get("top_k") or 0),
                greedy=not kw.get("do_sample", True),
                min_new_tokens=int(kw.get("min_new_tokens") or 0),
                seed=None,
                return_logprobs=self.fast_rollout_logprobs,
                stop=stop,
                repeat_window=self.fast_rollout_repeat_window,
            )
        seconds = time.perf_counter() - t0
        leftover = 0
        if not self.fast_rollout_keep_cache:
            gen.release()
            if track:  # should be ~0: memory the rollout left allocated for training to carry
                leftover = torch.cuda.memory_allocated(gen.device) - before
        if "fast_rollout_log" not in self.__dict__:
            self.fast_rollout_log = []
        s = gen.stats
        self.fast_rollout_log.append(
            {
                "seconds": seconds,
                "rows": len(outs),
                "tokens": sum(len(o.token_ids) for o in outs),
                "mode": s.mode,
                "captures": s.captures,
                "capture_s": s.capture_s,
                "prefill_s": s.prefill_s,
                "decode_steps": s.decode_steps,
                "row_steps": s.row_steps,
                "compactions": list(s.compactions),
                "fallback": gen.fallback,
                "released_leftover_mib": round(leftover / 2**20, 1),
            }
        )
        completion_ids = [o.token_ids for o in outs]
        logprobs = [o.logprobs for o in outs] if self.fast_rollout_logprobs else None
        return completion_ids, logprobs


def cut_at_stop_strings(tokenizer: Any, completion_ids: list, logprobs: list | None, stop: list[str] | tuple):
    """Each completion cut after the token that completed its first stop string (and its sampling
    log-probs with it); completions without one are returned as they are. Returns (ids, logprobs,
    stopped: one flag per completion)."""
    from r1kit.generation.base import cut_at_stop, tokens_to_stop

    stop = list(stop)
    texts = tokenizer.batch_decode([list(map(int, ids)) for ids in completion_ids], skip_special_tokens=True)
    out_ids, out_lp, stopped = [], None if logprobs is None else [], []
    for k, (ids, text) in enumerate(zip(completion_ids, texts)):
        ids = list(map(int, ids))
        stopped.append(cut_at_stop(text, stop)[1] is not None)
        keep = tokens_to_stop(tokenizer, ids, stop) if stopped[-1] else len(ids)
        out_ids.append(ids[:keep])
        if out_lp is not None:
            out_lp.append(logprobs[k][:keep] if logprobs[k] is not None else None)
    return out_ids, out_lp, stopped


def stop_text(completion: Any, stop: list[str] | tuple) -> Any:
    """A completion as the rewards should see it: its text cut before the first stop string (a
    plain string, or trl's chat form [{"role": "assistant", "content": ...}])."""
    from r1kit.generation.base import cut_at_stop

    if isinstance(completion, str):
        return cut_at_stop(completion, list(stop))[0]
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        last = dict(completion[-1])
        if isinstance(last.get("content"), str):
            last["content"] = cut_at_stop(last["content"], list(stop))[0]
        return [*completion[:-1], last]
    return completion
