"""Per-architecture adapters for r1kit's decode loop (r1kit/generation/fast.py).

The loop (prefill, CUDA-graph decode steps, KV cache, sampling, compaction) is the same for every
decoder-only transformer; what differs between architectures is small and lives here:

- where the norms sit around attention and the MLP, and what the MLP is (the adapter calls the
  model's own norm and MLP modules, so their arithmetic, e.g. Gemma's (1 + weight) RMSNorm and
  gated tanh-GELU, is transformers' own);
- how tokens are embedded (Gemma scales by sqrt(hidden_size) in the model dtype: its
  `embed_tokens` module does that, so calling it is enough);
- which RoPE table each layer uses (Gemma 3: base `rope_local_base_freq` for sliding layers,
  `rope_theta` for global ones; the tables come from the model's own rotary module, so rope
  scaling is kept) and each layer's attention window (None = full attention);
- the attention scale (`self_attn.scaling`, e.g. query_pre_attn_scalar ** -0.5), optional tanh
  soft-capping of attention scores and of the final logits.

The loop calls, per layer: `attn_norm`, q/k/v projections, `qk_norm`, rope, attention with
`scale` / `window(i)` / `attn_softcap`, `o_proj`, `attn_residual`, `ffn_residual`; then `logits`.
Adding an architecture is a subclass that overrides what differs and a line in ADAPTERS
(`unsupported` says why a model of a known type still cannot be driven).

Sliding windows follow transformers' mask (masking_utils.sliding_window_overlay): query i attends
key j when i - window < j <= i, counted in sequence positions; left padding shifts every column of
a row by the same amount, so the loop applies it to cache columns.
"""

from __future__ import annotations

import inspect
from typing import Any


class DecoderAdapter:
    """Llama-style pre-norm decoder: Qwen2, Qwen3 (q/k norms), Llama, Mistral.

    x + attn(input_layernorm(x)), then x + mlp(post_attention_layernorm(x)); one RoPE table;
    full attention in every layer (sliding windows of these families are refused in `unsupported`).
    """

    model_types: tuple[str, ...] = ("qwen2", "qwen3", "llama", "mistral")

    def __init__(self, model: Any):
        self.model = model
        self.inner = model.model
        self.config = model.config
        self.lm_head = model.get_output_embeddings()
        self.layers = list(self.inner.layers)
        attn0 = self.layers[0].self_attn
        cfg = self.config
        self.head_dim = getattr(attn0, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scale = float(getattr(attn0, "scaling", self.head_dim**-0.5))
        self.attn_softcap: float | None = None
        self.final_softcap: float | None = None

    # -------------------------------------------------------------- what the loop asks per layer

    def layer_type(self, i: int) -> str:
        """Key of the RoPE table layer i uses (see `rope_tables`)."""
        return "full_attention"

    def window(self, i: int) -> int | None:
        """Attention window of layer i in tokens (None = full causal attention)."""
        return None

    def rope_tables(self, positions: Any, like: Any) -> dict[str, tuple[Any, Any]]:
        """{layer type: (cos, sin)} for `positions` [1, L], from the model's rotary module."""
        cos, sin = self.inner.rotary_emb(like, positions)
        return {"full_attention": (cos[0], sin[0])}

    def embed(self, ids: Any) -> Any:
        return self.inner.embed_tokens(ids)

    def attn_norm(self, layer: Any, x: Any) -> Any:
        return layer.input_layernorm(x)

    def qk_norm(self, attn: Any, q: Any, k: Any) -> tuple[Any, Any]:
        if hasattr(attn, "q_norm"):  # Qwen3 (and Gemma 3): RMSNorm over head_dim before RoPE
            return attn.q_norm(q), attn.k_norm(k)
        return q, k

    def attn_residual(self, layer: Any, x: Any, out: Any) -> Any:
        """x after attention, given `out` = o_proj(attention)."""
        return x + out

    def ffn_residual(self, layer: Any, x: Any) -> Any:
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def logits(self, x: Any) -> Any:
        """float32 logits from the last hidden states (final norm, lm_head, optional soft-cap)."""
        h = self.inner.norm(x)
        logits = self.lm_head(h.to(self.lm_head.weight.dtype))
        if self.final_softcap is not None:  # in the model dtype, as transformers computes it
            logits = (logits / self.final_softcap).tanh() * self.final_softcap
        return logits.float()

    # -------------------------------------------------------------- support check

    @classmethod
    def unsupported(cls, model: Any) -> str | None:
        config = model.config
        layer_types = getattr(config, "layer_types", None) or []
        if (
            any(t != "full_attention" for t in layer_types)
            or (getattr(config, "use_sliding_window", False) and getattr(config, "sliding_window", None))
            or (config.model_type == "mistral" and getattr(config, "sliding_window", None))
        ):
            return "sliding-window attention is not supported for this architecture"
        return None


class GemmaAdapter(DecoderAdapter):
    """Gemma 2 and Gemma 3 text models (Gemma3ForCausalLM, model_type gemma3_text).

    Four norms per layer (Gemma 3 paper / transformers' Gemma3DecoderLayer):
        x = x + post_attention_layernorm(attn(input_layernorm(x)))
        x = x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))
    q/k RMSNorm (Gemma 3), embeddings scaled by sqrt(hidden_size) inside `embed_tokens`,
    attention scale query_pre_attn_scalar ** -0.5 (`self_attn.scaling`), sliding-window layers
    (`layer_types`, window `sliding_window`) interleaved with global ones, one RoPE base per
    layer type (Gemma 3: the rotary module takes the layer type), and the soft-caps of the
    config (Gemma 2: attention 50, logits 30; Gemma 3: none, and its attention soft-cap is
    ignored as transformers ignores it).
    """

    model_types = ("gemma3_text", "gemma2")

    def __init__(self, model: Any):
        super().__init__(model)
        cfg = self.config
        types = list(getattr(cfg, "layer_types", None) or ["full_attention"] * len(self.layers))
        self._types = types
        self._windows = []
        for i, layer in enumerate(self.layers):
            w = getattr(layer.self_attn, "sliding_window", None)
            if w is None and types[i] == "sliding_attention":
                w = cfg.sliding_window
            self._windows.append(int(w) if w else None)
        # Gemma 3 replaced Gemma 2's attention soft-cap with q/k norms; transformers' Gemma 3
        # attention ignores attn_logit_softcapping even when a config sets it, and so does the loop.
        self.attn_softcap = (
            getattr(cfg, "attn_logit_softcapping", None) if cfg.model_type == "gemma2" else None
        )
        self.final_softcap = getattr(cfg, "final_logit_softcapping", None)
        params = inspect.signature(self.inner.rotary_emb.forward).parameters
        self._rope_per_type = "layer_type" in params

    def layer_type(self, i: int) -> str:
        return self._types[i] if self._rope_per_type else "full_attention"

    def window(self, i: int) -> int | None:
        return self._windows[i]

    def rope_tables(self, positions: Any, like: Any) -> dict[str, tuple[Any, Any]]:
        if not self._rope_per_type:
            return super().rope_tables(positions, like)
        tables = {}
        for t in sorted(set(self._types)):
            cos, sin = self.inner.rotary_emb(like, positions, layer_type=t)
            tables[t] = (cos[0], sin[0])
        return tables

    def attn_residual(self, layer: Any, x: Any, out: Any) -> Any:
        return x + layer.post_attention_layernorm(out)

    def ffn_residual(self, layer: Any, x: Any) -> Any:
        return x + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(x)))

    @classmethod
    def unsupported(cls, model: Any) -> str | None:
        if getattr(model.config, "use_bidirectional_attention", False):
            return "bidirectional attention (an embedding model) cannot generate"
        layer = model.model.layers[0]
        for name in ("pre_feedforward_layernorm", "post_feedforward_layernorm"):
            if not hasattr(layer, name):
                return f"the decoder layers have no {name}"
        return None


# model_type -> adapter class. Gemma3ForConditionalGeneration (model_type "gemma3", the
# multimodal wrapper) is not here: its text model sits at model.language_model.
ADAPTERS: dict[str, type[DecoderAdapter]] = {
    t: cls for cls in (DecoderAdapter, GemmaAdapter) for t in cls.model_types
}
SUPPORTED_MODEL_TYPES = tuple(ADAPTERS)


def adapter_for(model: Any) -> DecoderAdapter:
    """The adapter of `model` (a causal LM whose type is in ADAPTERS; check `unsupported_reason` first)."""
    return ADAPTERS[model.config.model_type](model)
