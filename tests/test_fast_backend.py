"""The "fast" generation backend (r1kit/generation/fast_backend.py) against the "hf" backend on CPU:
the same greedy completions (text, token ids, num_tokens, truncated) for plain-string and chat
prompts, with a prefill and with stop strings, on the tiny Qwen2 and on a tiny random Gemma 3 (sliding
window shorter than the sequences); "auto" choosing; and the stages' --backend option."""

import json

import pytest
import torch
from conftest import run_cli

from r1kit.errors import R1kitError
from r1kit.generation import SamplingParams, choose_backend, get_backend
from r1kit.models import build_tiny_model, build_tiny_tokenizer

PROMPTS = [
    "7+5=",
    "123+4567=",
    "1",
    "98765-4321 = ?",
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 31 and 11."}],
]


def tiny_gemma3(tok, seed=0):
    """A random Gemma 3 over the tiny tokenizer: 4-token sliding window in 2 of 3 layers."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=4,
        query_pre_attn_scalar=9,
        initializer_range=0.3,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10.0},
            "full_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model.eval()


@pytest.fixture(scope="module", params=["tiny", "gemma3"])
def model_tok(request):
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, seed=0) if request.param == "tiny" else tiny_gemma3(tok, seed=3)
    return model.eval(), tok


def as_tuples(out):
    return [[(c.text, c.token_ids, c.num_tokens, c.truncated) for c in samples] for samples in out]


def test_fast_equals_hf_greedy_with_prefill(model_tok):
    model, tok = model_tok
    params = SamplingParams(greedy=True, max_new_tokens=40, batch_size=4, n=2)
    hf = get_backend("hf", model, tok).generate(PROMPTS, params, prefill="<think>\n")
    fast = get_backend("fast", model, tok).generate(PROMPTS, params, prefill="<think>\n")
    assert as_tuples(fast) == as_tuples(hf)
    assert all(len(s) == 2 and s[0].text.startswith("<think>\n") for s in fast)
    assert len({c[0].text for c in fast}) > 2  # the completions differ between prompts


def test_fast_equals_hf_with_stop_strings(model_tok):
    model, tok = model_tok
    params = SamplingParams(greedy=True, max_new_tokens=48, batch_size=8)
    plain = get_backend("hf", model, tok).generate(PROMPTS, params)
    # stop strings taken from what the model writes: a 2-character piece from the middle of one
    # completion and one from another, so several rows stop early and the rest do not
    texts = [s[0].text for s in plain]
    long = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    stops = [texts[long[0]][20:22], texts[long[1]][30:32]]
    assert all(len(s) == 2 for s in stops)
    params.stop = stops
    hf = get_backend("hf", model, tok).generate(PROMPTS, params)
    fast_backend = get_backend("fast", model, tok, check_every=4)
    fast = fast_backend.generate(PROMPTS, params)
    assert as_tuples(fast) == as_tuples(hf)
    cut = [i for i in range(len(PROMPTS)) if fast[i][0].text != texts[i]]
    assert len(cut) >= 2
    for i in cut:
        c = fast[i][0]
        assert not c.truncated and all(s not in c.text for s in stops)
        assert texts[i].startswith(c.text)
        full = tok.decode(c.token_ids, skip_special_tokens=True)
        assert any(s in full for s in stops)  # the last kept token completed a stop string...
        assert all(
            s not in tok.decode(c.token_ids[:-1], skip_special_tokens=True) for s in stops
        )  # ...just then
    # the loop ended those rows early: at most check_every - 1 = 3 tokens past the stop were generated
    from r1kit.generation import encode_prompts

    raw = fast_backend.generator.generate(
        encode_prompts(tok, PROMPTS), max_new_tokens=48, greedy=True, stop=fast_backend._stop_check(stops)
    )
    for i, out in enumerate(raw):
        assert out.stopped == (i in cut)
        if i in cut:
            assert len(fast[i][0].token_ids) <= len(out.token_ids) <= len(fast[i][0].token_ids) + 3


def test_sampling_n_seed_and_params(model_tok):
    model, tok = model_tok
    backend = get_backend("fast", model, tok)
    params = SamplingParams(
        n=3, temperature=1.0, top_p=0.9, top_k=20, max_new_tokens=12, seed=5, batch_size=4
    )
    a = backend.generate(PROMPTS[:3], params)
    b = backend.generate(PROMPTS[:3], params)
    assert as_tuples(a) == as_tuples(b)  # seeded
    assert [len(s) for s in a] == [3, 3, 3]
    assert any(len({c.text for c in s}) > 1 for s in a)  # samples of a prompt differ
    params.seed = 6
    assert as_tuples(backend.generate(PROMPTS[:3], params)) != as_tuples(a)
    for samples in a:
        for c in samples:
            assert c.num_tokens == len(c.token_ids) <= 12 and c.truncated == (
                c.num_tokens == 12 and c.truncated
            )


def test_auto_picks_hf_on_cpu_and_fast_on_cuda_for_supported_models(capsys):
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, seed=0)
    backend = get_backend("auto", model, tok)
    assert backend.name == "hf"
    assert (
        "generation backend: hf (transformers generate); auto: not on a CUDA GPU" in capsys.readouterr().out
    )

    class OnCuda(type(model)):  # what choose_backend sees of a model on a GPU
        @property
        def device(self):
            return torch.device("cuda")

    model.__class__ = OnCuda
    assert choose_backend(model) == ("fast", "CUDA GPU, qwen2 is supported by r1kit's decode loop")
    model.config.model_type = "gpt2"
    name, why = choose_backend(model)
    assert name == "hf" and "'gpt2' is not one of" in why


def test_fast_backend_refuses_an_unsupported_model():
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, seed=0)
    model.config.model_type = "gpt2"
    with pytest.raises(R1kitError, match="fast generation backend cannot drive this model.*use --backend hf"):
        get_backend("fast", model, tok)
    with pytest.raises(R1kitError, match=r"unknown generation backend .fats.\. Did you mean .fast.\?"):
        get_backend("fats", model, tok)


# ----------------------------------------------------------------------------- the stages


@pytest.fixture
def fewshot_files(tmp_path):
    train = tmp_path / "train.jsonl"
    test = tmp_path / "test.jsonl"
    rows = [
        ("What is 12 plus 7?", "12+7 = 19.\n#### 19"),
        ("What is 3 plus 4?", "3+4 = 7.\n#### 7"),
        ("What is 40 plus 2?", "40+2 = 42.\n#### 42"),
    ]
    train.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows))
    tests = [
        ("What is 9 plus 9?", "#### 18"),
        ("What is 100 plus 1?", "#### 101"),
        ("What is 5 plus 5?", "#### 10"),
    ]
    test.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in tests))
    return train, test


def test_evaluate_few_shot_with_stop_fast_equals_hf(tmp_path, fewshot_files):
    from datasets import load_from_disk

    train, test = fewshot_files
    rows = {}
    for backend in ("fast", "auto"):  # auto is hf on this CPU machine
        out = tmp_path / backend
        res = run_cli(
            "evaluate",
            "--model",
            "tiny",
            "--data",
            test,
            "--task",
            "gsm8k",
            "--few-shot",
            "2",
            "--few-shot-data",
            train,
            "--stop",
            "Question:",
            "--stop",
            "::",
            "--extract",
            "last_number",
            "--greedy",
            "--max-new-tokens",
            "24",
            "--backend",
            backend,
            "--output",
            out,
        )
        assert res.returncode == 0, res.stderr
        rows[backend] = load_from_disk(str(out / "data")).to_list()
        assert f"backend: {backend}" in (out / "resolved_config.yaml").read_text()
    assert "generation backend: hf (transformers generate); auto: not on a CUDA GPU" in res.stdout
    keys = ("prompt", "completion", "num_tokens", "truncated", "extracted")
    assert [{k: r[k] for k in keys} for r in rows["fast"]] == [{k: r[k] for k in keys} for r in rows["auto"]]
    assert all(r["prompt"].count("Question: ") == 3 for r in rows["fast"])
    # the untrained tiny model writes ":::...": the "::" stop ends every row after its second token
    assert all(r["completion"] == "" and r["num_tokens"] == 2 and not r["truncated"] for r in rows["fast"])


def test_rejection_sample_with_the_fast_backend(tmp_path, fewshot_files):
    from datasets import load_from_disk

    _, test = fewshot_files
    res = run_cli(
        "rejection-sample",
        "--model",
        "tiny",
        "--data",
        test,
        "--task",
        "gsm8k",
        "--template",
        "raw",
        "--num-samples",
        "2",
        "--max-new-tokens",
        "8",
        "--keep",
        "all",
        "--backend",
        "fast",
        "--output",
        tmp_path / "rs",
    )
    assert res.returncode == 0, res.stderr
    assert "generation backend" not in res.stdout  # said only when auto chooses
    samples = load_from_disk(str(tmp_path / "rs" / "data")).to_list()
    assert len(samples) == 3 * 2
    for r in samples:  # num_tokens counts the generated tokens of the completion (no EOS, at most 8)
        assert 0 < r["num_tokens"] <= 8 and (r["num_tokens"] == 8 or not r["truncated"])
    assert sorted({r["sample_index"] for r in samples}) == [0, 1]
