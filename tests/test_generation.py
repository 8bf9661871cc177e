"""The batched transformers backend against one-prompt-at-a-time `model.generate`."""

import importlib.util

import pytest
import torch

from r1kit.errors import R1kitError
from r1kit.generation import SamplingParams, encode_prompts, get_backend, render_prompt
from r1kit.models import build_tiny_model, build_tiny_tokenizer

PROMPTS = ["7+5=", "123+4567=", "1", "98765-4321 = ?", "What is 2+2?"]


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer()
    return build_tiny_model(tok, seed=0), tok


def _single_greedy(model, tok, prompt, max_new_tokens, prefill=""):
    ids = torch.tensor([encode_prompts(tok, [prompt], prefill)[0]])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    new = out[0, ids.shape[1] :].tolist()
    return new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, tok = tiny
    lengths = {len(encode_prompts(tok, [p])[0]) for p in PROMPTS}
    assert len(lengths) >= 4  # really different lengths, so left padding matters
    out = get_backend("hf", model, tok).generate(
        PROMPTS, SamplingParams(greedy=True, max_new_tokens=16, batch_size=3)
    )
    for prompt, samples in zip(PROMPTS, out):
        assert len(samples) == 1
        expected = _single_greedy(model, tok, prompt, 16)
        assert samples[0].token_ids == expected
        assert samples[0].text == tok.decode(expected, skip_special_tokens=True)
    # the outputs differ between prompts: the comparison is not trivially equal
    assert len({tuple(s[0].token_ids) for s in out}) > 1


def test_n_samples_shape_order_and_seed(tiny):
    model, tok = tiny
    backend = get_backend("hf", model, tok)
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=6, batch_size=4, seed=1)
    out = backend.generate(PROMPTS, params)
    assert [len(s) for s in out] == [3] * len(PROMPTS)
    assert all(c.num_tokens == len(c.token_ids) <= 6 for s in out for c in s)
    # sampling: not all three samples of a prompt are the same; same seed, same samples
    assert any(len({c.text for c in s}) > 1 for s in out)
    again = backend.generate(PROMPTS, params)
    assert [[c.token_ids for c in s] for s in again] == [[c.token_ids for c in s] for s in out]
    # greedy with n > 1: n identical copies
    greedy = backend.generate(PROMPTS[:2], SamplingParams(n=2, greedy=True, max_new_tokens=5))
    assert all(s[0].token_ids == s[1].token_ids and s[0] is not s[1] for s in greedy)


def test_truncated_and_num_tokens(tiny):
    model, tok = tiny
    out = get_backend("hf", model, tok).generate(PROMPTS, SamplingParams(greedy=True, max_new_tokens=4))
    for (c,) in out:
        assert c.truncated is True and c.num_tokens == 4 and len(c.token_ids) == 4


def _eos_model(tok, seed=0):
    """A tiny model whose output layer always prefers EOS (a large bias on that logit)."""
    model = build_tiny_model(tok, seed=seed)
    old = model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        head.bias[tok.eos_token_id] = 1e4
    model.lm_head = head
    return model


def test_eos_stops_and_is_not_counted(tiny):
    _, tok = tiny
    backend = get_backend("hf", _eos_model(tok), tok)
    out = backend.generate(PROMPTS, SamplingParams(greedy=True, max_new_tokens=8), prefill="<think>\n")
    for (c,) in out:
        assert c.truncated is False and c.num_tokens == 0 and c.token_ids == [] and c.text == "<think>\n"
    # min_new_tokens holds EOS back for 3 steps: 3 tokens, then EOS, then padding (all dropped)
    out = backend.generate(PROMPTS, SamplingParams(n=2, temperature=1.0, max_new_tokens=8, min_new_tokens=3))
    for s in out:
        for c in s:
            assert c.truncated is False and c.num_tokens == 3 and tok.eos_token_id not in c.token_ids


def test_prefill_is_fed_and_prepended(tiny):
    model, tok = tiny
    prefill = "<think>\n"
    out = get_backend("hf", model, tok).generate(
        PROMPTS[:3], SamplingParams(greedy=True, max_new_tokens=8), prefill
    )
    for prompt, (c,) in zip(PROMPTS, out):
        assert c.text.startswith(prefill)
        expected = _single_greedy(model, tok, prompt, 8, prefill)
        assert c.token_ids == expected and c.text == prefill + tok.decode(expected, skip_special_tokens=True)


def test_chat_messages_use_the_chat_template(tiny):
    model, tok = tiny
    messages = [{"role": "user", "content": "2+2?"}]
    text, chat = render_prompt(tok, messages, "<think>\n")
    assert chat and text == "<|user|>2+2?<|end|><|assistant|><think>\n"
    ((c,),) = get_backend("hf", model, tok).generate(
        [messages], SamplingParams(greedy=True, max_new_tokens=5)
    )
    ids = encode_prompts(tok, [messages])[0]
    assert ids[-1] == tok.convert_tokens_to_ids("<|assistant|>")
    assert c.num_tokens == 5


def test_seeded_call_leaves_the_global_rng_and_train_mode_alone(tiny):
    model, tok = tiny
    model.train()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    get_backend("hf", model, tok).generate(PROMPTS[:2], SamplingParams(n=2, max_new_tokens=3, seed=7))
    assert torch.equal(torch.rand(3), expected)
    assert model.training
    model.eval()


def test_bad_params_and_backend_names(tiny):
    model, tok = tiny
    with pytest.raises(R1kitError, match=r"Did you mean 'vllm'"):
        get_backend("vlm", model, tok)
    with pytest.raises(R1kitError, match="temperature"):
        SamplingParams(temperature=0.0)
    with pytest.raises(R1kitError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)
    with pytest.raises(R1kitError, match="prompt 1 is empty"):
        get_backend("hf", model, tok).generate(["1+1", ""], SamplingParams(max_new_tokens=2))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_extra_is_a_user_error(tiny):
    _, tok = tiny
    with pytest.raises(R1kitError) as err:
        get_backend("vllm", "some/model", tok)
    assert str(err.value) == "the vllm backend needs the vllm extra: pip install 'r1kit[vllm]'"


@pytest.mark.gpu
def test_static_cache_on_cuda_matches_dynamic():
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, seed=0).cuda()
    params = SamplingParams(greedy=True, max_new_tokens=16, batch_size=3)  # 5 prompts: a filled-up last batch
    static = get_backend("hf", model, tok, static_cache=True)
    assert static.use_static
    dynamic = get_backend("hf", model, tok, static_cache=False)
    got = [s[0].token_ids for s in static.generate(PROMPTS, params)]
    assert got == [s[0].token_ids for s in dynamic.generate(PROMPTS, params)]
