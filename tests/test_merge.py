"""`r1kit merge` through the real CLI on tiny random-init checkpoints.

Expected tensors are computed here by hand from the saved inputs (w_i * tensor_i in float32),
never by the code under test.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from safetensors import safe_open

from r1kit.models import build_tiny_model, build_tiny_tokenizer, save_model


def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            out.update({k: fh.get_tensor(k) for k in fh.keys()})  # noqa: SIM118 - safe_open is not a dict
    return out


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Three float32 tiny Qwen2 models (seeds 0, 1, 2), a sharded copy of A, a bfloat16 pair,
    a wider model, a bigger-vocab model and a Llama."""
    root = tmp_path_factory.mktemp("ckpts")
    tok = build_tiny_tokenizer()
    paths: dict[str, Path] = {}
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        model = build_tiny_model(tok, seed=seed)
        paths[name] = save_model(model, tok, root / name)
        if name == "a":
            model.save_pretrained(str(root / "a_sharded"), max_shard_size="200KB")
            tok.save_pretrained(str(root / "a_sharded"))
            paths["a_sharded"] = root / "a_sharded"
        if name in ("a", "b"):
            paths[f"{name}_bf16"] = save_model(model.to(torch.bfloat16), tok, root / f"{name}_bf16")

    from transformers import Qwen2ForCausalLM

    wide_cfg = build_tiny_model(tok).config
    wide_cfg.hidden_size, wide_cfg.intermediate_size = 64, 192
    torch.manual_seed(3)
    paths["wide"] = save_model(Qwen2ForCausalLM(wide_cfg), tok, root / "wide")

    big_tok = build_tiny_tokenizer()
    big_tok.add_tokens(["<extra>"])
    paths["bigvocab"] = save_model(build_tiny_model(big_tok, seed=4), big_tok, root / "bigvocab")

    paths["llama"] = save_model(build_tiny_model(tok, arch="llama"), tok, root / "llama")

    # Same size, same shapes, but two tokens swapped: only the tokenizer check can see it.
    swapped = root / "swapped"
    shutil.copytree(paths["b"], swapped)
    tj = json.loads((swapped / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]
    (swapped / "tokenizer.json").write_text(json.dumps(tj))
    paths["swapped"] = swapped
    return paths


def merge(tmp_path, *models, weights=(), extra=()):
    out = tmp_path / "merged"
    args = ["merge", *[a for m in models for a in ("--model", str(m))]]
    args += [a for w in weights for a in ("--weight", str(w))]
    return out, run_cli(*args, "--output", str(out), *extra)


def test_weighted_average_of_three_sharded_models(ckpts, tmp_path):
    """Sharded input A + B + C with weights 1, 2, 1 -> 0.25 A + 0.5 B + 0.25 C, tensor by tensor."""
    out, res = merge(
        tmp_path,
        ckpts["a_sharded"],
        ckpts["b"],
        ckpts["c"],
        weights=(1, 2, 1),
        extra=("--max-shard-size", "300KB"),
    )
    assert res.returncode == 0, res.stderr
    merged = load_tensors(out / "model")
    a, b, c = (load_tensors(ckpts[k]) for k in "abc")
    assert set(merged) == set(a) and len(merged) == 50  # tied model: no lm_head stored
    for name, t in merged.items():
        expected = 0.25 * a[name] + 0.5 * b[name] + 0.25 * c[name]
        assert t.dtype == torch.float32 and t.shape == a[name].shape
        assert torch.allclose(t, expected, rtol=1e-6, atol=1e-7), name
    # Output is sharded (3.2 MB of weights over 300 KB shards) with a consistent index.
    index = json.loads((out / "model" / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in (out / "model").glob("*.safetensors"))
    assert len(shards) > 1 and set(index["weight_map"].values()) == set(shards)
    assert index["metadata"]["total_size"] == sum(t.numel() * 4 for t in merged.values()) == 3_208_704
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["normalised_weights"] == [0.25, 0.5, 0.25]
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["tensors"] == 50 and metrics[-1]["parameters"] == 802_176
    assert metrics[-1]["peak_rss_bytes"] > 0
    for f in (
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ):
        assert (out / "model" / f).read_bytes() == (ckpts["a"] / f).read_bytes(), f


def test_weights_one_zero_reproduce_first_model(ckpts, tmp_path):
    out, res = merge(tmp_path, ckpts["a"], ckpts["b"], weights=(1, 0))
    assert res.returncode == 0, res.stderr
    merged, a = load_tensors(out / "model"), load_tensors(ckpts["a"])
    assert all(torch.equal(merged[k], a[k]) for k in a) and set(merged) == set(a)

    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[3, 20, 40, 60, 80, 100, 7, 2]])
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(str(out / "model")).eval()(ids).logits
        want = AutoModelForCausalLM.from_pretrained(str(ckpts["a"])).eval()(ids).logits
    assert torch.equal(got, want)

    # The stage output itself is a valid input (its model/ folder is read), and --overwrite
    # replaces an existing output.
    again = tmp_path / "again"
    again.mkdir()
    res = run_cli(
        "merge",
        "--model",
        out,
        "--model",
        ckpts["c"],
        "--weight",
        "1",
        "--weight",
        "0",
        "--output",
        again,
        "--overwrite",
    )
    assert res.returncode == 0, res.stderr
    assert all(torch.equal(t, a[k]) for k, t in load_tensors(again / "model").items())
    assert json.loads((again / "manifest.json").read_text())["inputs"]["models"][0] == str(out)


def test_bfloat16_is_kept(ckpts, tmp_path):
    out, res = merge(tmp_path, ckpts["a_bf16"], ckpts["b_bf16"])  # default: equal weights
    assert res.returncode == 0, res.stderr
    merged, a, b = load_tensors(out / "model"), load_tensors(ckpts["a_bf16"]), load_tensors(ckpts["b_bf16"])
    for name, t in merged.items():
        assert t.dtype == torch.bfloat16
        expected = (0.5 * a[name].float() + 0.5 * b[name].float()).to(torch.bfloat16)
        assert torch.equal(t, expected), name
    assert sum(p.stat().st_size for p in (out / "model").glob("*.safetensors")) < 1_700_000  # 2 bytes/param


def test_lora_adapter_is_merged_into_base_then_averaged(ckpts, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(ckpts["a"]))
    torch.manual_seed(5)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.peft_config["default"].base_model_name_or_path = str(ckpts["a"])
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter))

    out, res = merge(tmp_path, adapter, ckpts["b"], weights=(3, 1))
    assert res.returncode == 0, res.stderr
    manual = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(ckpts["a"])), str(adapter)
    ).merge_and_unload()
    lora_merged = {k: v.detach() for k, v in manual.state_dict().items()}
    a, b, merged = load_tensors(ckpts["a"]), load_tensors(ckpts["b"]), load_tensors(out / "model")
    assert set(merged) == set(a)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(lora_merged[q], a[q])  # the adapter really changes the weights
    for name, t in merged.items():
        assert torch.allclose(t, 0.75 * lora_merged[name] + 0.25 * b[name], rtol=1e-6, atol=1e-7), name
    assert not list(tmp_path.glob(".r1kit-merge-*"))  # the temporary merged adapter is gone


def test_tied_model_averaged_with_untied_one(ckpts, tmp_path):
    """A tied input contributes its embedding as lm_head; the output stores the head untied."""
    from transformers import AutoModelForCausalLM

    from r1kit.config import build_config
    from r1kit.stages.merge import Config, run

    untied = AutoModelForCausalLM.from_pretrained(str(ckpts["b"]), tie_word_embeddings=False)
    with torch.no_grad():
        untied.lm_head.weight.copy_(torch.randn_like(untied.lm_head.weight))
    save_model(untied, build_tiny_tokenizer(), tmp_path / "untied")
    b_untied = load_tensors(tmp_path / "untied")
    assert "lm_head.weight" in b_untied

    cfg = build_config(
        Config, None, {"model": [str(ckpts["a"]), str(tmp_path / "untied")], "output": str(tmp_path / "m")}
    )
    run(cfg)
    merged, a = load_tensors(tmp_path / "m" / "model"), load_tensors(ckpts["a"])
    emb = "model.embed_tokens.weight"
    assert torch.allclose(
        merged["lm_head.weight"], 0.5 * a[emb] + 0.5 * b_untied["lm_head.weight"], rtol=1e-6, atol=1e-7
    )
    assert json.loads((tmp_path / "m" / "model" / "config.json").read_text())["tie_word_embeddings"] is False


def test_blockwise_merge_matches_whole_tensors(ckpts, tmp_path, monkeypatch):
    """Tiny blocks (1000 elements: the 106x128 embedding in 16 row blocks) give the same bytes
    as whole-tensor blocks, and both match 0.3 A + 0.7 B to bfloat16 precision."""
    from r1kit import merging

    assert (
        merging.row_blocks((106, 128), 1000)[:2] == [(0, 7), (7, 14)]
        and len(merging.row_blocks((106, 128), 1000)) == 16
    )
    assert merging.row_blocks((), 1000) == [None] and merging.row_blocks((5,), 2) == [(0, 2), (2, 4), (4, 5)]
    cks = [merging.read_checkpoint(k, ckpts[k]) for k in ("a_bf16", "b_bf16")]
    names, _ = merging.check_compatible(cks)
    whole = merging.merge_checkpoints(cks, [0.3, 0.7], names, tmp_path / "whole", 10**9)
    monkeypatch.setattr(merging, "BLOCK_ELEMENTS", 1000)
    stats = merging.merge_checkpoints(cks, [0.3, 0.7], names, tmp_path / "blocks", 10**9)
    assert stats["tensors"] == whole["tensors"] == 50 and stats["bytes"] == 802_176 * 2
    assert (tmp_path / "blocks" / "model.safetensors").read_bytes() == (
        tmp_path / "whole" / "model.safetensors"
    ).read_bytes()
    merged, a, b = (
        load_tensors(tmp_path / "blocks"),
        load_tensors(ckpts["a_bf16"]),
        load_tensors(ckpts["b_bf16"]),
    )
    for name, t in merged.items():
        expected = 0.3 * a[name].float() + 0.7 * b[name].float()
        assert t.dtype == torch.bfloat16 and torch.allclose(t.float(), expected, rtol=2**-8, atol=1e-6), name


@pytest.mark.parametrize(
    "models, weights, message",
    [
        (("a", "wide"), (), "tensor model.embed_tokens.weight has shape [106, 128] in "),
        (("a", "bigvocab"), (), "vocab_size is 106"),
        (("a", "swapped"), (), "token id "),
        (("a", "llama"), (), "different architectures"),
        (("a", "b"), (0, 0), "sum to 0"),
        (("a", "b"), (1, -1), "must be >= 0"),
        (("a", "b"), (1, 1, 1), "3 --weight values for 2 --model"),
        (("a",), (), "two or more --model"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(ckpts, tmp_path, models, weights, message):
    out, res = merge(tmp_path, *[ckpts[m] for m in models], weights=weights)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and res.stderr.startswith("r1kit: error:")
    assert (
        not out.exists() and not list(tmp_path.glob(".merged*")) and not list(tmp_path.glob(".r1kit-merge-*"))
    )


def test_shape_mismatch_names_first_tensor_and_both_shapes(ckpts, tmp_path):
    """Headers only: the error comes without loading torch, and layer 2 sorts before layer 10."""
    from r1kit.merging import check_compatible, natural_key, read_checkpoint

    a, w = read_checkpoint("A", ckpts["a"]), read_checkpoint("W", ckpts["wide"])
    with pytest.raises(
        Exception, match=r"tensor model.embed_tokens.weight has shape \[106, 128\] in A but \[106, 64\] in W"
    ):
        check_compatible([a, w])
    assert sorted(["layers.10.w", "layers.2.w"], key=natural_key) == ["layers.2.w", "layers.10.w"]


def test_parse_size():
    from r1kit.merging import parse_size

    assert [parse_size(x) for x in ("2GB", "300KB", "1.5GiB", "1000")] == [
        2 * 10**9,
        300_000,
        1_610_612_736,
        1000,
    ]


def test_existing_output_is_refused(ckpts, tmp_path):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _, res = merge(tmp_path, ckpts["a"], ckpts["b"])
    assert res.returncode == 2 and "already exists" in res.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
