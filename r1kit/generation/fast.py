"""r1kit's own batched decode loop for GRPO rollouts: static KV cache, CUDA-graph decode steps,
sampling on the GPU, and compaction of finished rows.

Why not transformers' `generate` (22k tok/s at 512 x 512 on an H200, against a ceiling of several
hundred thousand): per-step host work and, for GQA models with a padding mask, SDPA on key/value
heads repeated to the query-head count (7x the KV traffic for Qwen2.5-0.5B). Its cache API also
changed between the transformers versions r1kit supports (5.17: `past_key_values=`, 5.24:
`cache=`), so this module keeps its own cache tensors and calls only the model's submodules
(embed_tokens, layers[i].{norms, self_attn.{q,k,v,o}_proj, mlp}, norm, rotary_emb, lm_head), which
are the same in both. What differs between architectures (norm placement, embedding scale, RoPE
table and attention window per layer, soft-caps) is a small adapter in r1kit/generation/arch.py.
Supported: Qwen2, Qwen3, Llama, Mistral without sliding windows, Gemma 2 and Gemma 3 text models
with their sliding-window layers (`unsupported_reason` says why not otherwise).

How a call runs:
1. prompts are left-padded to width P and prefilled (chunks of rows), their K/V written to
   cache columns [0, P); the first token is sampled from the last position's logits;
2. each decode step feeds the previous token at cache column P + t - 1, position
   prompt_len + t - 1 (the attention-mask cumsum, as transformers computes it); the step reads
   its inputs from fixed buffers, so on CUDA it is captured once as a CUDA graph per
   (batch bucket, attended-length block) and replayed;
3. sampling (temperature, top-k, top-p, Gumbel-max argmax(z - log E), E ~ Exp(1)) runs on the
   device with a seeded torch.Generator and no host sync; finished rows emit `pad_token_id`;
4. every `check_every` steps one sync reads the number of live rows: the loop stops when none
   is left, and when at most half of the bucket is live they are copied (index_select of the
   KV cache and state) into the next power-of-two bucket, so cost follows live sequences.

Log-probabilities (`return_logprobs=True`) are log softmax(logits / temperature) at the sampled
token, before top-k / top-p filtering and before the min_new_tokens EOS mask: exactly what the
GRPO trainer recomputes from a full forward (PAPERS.md, GRPO ratio pi_theta / pi_theta_old).
With greedy=True the same formula is used with the given temperature. They match the
recomputation to 1e-4 in fp32; in bf16 expect differences of bf16 rounding (~1e-2).

`GenOut.token_ids` holds the generated tokens including the stopping EOS (trl's completion
convention), `num_tokens` counts them without the EOS, `truncated` is True when no EOS came.

Stop conditions beyond EOS (`stop=`, e.g. stop strings): every `check_every` steps the callback
gets the tokens each live row has generated so far and names the rows that are done; those rows
end there (`GenOut.stopped`, `token_ids` = everything generated up to that check, no EOS).

Repeat detection (`repeat_window=N`, Kimi k1.5's early stop of repeating rollouts): at the same
checks, a live row whose last N generated tokens repeat a pattern of at most N/2 tokens ends there
(`GenOut.stopped`), compared on the device. A prompt prefix (a continued partial rollout) is not
part of the window; r1kit/rl/partial.py re-checks the whole trajectory and cuts it at the first
repeating token, so both rollout paths end a repeat at the same place.

Dtypes: the KV cache holds the compute dtype: the weights' dtype, or the autocast dtype when
`generate` runs under torch.autocast (GRPO trains fp32 weights, e.g. a dequantized GGUF, under
bf16 autocast): K and V are cast to it when written, so an fp32 cache never meets bf16
projections (`index_copy_(): ... (self) Float and (source) BFloat16`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from r1kit.errors import R1kitError
from r1kit.generation.arch import ADAPTERS, SUPPORTED_MODEL_TYPES, adapter_for

__all__ = ["SUPPORTED_MODEL_TYPES", "FastGenerator", "GenOut", "GenStats", "base_model", "unsupported_reason"]

MODES = ("auto", "eager", "graph", "compile")


@dataclass
class GenOut:
    """One completion; token_ids include the stopping EOS, num_tokens does not. stopped: ended by
    the `stop` callback (then truncated is False and token_ids has no EOS)."""

    token_ids: list[int]
    num_tokens: int
    truncated: bool
    logprobs: list[float] | None = None
    stopped: bool = False


@dataclass
class GenStats:
    """What the last `generate` call did (wall times are host-side; device work is synced once)."""

    prefill_s: float = 0.0
    total_s: float = 0.0
    capture_s: float = 0.0
    captures: int = 0
    decode_steps: int = 0
    row_steps: int = 0  # sum over decode steps of the bucket size: the work actually paid for
    compactions: list[tuple[int, int]] = field(default_factory=list)
    mode: str = ""


def unsupported_reason(model: Any) -> str | None:
    """None when FastGenerator can drive `model`, else a one-line reason."""
    model = base_model(model)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in ADAPTERS:
        return f"model type {model_type!r} is not one of {SUPPORTED_MODEL_TYPES}"
    inner = getattr(model, "model", None)
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(inner, name):
            return f"the model has no model.{name}"
    if model.get_output_embeddings() is None:
        return "the model has no output embeddings (lm_head)"
    reason = ADAPTERS[model_type].unsupported(model)
    if reason:
        return reason
    if any(getattr(p, "ds_id", None) is not None for p in model.parameters()):
        return "DeepSpeed ZeRO-3 partitions the weights"
    return None


def base_model(model: Any) -> Any:
    # peft's PeftModel wraps the causal LM; its LoRA layers stay inside the submodules we call.
    return model.get_base_model() if hasattr(model, "get_base_model") else model


_WARMUP_STREAMS: dict = {}


def _warmup_stream(device: Any) -> Any:
    """One side stream per device for graph warm-ups, reused for the life of the process.

    cuBLAS keeps a workspace (32 MiB on Hopper) per (handle, stream) until the process ends; a
    new stream per capture leaked one per graph on the H200 (~33 MiB per capture, measured), which
    adds up when a released generator re-captures its graphs every GRPO step."""
    import torch

    key = torch.device(device).index or 0
    if key not in _WARMUP_STREAMS:
        _WARMUP_STREAMS[key] = torch.cuda.Stream(device=device)
    return _WARMUP_STREAMS[key]


def _pow2ceil(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _Bucket:
    """Fixed buffers for one batch size: KV cache, decode-step inputs, logits, captured graphs."""

    def __init__(self, gen: FastGenerator, size: int):
        import torch

        kw = {"dtype": gen.cache_dtype, "device": gen.device}
        shape = (size, gen.n_kv, gen.max_len, gen.head_dim)
        self.size = size
        self.k = [torch.zeros(shape, **kw) for _ in range(gen.n_layers)]
        self.v = [torch.zeros(shape, **kw) for _ in range(gen.n_layers)]
        self.key_valid = torch.zeros(size, gen.max_len, dtype=torch.bool, device=gen.device)
        self.tokens = torch.zeros(size, dtype=torch.long, device=gen.device)  # next step's input
        self.pos = torch.zeros(size, dtype=torch.long, device=gen.device)  # its rope position
        self.slot = torch.zeros(1, dtype=torch.long, device=gen.device)  # its cache column
        self.logits = torch.zeros(size, gen.vocab, dtype=torch.float32, device=gen.device)
        self.graphs: dict[int, Any] = {}  # attended length -> torch.cuda.CUDAGraph


class FastGenerator:
    """Batched sampler over a fixed model; build once, call `generate` many times.

    max_batch: most rows decoded together (more are run in chunks); max_len: most prompt +
    new tokens. compile: "auto" (CUDA graphs on CUDA, eager elsewhere), "eager", "graph"
    (manual torch.cuda.CUDAGraph of the eager step), "compile" (torch.compile'd step inside the
    graph; recompiles per bucket, so it attends the whole cache), or a bool (True = "compile").
    A failure while compiling or capturing steps down compile -> graph -> eager (why: `fallback`).
    The weights must keep their storage between calls (optimizer steps update them in place);
    `generate` re-captures when a parameter's address changed (e.g. model.to()).
    """

    def __init__(
        self,
        model: Any,
        *,
        max_batch: int,
        max_len: int,
        compile: bool | str = "auto",
        eos_token_ids: int | list[int],
        pad_token_id: int,
        compaction: bool = True,
        min_bucket: int = 16,
        kv_block: int = 128,
        share_pool: bool = True,
        check_every: int = 16,
        prefill_tokens: int = 16384,
    ):
        import torch

        reason = unsupported_reason(model)
        if reason:
            raise R1kitError(
                f"FastGenerator cannot drive this model: {reason}; use the 'hf' generation backend"
            )
        if max_batch < 1 or max_len < 2:
            raise R1kitError(f"max_batch ({max_batch}) must be >= 1 and max_len ({max_len}) >= 2")
        mode = (
            {True: "compile", False: "eager"}.get(compile, compile) if isinstance(compile, bool) else compile
        )
        if mode not in MODES:
            raise R1kitError(f"compile={compile!r} is not one of {MODES} or a bool")
        self.model = base_model(model)
        self.arch = adapter_for(self.model)
        self.inner = self.model.model
        self.lm_head = self.arch.lm_head
        cfg = self.model.config
        emb = self.inner.embed_tokens.weight
        self.device, self.dtype = emb.device, emb.dtype
        self.cache_dtype = self.dtype  # the compute dtype; set per call (`_compute_dtype`)
        self.on_cuda = self.device.type == "cuda"
        if mode == "auto":
            mode = "graph" if self.on_cuda else "eager"
        if mode in ("graph", "compile") and not self.on_cuda:
            mode = "eager"  # CUDA graphs need CUDA; eager is the same computation
        self.mode, self.fallback = mode, None
        self.n_layers = len(self.inner.layers)
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = self.arch.head_dim
        self.scale = self.arch.scale
        self.windows = [self.arch.window(i) for i in range(self.n_layers)]
        self.vocab = self.lm_head.weight.shape[0]
        self.kv_block = max_len if mode == "compile" or kv_block <= 0 else kv_block
        self.max_len = -(-max_len // 16) * 16  # 16-aligned mask rows suit the fused SDPA kernels
        self.max_batch = max_batch
        self.top = _pow2ceil(max_batch)
        self.min_bucket = min(_pow2ceil(min_bucket), self.top)
        self.compaction, self.check_every, self.prefill_tokens = compaction, check_every, prefill_tokens
        self.eos = [eos_token_ids] if isinstance(eos_token_ids, int) else list(eos_token_ids)
        if not self.eos:
            raise R1kitError("eos_token_ids is empty; pass the tokenizer's eos id")
        self.pad = int(pad_token_id)
        self.eos_t = torch.tensor(self.eos, dtype=torch.long, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.buckets: dict[int, _Bucket] = {}
        self.pool = None
        self.share_pool = share_pool
        self.stats = GenStats(mode=mode)
        self._param_ptrs = None
        self._step_fn = self._decode_step
        if mode == "compile":
            for knob in ("cache_size_limit", "recompile_limit"):
                if hasattr(torch._dynamo.config, knob):
                    setattr(torch._dynamo.config, knob, max(getattr(torch._dynamo.config, knob), 64))
            self._step_fn = torch.compile(self._decode_step, dynamic=False)
        with torch.no_grad():
            # Rope tables (one per layer type) from the model's own rotary module, so any rope
            # scaling it applies is kept.
            positions = torch.arange(self.max_len, device=self.device)[None]
            self.rope = {
                t: (cos.to(self.dtype), sin.to(self.dtype))
                for t, (cos, sin) in self.arch.rope_tables(positions, emb[:1][None]).items()
            }
            self.cols = torch.arange(self.max_len, device=self.device)  # cache column indices

    # ------------------------------------------------------------------ buffers and graphs

    def release(self) -> None:
        """Free the KV caches and graphs (the next call re-allocates and re-captures)."""
        self.buckets.clear()
        self.pool = None

    def _bucket(self, size: int) -> _Bucket:
        if size not in self.buckets:
            self.buckets[size] = _Bucket(self, size)
        return self.buckets[size]

    def _check_params(self) -> None:
        ptrs = tuple(p.data_ptr() for p in self.model.parameters())
        if self._param_ptrs is not None and ptrs != self._param_ptrs:
            self.release()  # graphs would read the old storage
        self._param_ptrs = ptrs

    def _attend(self, q, k, v, mask):
        """softmax(q k^T * scale) v over the keys `mask` allows; with the config's attention
        soft-cap (Gemma 2), scores become cap * tanh(scores / cap) first, as in transformers'
        eager attention (SDPA has no soft-cap)."""
        import torch
        import torch.nn.functional as F

        cap = self.arch.attn_softcap
        if cap is None:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        scores = (scores / cap).tanh() * cap
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.matmul(scores.softmax(dim=-1, dtype=torch.float32).to(v.dtype), v)

    def _decode_step(self, b: _Bucket, kv_len: int) -> None:
        """One token for every row of bucket `b`: reads b.tokens/pos/slot/key_valid, writes the
        new K/V at column b.slot and the logits to b.logits. Idempotent, so warm-up is harmless."""
        n, hd, g, arch = b.size, self.head_dim, self.n_heads // self.n_kv, self.arch
        x = arch.embed(b.tokens[:, None])
        rope = {
            t: (cos[b.pos][:, None, None], sin[b.pos][:, None, None]) for t, (cos, sin) in self.rope.items()
        }
        valid = b.key_valid[:, None, None, :kv_len]
        # Sliding-window layers see only the keys within `w` columns of the query (b.slot).
        masks = {
            w: valid if w is None else valid & (self.cols[:kv_len] > b.slot - w) for w in set(self.windows)
        }
        for i, layer in enumerate(self.inner.layers):
            a = layer.self_attn
            h = arch.attn_norm(layer, x)
            q = a.q_proj(h).view(n, 1, self.n_heads, hd)
            k = a.k_proj(h).view(n, 1, self.n_kv, hd)
            v = a.v_proj(h).view(n, 1, self.n_kv, hd).transpose(1, 2)
            q, k = arch.qk_norm(a, q, k)
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            cos, sin = rope[arch.layer_type(i)]
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            b.k[i].index_copy_(2, b.slot, k.to(b.k[i].dtype))
            b.v[i].index_copy_(2, b.slot, v.to(b.v[i].dtype))
            # GQA without repeating K/V: the g query heads of one KV head become g query rows.
            qg = q.reshape(n, self.n_kv, g, hd)
            o = self._attend(qg, b.k[i][:, :, :kv_len], b.v[i][:, :, :kv_len], masks[self.windows[i]])
            x = arch.attn_residual(layer, x, a.o_proj(o.reshape(n, 1, self.n_heads * hd)))
            x = arch.ffn_residual(layer, x)
        b.logits.copy_(arch.logits(x[:, 0]))

    def _run_step(self, b: _Bucket, kv_len: int) -> None:
        import torch

        if self.mode == "eager":
            self._decode_step(b, kv_len)
            return
        graph = b.graphs.get(kv_len)
        if graph is None:
            t0 = time.perf_counter()
            try:
                graph = self._capture(b, kv_len)
            except Exception as err:  # noqa: BLE001 - any failure: compile -> graph -> eager
                torch.cuda.synchronize()
                fallback = "graph" if self.mode == "compile" else "eager"
                self.fallback = (
                    f"{self.mode} failed, using {fallback}: {type(err).__name__}: {str(err)[:300]}"
                )
                self.mode = self.stats.mode = fallback
                self._step_fn = self._decode_step
                for bucket in self.buckets.values():
                    bucket.graphs.clear()
                self.pool = None
                self._run_step(b, kv_len)
                return
            b.graphs[kv_len] = graph
            self.stats.captures += 1
            self.stats.capture_s += time.perf_counter() - t0
        graph.replay()

    def _capture(self, b: _Bucket, kv_len: int):
        import torch

        side = _warmup_stream(self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: cuBLAS workspaces, compile, autotuning
                self._step_fn(b, kv_len)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # share_pool: one memory pool for all graphs (a step leaves nothing alive in it: it writes
        # into the bucket's buffers, so graphs replayed in any order cannot clobber each other);
        # saves memory when graphs are kept. A generator released after every call gains nothing
        # from sharing, so the GRPO rollouts capture each graph into its own pool: that is the
        # configuration measured on the H200 (bench/RESULTS.md, runs 6-7; the per-capture leak seen
        # before came from a new warm-up stream per capture, fixed by _warmup_stream).
        pool = self.pool if self.share_pool else None
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            self._step_fn(b, kv_len)
        if self.share_pool and self.pool is None:
            self.pool = graph.pool()
        torch.cuda.synchronize()
        return graph

    # ------------------------------------------------------------------ prefill

    def _prefill(self, b: _Bucket, ids, valid, pos) -> None:
        """Forward the left-padded prompts `ids` [n, P] into bucket rows [0, n) and cache columns
        [0, P); leaves the last position's logits in b.logits[:n]."""
        import torch

        n, width = ids.shape
        hd, g, arch = self.head_dim, self.n_heads // self.n_kv, self.arch
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        eye = torch.eye(width, dtype=torch.bool, device=self.device)
        cols = self.cols[:width]
        near = {w: cols[None, :] > cols[:, None] - w for w in set(self.windows) if w is not None}
        rows = max(1, self.prefill_tokens // width)
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            m = r1 - r0
            x = arch.embed(ids[r0:r1])
            rope = {
                t: (cos[pos[r0:r1]][:, None], sin[pos[r0:r1]][:, None]) for t, (cos, sin) in self.rope.items()
            }
            # Pad queries attend to themselves only, so no row is all -inf (their output is unused).
            allowed = causal & valid[r0:r1, None, :]
            masks = {
                w: ((allowed if w is None else allowed & near[w]) | eye)[:, None] for w in set(self.windows)
            }
            for i, layer in enumerate(self.inner.layers):
                a = layer.self_attn
                h = arch.attn_norm(layer, x)
                q = a.q_proj(h).view(m, width, self.n_heads, hd)
                k = a.k_proj(h).view(m, width, self.n_kv, hd)
                v = a.v_proj(h).view(m, width, self.n_kv, hd).transpose(1, 2)
                q, k = arch.qk_norm(a, q, k)
                q, k = q.transpose(1, 2), k.transpose(1, 2)
                cos, sin = rope[arch.layer_type(i)]
                q = q * cos + _rotate_half(q) * sin
                k = k * cos + _rotate_half(k) * sin
                k, v = k.to(b.k[i].dtype), v.to(b.v[i].dtype)
                b.k[i][r0:r1, :, :width] = k
                b.v[i][r0:r1, :, :width] = v
                o = self._attend(
                    q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), masks[self.windows[i]]
                )
                x = arch.attn_residual(
                    layer, x, a.o_proj(o.transpose(1, 2).reshape(m, width, self.n_heads * hd))
                )
                x = arch.ffn_residual(layer, x)
            b.logits[r0:r1] = arch.logits(x[:, -1])

    # ------------------------------------------------------------------ sampling

    def _sample(self, logits, t: int, p: dict):
        """Token t for every row from logits [n, V] (float32); returns (tokens, logprobs|None)."""
        import torch

        z = logits if p["temperature"] == 1.0 else logits / p["temperature"]
        logp = None
        if p["logprobs"]:
            lse = torch.logsumexp(z, dim=-1)
        if t < p["min_new_tokens"]:
            z = z.index_fill(1, self.eos_t, float("-inf"))
        if p["greedy"]:
            tok = z.argmax(dim=-1)
        else:
            if p["top_k"] > 0:
                kth = torch.topk(z, min(p["top_k"], z.shape[-1]), dim=-1).values[:, -1:]
                z = z.masked_fill(z < kth, float("-inf"))
            if p["top_p"] < 1.0:
                sorted_z, order = torch.sort(z, dim=-1, descending=True)
                probs = sorted_z.softmax(dim=-1)
                # Keep the most probable tokens until their mass reaches top_p (always the first).
                drop = (probs.cumsum(dim=-1) - probs) > p["top_p"]
                z = torch.empty_like(z).scatter_(1, order, sorted_z.masked_fill(drop, float("-inf")))
            # Gumbel-max: argmax(z + G), G = -log E, E ~ Exp(1), samples softmax(z) exactly.
            noise = torch.empty_like(z).exponential_(generator=self.generator).clamp_(min=1e-30)
            tok = (z - noise.log()).argmax(dim=-1)
        if p["logprobs"]:
            raw = logits if p["temperature"] == 1.0 else logits / p["temperature"]
            logp = raw.gather(1, tok[:, None])[:, 0] - lse
        return tok, logp

    # ------------------------------------------------------------------ the loop

    def generate(
        self,
        prompt_ids: list[list[int]],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        greedy: bool = False,
        min_new_tokens: int = 0,
        seed: int | None = 0,
        return_logprobs: bool = False,
        stop: Callable[[list[list[int]]], list[bool]] | None = None,
        repeat_window: int = 0,
    ) -> list[GenOut]:
        """Sample one completion per prompt (token-id lists, no padding); outputs in input order.

        seed=None continues the generator's random stream (successive calls differ). stop: called
        every `check_every` steps with the tokens generated so far by each live row; a row for which
        it returns True ends there (GenOut.stopped). repeat_window: N > 0 ends a row likewise once its
        last N tokens repeat a pattern of at most N/2 tokens (checked every `check_every` steps)."""
        import torch

        if not prompt_ids:
            return []
        if any(len(p) == 0 for p in prompt_ids):
            raise R1kitError("a prompt has no tokens; every prompt needs at least one token")
        if max_new_tokens < 1 or not 0 <= min_new_tokens <= max_new_tokens:
            raise R1kitError(
                f"need 1 <= max_new_tokens ({max_new_tokens}) and "
                f"0 <= min_new_tokens ({min_new_tokens}) <= max_new_tokens"
            )
        if not greedy and temperature <= 0:
            raise R1kitError(f"temperature ({temperature}) must be > 0 for sampling; use greedy=True instead")
        if not 0 < top_p <= 1 or top_k < 0:
            raise R1kitError(f"top_p ({top_p}) must be in (0, 1] and top_k ({top_k}) >= 0")
        width = max(len(p) for p in prompt_ids)
        if width + max_new_tokens > self.max_len:
            raise R1kitError(
                f"longest prompt ({width}) + max_new_tokens ({max_new_tokens}) exceeds the "
                f"generator's max_len ({self.max_len}); build it with a larger max_len"
            )
        if seed is not None:
            self.generator.manual_seed(seed)
        params = {
            "temperature": float(temperature) if temperature > 0 else 1.0,
            "top_p": float(top_p),
            "top_k": int(top_k),
            "greedy": greedy,
            "min_new_tokens": min_new_tokens,
            "logprobs": return_logprobs,
            "repeat_window": int(repeat_window),
        }
        self.stats = GenStats(mode=self.mode)
        t0 = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        compute = self._compute_dtype()
        if compute != self.cache_dtype:  # caches and graphs were built for another dtype
            self.release()
            self.cache_dtype = compute
        try:
            with torch.no_grad():
                self._check_params()
                outs: list[GenOut] = []
                for c0 in range(0, len(prompt_ids), self.max_batch):
                    outs += self._generate_chunk(
                        prompt_ids[c0 : c0 + self.max_batch], max_new_tokens, params, stop
                    )
        finally:
            self.model.train(was_training)
        self.stats.total_s = time.perf_counter() - t0
        return outs

    def _compute_dtype(self):
        """The dtype activations (and so K/V) have in this call: autocast's when it is on."""
        import torch

        kind = self.device.type
        try:
            if torch.is_autocast_enabled(kind):
                return torch.get_autocast_dtype(kind)
        except (TypeError, AttributeError, RuntimeError):  # torch without per-device autocast queries
            if kind == "cuda" and torch.is_autocast_enabled():
                return torch.get_autocast_gpu_dtype()
        return self.dtype

    def _generate_chunk(self, prompts: list[list[int]], max_new: int, p: dict, stop=None) -> list[GenOut]:
        import torch

        dev, n = self.device, len(prompts)
        width = max(len(x) for x in prompts)
        size = min(self.top, max(self.min_bucket, _pow2ceil(n)))
        b = self._bucket(size)
        ids = torch.full((size, width), self.pad, dtype=torch.long)
        valid = torch.zeros(size, width, dtype=torch.bool)
        for r, x in enumerate(prompts):
            ids[r, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            valid[r, width - len(x) :] = True
        valid[n:, -1] = True  # dummy rows: one valid key so their attention stays finite
        ids, valid = ids.to(dev), valid.to(dev)
        pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
        b.key_valid.zero_()
        b.key_valid[:, :width] = valid
        t_pre = time.perf_counter()
        self._prefill(b, ids, valid, pos)
        b.pos.copy_(pos[:, -1] + 1)
        self.stats.prefill_s += time.perf_counter() - t_pre
        trash = n  # output row that absorbs the dummy rows' tokens
        row_ids = torch.arange(size, device=dev).clamp(max=trash)
        finished = torch.arange(size, device=dev) >= n
        out_tok = torch.full((n + 1, max_new), self.pad, dtype=torch.long, device=dev)
        out_lp = torch.zeros((n + 1, max_new), dtype=torch.float32, device=dev) if p["logprobs"] else None
        col = width - 1  # last written cache column
        stopped: dict[int, int] = {}  # output row -> tokens it had when `stop` ended it
        for t in range(max_new):
            if t > 0:
                col += 1
                b.key_valid[:, col] = True
                b.slot.fill_(col)
                kv_len = min(self.max_len, -(-(col + 1) // self.kv_block) * self.kv_block)
                self._run_step(b, kv_len)
                b.pos.add_(1)
                self.stats.decode_steps += 1
                self.stats.row_steps += b.size
            tok, lp = self._sample(b.logits, t, p)
            tok = torch.where(finished, self.pad, tok)
            out_tok[row_ids, t] = tok
            if lp is not None:
                out_lp[row_ids, t] = lp
            finished = finished | torch.isin(tok, self.eos_t)
            b.tokens.copy_(tok)
            if (t + 1) % self.check_every == 0 and t + 1 < max_new:
                if stop is not None:
                    finished = self._apply_stop(stop, finished, row_ids, out_tok, t + 1, stopped)
                if p["repeat_window"] >= 2 and t + 1 >= p["repeat_window"]:
                    finished = self._stop_repeats(
                        p["repeat_window"], finished, row_ids, out_tok, t + 1, stopped
                    )
                live = int((~finished).sum())  # the one host sync per check_every steps
                if live == 0:
                    break
                if self.compaction and live <= b.size // 2 and b.size > self.min_bucket:
                    b, row_ids, finished = self._compact(b, row_ids, finished, col + 1, trash)
        return self._collect(
            out_tok[:n].cpu(), None if out_lp is None else out_lp[:n].cpu(), max_new, stopped
        )

    def _apply_stop(self, stop, finished, row_ids, out_tok, steps: int, stopped: dict[int, int]):
        """Ask `stop` about every live row's tokens so far; mark the rows it names finished."""
        import torch

        idx = (~finished).nonzero()[:, 0]
        if idx.numel() == 0:
            return finished
        rows = row_ids.index_select(0, idx)
        flags = stop(out_tok.index_select(0, rows)[:, :steps].tolist())
        hit = [k for k, f in enumerate(flags) if f]
        if not hit:
            return finished
        finished = finished.clone()
        finished[idx[torch.tensor(hit, device=idx.device)]] = True
        for k in hit:
            stopped[int(rows[k])] = steps
        return finished

    def _stop_repeats(self, window: int, finished, row_ids, out_tok, steps: int, stopped: dict[int, int]):
        """Mark live rows whose last `window` tokens repeat with a period p <= window // 2 finished."""
        import torch

        last = out_tok.index_select(0, row_ids)[:, steps - window : steps]
        hit = torch.zeros_like(finished)
        for p in range(1, window // 2 + 1):
            hit |= (last[:, p:] == last[:, :-p]).all(dim=1)
        hit &= ~finished
        idx = hit.nonzero()[:, 0].tolist()
        for k in idx:
            stopped[int(row_ids[k])] = steps
        return finished | hit if idx else finished

    def _compact(self, b: _Bucket, row_ids, finished, filled: int, trash: int):
        """Move the live rows of `b` into the smallest bucket that holds them."""
        import torch

        idx = (~finished).nonzero()[:, 0]
        live = idx.numel()
        nb = self._bucket(max(self.min_bucket, _pow2ceil(live)))
        for i in range(self.n_layers):
            nb.k[i][:live, :, :filled] = b.k[i][:, :, :filled].index_select(0, idx)
            nb.v[i][:live, :, :filled] = b.v[i][:, :, :filled].index_select(0, idx)
        nb.key_valid.zero_()
        nb.key_valid[:live] = b.key_valid.index_select(0, idx)
        nb.key_valid[live:, 0] = True
        nb.tokens.fill_(self.pad)
        nb.tokens[:live] = b.tokens.index_select(0, idx)
        nb.pos.zero_()
        nb.pos[:live] = b.pos.index_select(0, idx)
        nb.slot.copy_(b.slot)
        new_rows = torch.full((nb.size,), trash, dtype=torch.long, device=self.device)
        new_rows[:live] = row_ids.index_select(0, idx)
        new_finished = torch.arange(nb.size, device=self.device) >= live
        self.stats.compactions.append((b.size, nb.size))
        return nb, new_rows, new_finished

    def _collect(self, tokens, logprobs, max_new: int, stopped: dict[int, int] | None = None) -> list[GenOut]:
        eos = set(self.eos)
        stopped = stopped or {}
        outs = []
        for r, row in enumerate(tokens.tolist()):
            if r in stopped:
                keep = stopped[r]
                lps = None if logprobs is None else logprobs[r, :keep].tolist()
                outs.append(GenOut(row[:keep], keep, False, lps, stopped=True))
                continue
            end = next((i for i, x in enumerate(row) if x in eos), None)
            keep = max_new if end is None else end + 1
            lps = None if logprobs is None else logprobs[r, :keep].tolist()
            outs.append(GenOut(row[:keep], max_new if end is None else end, end is None, lps))
        return outs
