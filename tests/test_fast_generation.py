"""FastGenerator (r1kit/generation/fast.py) against transformers: same greedy tokens, log-probs equal
to the trainer's full-forward recomputation, and the sampling distribution softmax(logits / T) with
top-k / top-p truncation. Tiny random models whose init scale (0.3) makes greedy paths varied and
lets the EOS token come at different steps per row, so compaction runs."""

import pytest
import torch

from r1kit.errors import R1kitError
from r1kit.generation.fast import FastGenerator, unsupported_reason

PAD, EOS, VOCAB = 0, 47, 48
LENGTHS = [3, 7, 1, 12, 5, 9, 2, 6]


def tiny(arch: str = "qwen2", seed: int = 0):
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    cls = {
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM),
        "llama": (LlamaConfig, LlamaForCausalLM),
    }[arch]
    cfg = cls[0](
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        initializer_range=0.3,
        pad_token_id=PAD,
        eos_token_id=EOS,
        head_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls[1](cfg).eval()


def prompts(lengths=LENGTHS, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(2, EOS, (n,), generator=g).tolist() for n in lengths]


def left_pad(rows):
    width = max(map(len, rows))
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def hf_greedy(model, rows, max_new, min_new=0):
    ids, mask = left_pad(rows)
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=max_new,
        min_new_tokens=min_new,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    result = []
    for row in out[:, ids.shape[1] :].tolist():
        result.append(row[: row.index(EOS) + 1] if EOS in row else row)
    return result


def recompute_logprobs(model, rows, completions, temperature):
    """What the GRPO trainer does: one forward over prompt + completion, log softmax(logits / T)."""
    seqs = [p + c for p, c in zip(rows, completions)]
    ids, mask = left_pad(seqs)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float() / temperature
    logp = logits.log_softmax(-1)
    out = []
    for r, c in enumerate(completions):
        n, width = len(c), ids.shape[1]
        positions = torch.arange(width - n - 1, width - 1)  # logits at t predict token t + 1
        out.append(logp[r, positions, torch.tensor(c)])
    return out


@pytest.fixture(scope="module")
def qwen2():
    return tiny("qwen2", seed=1)


@pytest.fixture(scope="module")
def hf_reference(qwen2):
    return hf_greedy(qwen2, prompts(), 30)


def make(model, **kw):
    args = {
        "max_batch": 8,
        "max_len": 64,
        "eos_token_ids": [EOS],
        "pad_token_id": PAD,
        "min_bucket": 1,
        "check_every": 2,
    }
    args.update(kw)
    return FastGenerator(model, **args)


def test_greedy_equals_generate_with_compaction(qwen2, hf_reference):
    # The reference stops rows at different steps (lengths 7, 2, 30, 10, 4, 24, 30, 30) and leaves some rows
    # running to the limit: the exact mix that makes the loop shrink its batch.
    assert min(len(r) for r in hf_reference) < 10 and max(len(r) for r in hf_reference) == 30
    gen = make(qwen2)
    outs = gen.generate(prompts(), max_new_tokens=30, greedy=True)
    assert [o.token_ids for o in outs] == hf_reference
    assert gen.stats.compactions and gen.stats.compactions[0] == (8, 4)
    # fewer row-steps than 8 rows x 29 decode steps: finished rows stopped costing
    assert gen.stats.row_steps < 8 * 29
    for o, ref in zip(outs, hf_reference):
        stopped = ref[-1] == EOS
        assert o.truncated is (not stopped)
        assert o.num_tokens == (len(ref) - 1 if stopped else 30)


def test_no_compaction_and_small_chunks_give_the_same_tokens(qwen2, hf_reference):
    plain = make(qwen2, compaction=False).generate(prompts(), max_new_tokens=30, greedy=True)
    chunked = make(qwen2, max_batch=3).generate(prompts(), max_new_tokens=30, greedy=True)
    assert [o.token_ids for o in plain] == hf_reference
    assert [o.token_ids for o in chunked] == hf_reference


def test_min_new_tokens_masks_eos_like_generate(qwen2):
    ref = hf_greedy(qwen2, prompts(), 20, min_new=12)
    outs = make(qwen2).generate(prompts(), max_new_tokens=20, min_new_tokens=12, greedy=True)
    assert [o.token_ids for o in outs] == ref
    assert all(o.num_tokens >= 12 for o in outs)
    assert EOS not in [t for o in outs for t in o.token_ids[:12]]


@pytest.mark.parametrize("arch", ["qwen3", "llama"])
def test_other_architectures_greedy(arch):
    model = tiny(arch, seed=3)
    rows = prompts([4, 9, 2], seed=5)
    outs = make(model).generate(rows, max_new_tokens=12, greedy=True)
    assert [o.token_ids for o in outs] == hf_greedy(model, rows, 12)


@pytest.mark.parametrize("greedy,temperature", [(True, 1.0), (False, 0.8), (False, 1.3)])
def test_logprobs_match_full_forward(qwen2, greedy, temperature):
    rows = prompts()
    outs = make(qwen2).generate(
        rows, max_new_tokens=24, greedy=greedy, temperature=temperature, seed=7, return_logprobs=True
    )
    expected = recompute_logprobs(qwen2, rows, [o.token_ids for o in outs], temperature)
    for o, exp in zip(outs, expected):
        assert len(o.logprobs) == len(o.token_ids)
        assert torch.allclose(torch.tensor(o.logprobs), exp, atol=1e-4), (o.logprobs, exp)
    assert any(o.num_tokens < 24 for o in outs)  # some rows stopped, their log-probs end at the EOS


def first_token_probs(model, prompt, temperature):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
    return (logits / temperature).softmax(-1)


def first_token_freqs(model, prompt, n, **kw):
    gen = make(model, max_batch=n, max_len=16, min_bucket=16)
    outs = gen.generate([prompt] * n, max_new_tokens=1, **kw)
    return torch.bincount(torch.tensor([o.token_ids[0] for o in outs]), minlength=VOCAB).float() / n


def test_sampling_matches_softmax_of_scaled_logits(qwen2):
    prompt, n = [5, 9, 11], 4000
    probs = first_token_probs(qwen2, prompt, 1.5)
    assert (probs > 0.02).sum() >= 10  # a spread-out distribution, so the check means something
    freqs = first_token_freqs(qwen2, prompt, n, temperature=1.5, seed=11)
    # binomial std <= sqrt(0.25 / 4000) = 0.0079; 0.03 is about 4 std for the widest cell
    assert (freqs - probs).abs().max() < 0.03
    chi2 = (((freqs - probs) ** 2) / probs.clamp(min=1e-3)).sum() * n
    assert chi2 < 100, chi2  # 47 degrees of freedom: mean 47, p(chi2 > 100) < 1e-5


def test_top_k_and_top_p_exclude_tokens(qwen2):
    prompt, n = [5, 9, 11], 2000
    probs = first_token_probs(qwen2, prompt, 1.0)
    order = probs.argsort(descending=True)
    freqs = first_token_freqs(qwen2, prompt, n, top_k=5, seed=3)
    assert freqs[order[5:]].sum() == 0
    kept = probs[order[:5]] / probs[order[:5]].sum()
    assert (freqs[order[:5]] - kept).abs().max() < 0.05
    # top-p: the smallest prefix of the sorted tokens whose mass reaches 0.6
    cum = probs[order].cumsum(0)
    n_keep = int((cum < 0.6).sum()) + 1
    freqs = first_token_freqs(qwen2, prompt, n, top_p=0.6, seed=4)
    assert freqs[order[n_keep:]].sum() == 0
    assert (freqs[order[:n_keep]] > 0).all()


def test_seed_reproducible_and_stream_continues(qwen2):
    gen = make(qwen2)
    a = gen.generate(prompts(), max_new_tokens=10, seed=5)
    b = gen.generate(prompts(), max_new_tokens=10, seed=5)
    c = gen.generate(prompts(), max_new_tokens=10, seed=None)
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    assert [o.token_ids for o in a] != [o.token_ids for o in c]


def test_weights_updated_in_place_are_seen(qwen2):
    model = tiny("qwen2", seed=9)
    gen = make(model)
    before = [o.token_ids for o in gen.generate(prompts(), max_new_tokens=8, greedy=True)]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)  # what an optimizer step does: same storage, new values
    after = [o.token_ids for o in gen.generate(prompts(), max_new_tokens=8, greedy=True)]
    assert after != before
    assert after == [r[:8] if len(r) > 8 else r for r in hf_greedy(model, prompts(), 8)]


def test_errors_and_support_check(qwen2):
    gen = make(qwen2)
    with pytest.raises(R1kitError, match="max_len"):
        gen.generate([[1] * 40], max_new_tokens=30)
    with pytest.raises(R1kitError, match="no tokens"):
        gen.generate([[]], max_new_tokens=3)
    with pytest.raises(R1kitError, match="temperature"):
        gen.generate([[3]], max_new_tokens=3, temperature=0)
    assert unsupported_reason(qwen2) is None
    assert "model type" in unsupported_reason(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------
# FastRolloutMixin on trl's GRPOTrainer


def grpo_trainer(tmp_path, fast: str, **cfg):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from r1kit.models import build_tiny_model, build_tiny_tokenizer
    from r1kit.rl.fast_rollout import FastRolloutMixin

    class Trainer(FastRolloutMixin, GRPOTrainer):
        fast_rollout = fast

    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, "qwen2", seed=0)
    data = Dataset.from_dict({"prompt": ["12+7=", "3*4=", "99-1=", "8/2="]})
    args = {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 8,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "seed": 0,
        "use_cpu": True,
        "bf16": False,
    }
    args.update(cfg)
    return Trainer(
        model=model,
        reward_funcs=lambda completions, **kw: [float(sum(map(ord, c)) % 7) for c in completions],
        args=GRPOConfig(**args),
        train_dataset=data,
        processing_class=tok,
    )


def test_mixin_greedy_equals_trl_and_trains(tmp_path):
    trainer = grpo_trainer(tmp_path, "on", generation_kwargs={"do_sample": False})
    tok = trainer.processing_class
    prompt_ids = [tok(p)["input_ids"] for p in ["12+7=", "3*4=", "99-1=", "8/2="]]
    fast_ids, fast_lp = trainer._generate_single_turn(prompt_ids, None, {}, 4)
    trainer.fast_rollout = "off"
    trl_ids, _ = trainer._generate_single_turn(prompt_ids, None, {}, 4)
    trainer.fast_rollout = "on"
    assert fast_ids == trl_ids and fast_lp is None
    assert all(1 <= len(ids) <= 8 for ids in fast_ids)

    trainer.generation_kwargs["do_sample"] = True  # sampled groups differ, so advantages are non-zero
    gen = trainer._fast_gen
    p0 = next(trainer.model.parameters()).detach().clone()
    trainer.train()
    assert trainer._fast_gen is gen  # built once, reused by both training steps
    assert gen.buckets == {} and not gen.share_pool  # default: KV cache and graphs freed after each rollout
    assert gen.kv_block == 128  # a quarter of the 8 + 64-aligned cache, rounded up to 128
    assert len(trainer.fast_rollout_log) == 3  # the direct call above + 2 steps
    assert all(entry["rows"] == 4 and entry["fallback"] is None for entry in trainer.fast_rollout_log)
    assert not torch.equal(p0, next(trainer.model.parameters()).detach())  # the optimizer moved the weights
    # ...in place: every parameter still has the storage the generator (and its graphs) saw
    assert gen._param_ptrs == tuple(p.data_ptr() for p in gen.model.parameters())
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


def test_mixin_falls_back_for_unhandled_settings(tmp_path):
    trainer = grpo_trainer(tmp_path, "on", repetition_penalty=1.2, max_steps=1)
    tok = trainer.processing_class
    ids, _ = trainer._generate_single_turn([tok("1+1=")["input_ids"]] * 4, None, {}, 4)
    assert len(ids) == 4 and trainer._fast_gen is None  # trl's own generate ran
    auto = grpo_trainer(tmp_path, "auto", max_steps=1)  # no CUDA here: auto means trl's path
    auto._generate_single_turn([tok("1+1=")["input_ids"]] * 4, None, {}, 4)
    assert auto._fast_gen is None


def test_mixin_keep_cache_holds_the_buckets(tmp_path):
    trainer = grpo_trainer(tmp_path, "on", max_steps=1)
    trainer.fast_rollout_keep_cache = True
    trainer.train()
    gen = trainer._fast_gen
    assert gen.share_pool and gen.kv_block == 128 and len(gen.buckets) == 1  # kept for the next step


def test_mixin_rollouts_follow_the_trainers_bf16_autocast(tmp_path):
    """fp32 weights trained under bf16 mixed precision (a dequantized GGUF under `r1kit grpo` on a GPU):
    the rollouts run under the trainer's autocast like trl's generate, so the loop's KV cache is bf16
    and K/V are cast into it (an fp32 cache met bf16 projections: index_copy_(): Float vs BFloat16)."""
    trainer = grpo_trainer(tmp_path, "on", bf16=True, max_steps=1)
    assert trainer.accelerator.mixed_precision == "bf16"
    assert next(trainer.model.parameters()).dtype == torch.float32
    trainer.train()
    gen = trainer._fast_gen
    assert gen.cache_dtype == torch.bfloat16 and trainer.fast_rollout_log[-1]["rows"] == 4
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 1 and torch.isfinite(torch.tensor(losses[0]))
