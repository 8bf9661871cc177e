"""The end of training that sft, grpo and dpo-shorten share (r1kit.training.train_and_save):
train with --resume, save the model once from rank 0 (LoRA merged or the adapter alone), log the
summary. A fake trainer stands for trl's: what is checked is which rank writes what."""

import copy
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from r1kit.models import build_tiny_model, build_tiny_tokenizer


class FakeTrainer:
    """What train_and_save uses of a trl trainer; records the calls."""

    def __init__(self, model, lora=False, sharded=False):
        self.model = model
        self.args = SimpleNamespace(learning_rate=1e-4)
        self.is_deepspeed_enabled = sharded
        self.is_fsdp_enabled = False
        self.accelerator = SimpleNamespace(unwrap_model=lambda m: m)
        self.state = SimpleNamespace(global_step=7)
        self.calls = []
        self.removed = []

    def remove_callback(self, cb):
        self.removed.append(cb.__name__)

    def train(self, resume_from_checkpoint=None):
        self.calls.append(("train", resume_from_checkpoint))
        return SimpleNamespace(metrics={"train_loss": 1.25})

    def save_model(self, path):
        self.calls.append(("save_model", path))


class FakeOut:
    def __init__(self, root):
        self.path = root
        self.model_dir = root / "model"
        self.checkpoints_dir = root / "checkpoints"
        self.logged, self.extra, self.timings = [], {}, []

    def log(self, record):
        self.logged.append(record)

    def timed(self, name):
        from contextlib import nullcontext

        self.timings.append(name)
        return nullcontext()


def cfg(**kw):
    return SimpleNamespace(**{"resume": "", "lora": False, "merge_lora": True, **kw})


@pytest.fixture
def tiny():
    tok = build_tiny_tokenizer()
    return build_tiny_model(tok), tok


@pytest.mark.parametrize("rank", ["0", "1"])
def test_full_weights_are_written_by_rank_zero_only(rank, tiny, tmp_path, monkeypatch):
    from r1kit.training import train_and_save

    monkeypatch.setenv("RANK", rank)
    model, tok = tiny
    trainer, out = FakeTrainer(model), FakeOut(tmp_path)
    result = train_and_save(trainer, cfg(), out, tok, summary={"pairs": 3})
    assert trainer.removed == ["PrinterCallback"] and trainer.calls == [("train", None)]
    assert result.metrics == {"train_loss": 1.25}
    assert out.logged == [{"event": "summary", "train_loss": 1.25, "pairs": 3}]
    assert out.extra == {"global_step": 7} and out.timings == ["train"]
    written = (tmp_path / "model" / "config.json").is_file()
    assert written == (rank == "0")  # dpo-shorten used to write on every rank


def test_sharded_weights_are_gathered_by_the_trainer(tiny, tmp_path, monkeypatch):
    from r1kit.training import save_trained

    monkeypatch.setenv("RANK", "1")  # every rank joins the gather; trl writes on rank 0
    model, tok = tiny
    trainer = FakeTrainer(model, sharded=True)
    save_trained(trainer, tok, tmp_path / "model", lora=False, merge=True)
    assert trainer.calls == [("save_model", str(tmp_path / "model"))]


def test_lora_is_merged_on_rank_zero_or_saved_as_an_adapter(tiny, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from r1kit.training import save_trained

    model, tok = tiny
    base_q = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    merged_q = copy.deepcopy(peft_model).merge_and_unload().model.layers[0].self_attn.q_proj.weight.detach()
    assert not torch.allclose(merged_q, base_q)  # the adapter changes q_proj
    monkeypatch.setenv("RANK", "0")
    trainer = FakeTrainer(peft_model)
    save_trained(trainer, tok, tmp_path / "merged", lora=True, merge=True)
    assert trainer.calls == [] and not (tmp_path / "merged" / "adapter_config.json").exists()
    saved = load_file(str(tmp_path / "merged" / "model.safetensors"))
    assert torch.allclose(saved["model.layers.0.self_attn.q_proj.weight"], merged_q)
    # --no-merge-lora: the trainer saves the adapter (on rank 0)
    trainer = FakeTrainer(peft_model)
    save_trained(trainer, tok, tmp_path / "adapter", lora=True, merge=False)
    assert trainer.calls == [("save_model", str(tmp_path / "adapter"))]
    monkeypatch.setenv("RANK", "1")
    trainer = FakeTrainer(peft_model)
    save_trained(trainer, tok, tmp_path / "rank1", lora=True, merge=True)
    assert not (tmp_path / "rank1").exists()


def test_resume_auto_finds_the_newest_checkpoint(tiny, tmp_path):
    import json

    from r1kit.training import train_and_save

    for step in (2, 4):
        ckpt = tmp_path / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    model, tok = tiny
    trainer = FakeTrainer(model)
    train_and_save(trainer, cfg(resume="auto"), FakeOut(tmp_path), tok)
    assert trainer.calls == [("train", str(tmp_path / "checkpoints" / "checkpoint-4"))]


def test_a_summary_function_is_read_after_training(tiny, tmp_path):
    """grpo's summary lists the warnings raised during training: read after it, not before."""
    from r1kit.training import train_and_save

    model, tok = tiny
    trainer, out = FakeTrainer(model), FakeOut(tmp_path)
    warned: dict[str, str] = {}
    trainer.train = lambda resume_from_checkpoint=None: (
        warned.update(kl="KL above 1.0"),
        SimpleNamespace(metrics={}),
    )[1]
    train_and_save(trainer, cfg(), out, tok, summary=lambda: {"warnings": list(warned.values())})
    assert out.logged == [{"event": "summary", "warnings": ["KL above 1.0"]}]
