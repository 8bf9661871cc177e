"""Model loading: the tiny tokenizer/model, save/load round trips, stage outputs, LoRA, GGUF, errors."""

import json
import os

import pytest
import torch

from r1kit.errors import R1kitError
from r1kit.models import (
    build_tiny_model,
    build_tiny_tokenizer,
    is_checkpoint_spec,
    load_model,
    load_model_and_tokenizer,
    load_tokenizer,
    resolve_checkpoint,
    resolve_checkpoint_dir,
    save_model,
)


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tok):
    """A tiny model saved with save_model, and its logits on a fixed input."""
    model = build_tiny_model(tok, seed=3)
    path = save_model(model, tok, tmp_path_factory.mktemp("ckpt") / "tiny")
    return path, model


TEXT = (
    "<|user|>What is 482+379?<|end|><|assistant|><think>\n2+9=11 w1 c1\n</think> <answer>861</answer><|end|>"
)


def test_tokenizer_round_trip_and_single_token_specials(tok):
    assert len(tok) == 106
    for text in ["  two  spaces\n\nnewlines", "~!@#$%^&*()_+{}|:\"<>?`'-=[];,./\\"]:
        ids = tok(text)["input_ids"]
        assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.decode(tok(TEXT)["input_ids"]) == TEXT
    assert tok.decode(tok("a<think>b</think>c")["input_ids"]) == "a<think>b</think>c"
    # outside the vocabulary: tab is one <unk>, a two-byte character two
    assert tok("a\tb\u00e9")["input_ids"] == [76, 1, 77, 1, 1]
    specials = [
        "<pad>",
        "<unk>",
        "<|end|>",
        "<|user|>",
        "<|assistant|>",
        "<|system|>",
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
    ]
    assert [tok.convert_tokens_to_ids(t) for t in specials] == list(range(10))
    for i, t in enumerate(specials):
        assert tok(t)["input_ids"] == [i]
    assert (tok.pad_token_id, tok.unk_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.bos_token is None and tok.padding_side == "right"
    # one id per character: "What is" is 7 tokens
    assert len(tok("What is")["input_ids"]) == 7
    # skipping specials drops roles and eos but keeps the tags that rewards parse
    ids = tok(TEXT)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == (
        "What is 482+379?<think>\n2+9=11 w1 c1\n</think> <answer>861</answer>"
    )


def test_chat_template(tok):
    msgs = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "<think>t</think>"},
    ]
    assert tok.apply_chat_template(msgs, tokenize=False) == (
        "<|system|>S<|end|><|user|>Q?<|end|><|assistant|><think>t</think><|end|>"
    )
    assert tok.apply_chat_template(msgs[1:2], tokenize=False, add_generation_prompt=True) == (
        "<|user|>Q?<|end|><|assistant|>"
    )
    out = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ab"}],
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    # <|user|> h i <|end|> <|assistant|> a b <|end|>: the mask covers the answer and its eos
    assert out["assistant_masks"] == [0, 0, 0, 0, 0, 1, 1, 1]


def test_tiny_models_shapes_params_and_determinism(tok):
    model = build_tiny_model(tok)
    n = sum(p.numel() for p in model.parameters())
    assert 700_000 < n < 1_200_000
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.tie_word_embeddings
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    assert model(ids).logits.shape == (1, ids.shape[1], 106)
    assert model.generation_config.eos_token_id == 2 and model.generation_config.pad_token_id == 0

    llama = build_tiny_model(tok, arch="tiny-llama")
    assert type(llama).__name__ == "LlamaForCausalLM"
    assert 200_000 < sum(p.numel() for p in llama.parameters()) < n

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = build_tiny_model(tok, seed=0), build_tiny_model(tok, seed=0), build_tiny_model(tok, seed=1)
    assert torch.rand(1) == before  # building does not consume the caller's RNG
    assert torch.equal(a(ids).logits, b(ids).logits)
    assert not torch.equal(a(ids).logits, c(ids).logits)


def test_load_tiny_by_name():
    model, tok = load_model_and_tokenizer("tiny", device="cpu", seed=0)
    assert model.device.type == "cpu" and model.dtype == torch.float32 and len(tok) == 106
    assert load_model("tiny-llama", device="cpu").config.model_type == "llama"
    assert load_model("tiny", device="cpu", dtype="bfloat16").dtype == torch.bfloat16


def test_save_load_round_trip_identical_logits(saved, tok):
    path, model = saved
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    loaded, tok2 = load_model_and_tokenizer(str(path), device="cpu")
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    assert tok2(TEXT)["input_ids"] == ids[0].tolist()
    assert (
        tok2.apply_chat_template(
            [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
        )
        == "<|user|>x<|end|><|assistant|>"
    )
    assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert loaded.generation_config.eos_token_id == 2
    assert resolve_checkpoint_dir(str(path)) == path
    # a plain AutoTokenizer (which picks transformers' Qwen2Tokenizer for a qwen2 config) agrees too
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(path))(TEXT)["input_ids"] == ids[0].tolist()


def test_stage_output_folder_loads_model_subfolder(tmp_path, saved, tok):
    _, model = saved
    stage = tmp_path / "sft_out"
    (stage / "data").mkdir(parents=True)
    save_model(model, tok, stage / "model")
    (stage / "manifest.json").write_text(json.dumps({"stage": "sft"}))
    assert resolve_checkpoint_dir(str(stage)) == stage / "model"
    assert is_checkpoint_spec(str(stage))
    loaded = load_model(str(stage), device="cpu")
    ids = torch.tensor([tok("What is 1+1?")["input_ids"]])
    assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_lora_adapter_folder_is_merged(tmp_path, saved, tok):
    from peft import LoraConfig, get_peft_model

    path, _ = saved
    base = load_model(str(path), device="cpu")
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    ids = torch.tensor([tok("What is 1+1?")["input_ids"]])
    with torch.no_grad():
        expected = peft_model(ids).logits
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(path)
    assert resolve_checkpoint(str(tmp_path / "adapter")).kind == "adapter"
    merged, tok2 = load_model_and_tokenizer(str(tmp_path / "adapter"), device="cpu")
    assert not hasattr(merged, "peft_config")  # a plain model after merge_and_unload
    assert len(tok2) == 106
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, expected, atol=1e-5)


def test_load_errors(tmp_path, monkeypatch):
    with pytest.raises(R1kitError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(R1kitError, match="does not exist"):
        load_tokenizer(str(tmp_path / "nope.gguf"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(R1kitError) as err:
        load_model(str(empty))
    assert str(err.value) == (
        f"{empty} is not a checkpoint: no config.json (expected a save_pretrained folder, an r1kit stage "
        "output, a .gguf file, 'tiny' or a hub id)"
    )
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(R1kitError, match="not a .gguf model"):
        load_model(str(tmp_path / "weights.bin"))
    with pytest.raises(R1kitError, match="unknown dtype 'bf16'"):
        load_model("tiny", dtype="bf16")
    assert not is_checkpoint_spec(str(empty)) and is_checkpoint_spec("tiny")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not is_checkpoint_spec("someorg/some-model-that-is-not-cached")
    with pytest.raises(R1kitError, match="does not exist locally, and as a hub id .* HF_HUB_OFFLINE=1"):
        resolve_checkpoint_dir("someorg/some-model-that-is-not-cached")  # fails before torch is needed
    with pytest.raises(R1kitError, match="does not exist locally, and as a hub id .* HF_HUB_OFFLINE=1"):
        load_model("someorg/some-model-that-is-not-cached")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_checkpoint("someorg/some-model-that-is-not-cached").kind == "hub"


def write_tiny_gguf(model, tok, path, quantize=None):
    """Write a Qwen2 tiny model to GGUF as llama.cpp's converter would: 'gpt2' (byte-level) vocabulary,
    CONTROL/USER_DEFINED token types, llama.cpp tensor names, tied output omitted."""
    import gguf

    cfg = model.config
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name("r1kit-tiny")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    added = set(tok.get_added_vocab())
    specials = set(tok.all_special_tokens)
    tokens, types = [], []
    for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]):
        types.append(
            gguf.TokenType.CONTROL
            if t in specials
            else gguf.TokenType.USER_DEFINED
            if t in added
            else gguf.TokenType.NORMAL
        )
        tokens.append(t)  # the tiny vocabulary is already spelled in the byte alphabet
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_merges([])
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_unk_token_id(tok.unk_token_id)
    w.add_chat_template(tok.chat_template)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, cfg.num_hidden_layers)
    for name, p in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: llama.cpp omits output.weight
        data = p.detach().float().numpy()
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if quantize is not None and data.ndim == 2:
            w.add_tensor(new, gguf.quants.quantize(data, quantize), raw_dtype=quantize)
        else:
            w.add_tensor(new, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_file_loads_with_its_tokenizer(tmp_path, saved, tok):
    import gguf

    _, model = saved
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    with torch.no_grad():
        expected = model(ids).logits
    write_tiny_gguf(model, tok, tmp_path / "tiny-f32.gguf")
    assert resolve_checkpoint(str(tmp_path / "tiny-f32.gguf")).kind == "gguf"
    loaded, tok2 = load_model_and_tokenizer(str(tmp_path / "tiny-f32.gguf"), device="cpu")
    assert type(loaded).__name__ == "Qwen2ForCausalLM"
    assert tok2(TEXT)["input_ids"] == ids[0].tolist() and tok2.decode(ids[0]) == TEXT
    assert tok2.eos_token == "<|end|>" and tok2.pad_token == "<pad>"
    assert loaded.generation_config.eos_token_id == 2
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, expected)

    # Q8_0 weights are dequantized to a dense model: close to, not equal to, the original
    write_tiny_gguf(model, tok, tmp_path / "tiny-q8.gguf", quantize=gguf.GGMLQuantizationType.Q8_0)
    q8 = load_model(str(tmp_path / "tiny-q8.gguf"), device="cpu", dtype="float32")
    with torch.no_grad():
        diff = (q8(ids).logits - expected).abs().max().item()
    assert 0 < diff < 0.05


# ----------------------------------------------------------------------------- GGUF version check


def header_only_gguf(path, arch: str):
    """A GGUF file with metadata (a string array before the architecture is read) and no tensors."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("header only")
    w.add_token_list(["<pad>", "a", "b"])
    w.add_block_count(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    return path


def test_gguf_architecture_is_read_from_the_header(tmp_path, saved, tok):
    from r1kit.models import gguf_architecture

    assert gguf_architecture(header_only_gguf(tmp_path / "g.gguf", "gemma3")) == "gemma3"
    write_tiny_gguf(saved[1], tok, tmp_path / "tiny.gguf")
    assert gguf_architecture(tmp_path / "tiny.gguf") == "qwen2"
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file")
    assert gguf_architecture(tmp_path / "junk.gguf") is None


def test_gguf_known_to_misload_under_old_transformers_is_refused(tmp_path):
    from r1kit.models import check_gguf_transformers

    path = header_only_gguf(tmp_path / "gemma.gguf", "gemma3")
    with pytest.raises(
        R1kitError,
        match=r"transformers 5\.17\.0 loads the Gemma 3 GGUF tokenizer wrongly.*"
        r"install transformers>=5\.24\.0",
    ):
        check_gguf_transformers(path, "5.17.0")
    check_gguf_transformers(path, "5.24.0")  # healthy: no error
    check_gguf_transformers(header_only_gguf(tmp_path / "q.gguf", "qwen2"), "5.17.0")  # no known problem


def test_cli_refuses_the_gguf_in_one_line_before_writing(tmp_path):
    """The real command line, run under a transformers that reports version 5.17.0."""
    import subprocess
    import sys

    path = header_only_gguf(tmp_path / "gemma.gguf", "gemma3")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "1+1", "answer": "2"}) + "\n")
    out = tmp_path / "eval"
    code = (
        "import sys, transformers; transformers.__version__ = '5.17.0'; from r1kit.cli import main; "
        f"sys.argv = ['r1kit', 'evaluate', '--model', {str(path)!r}, '--data', {str(data)!r}, "
        f"'--output', {str(out)!r}]; main()"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "r1kit: error: transformers 5.17.0 loads the Gemma 3 GGUF tokenizer"
    )
    assert "pip install 'transformers>=5.24.0'" in lines[0]
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith("eval")] == []


# ----------------------------------------------------------------------------- sanity check


def test_sanity_check_flags_a_random_model_and_the_script_fails_loudly(tmp_path, capsys):
    from r1kit.models import check_sanity, sanity_check

    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, seed=0)
    model.train()
    report = sanity_check(model, tok, max_new_tokens=5)
    assert model.training  # mode restored
    # an untrained model over a 106-token vocabulary is about as good as uniform: perplexity ~106
    assert len(report["perplexity"]) == 2 and all(80 < p < 140 for p in report["perplexity"])
    assert (
        report["prompt"] == "The capital of France is" and len(tok(report["continuation"])["input_ids"]) <= 5
    )
    with pytest.raises(R1kitError, match="fails the sanity check: perplexity"):
        check_sanity(report, 100)
    check_sanity(report, 1000)

    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("real_model_check", REPO / "bench" / "real_model_check.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    capsys.readouterr()
    assert (
        script.main(["--model", "tiny", "--out", str(tmp_path / "c.json")]) == 1
    )  # the script's exit status
    assert "SANITY CHECK FAILED: the model fails the sanity check" in capsys.readouterr().err
    saved_report = json.loads((tmp_path / "c.json").read_text())
    assert saved_report["ok"] is False and saved_report["perplexity"] == pytest.approx(
        report["perplexity"], rel=1e-4
    )
    assert script.main(["--model", "tiny", "--max-perplexity", "1000"]) == 0
    assert "sanity check passed" in capsys.readouterr().out


def test_each_rank_loads_on_its_own_gpu(monkeypatch):
    """Under accelerate/torchrun, rank k's model goes to cuda:LOCAL_RANK, not to GPU 0 first."""
    import torch

    from r1kit.models import _device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _device(None) == "cuda:1"
    monkeypatch.delenv("LOCAL_RANK")
    assert _device(None) == "cuda"
    assert _device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _device(None) == "cpu"
