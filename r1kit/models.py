"""Model and tokenizer loading, and the built-in offline "tiny" model.

A model spec is one string, resolved in this order:

1. ``"tiny"`` / ``"tiny-llama"``: a randomly initialised ~1M-parameter Qwen2 (or a smaller Llama,
   the different-architecture student for distillation) over a character-level tokenizer; needs
   no download, so the whole pipeline runs offline on the built-in arithmetic task.
2. A local path: an r1kit stage output (``manifest.json`` + ``model/``), a ``save_pretrained``
   folder (``config.json``), a peft LoRA adapter folder (``adapter_config.json``; its base is
   loaded and the adapter merged), or a ``.gguf`` file (dequantized to a dense model; the
   tokenizer is rebuilt from the file's metadata).
3. Anything else is taken as a hub id, which works only where the hub (or its cache) is reachable.

`resolve_checkpoint` does the resolution without importing torch, so stages can reject a bad
spec before they load anything.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1kit.errors import R1kitError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Character-level vocabulary of the tiny model. Role markers and the R1-Zero tags are single
# tokens so a 1M-parameter model does not have to learn to spell them.
PAD, UNK, EOS = "<pad>", "<unk>", "<|end|>"
ROLE_TOKENS = ("<|user|>", "<|assistant|>", "<|system|>")
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
TINY_CHARS = "\n" + "".join(chr(c) for c in range(0x20, 0x7F))

# Each message is `<|role|>content<|end|>`; the generation prompt is `<|assistant|>`. The
# {% generation %} markers change nothing in the output; they let trl build assistant-only masks.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{% else %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# name -> (architecture, config overrides). "tiny" is ~0.8M parameters with the 106-token vocab.
TINY_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny": (
        "qwen2",
        {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 384},
    ),
    "tiny-llama": (
        "llama",
        {"hidden_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 256},
    ),
}

DTYPES = ("auto", "float32", "bfloat16", "float16")
# "name" or "org/name"; anything else that does not exist is a mistyped local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


@dataclass(frozen=True)
class CheckpointRef:
    """What a spec points at. kind: "tiny" | "dir" | "adapter" | "gguf" | "hub"."""

    kind: str
    spec: str
    path: Path | None = None  # the folder (dir/adapter) or the .gguf file
    base: str | None = None  # adapter: the base model spec named in adapter_config.json


# ---------------------------------------------------------------------------------------------
# Resolution (no torch import)


def _offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("TRANSFORMERS_OFFLINE", "")
    return flag.strip().lower() in ("1", "true", "yes", "on")


def _looks_like_path(spec: str) -> bool:
    return not _HUB_ID.match(spec) or spec.endswith((".gguf", ".json", ".safetensors"))


def resolve_checkpoint(spec: str) -> CheckpointRef:
    """Classify `spec` without loading anything; raise R1kitError for a path that cannot load."""
    spec = str(spec)
    if spec in TINY_SPECS:
        return CheckpointRef("tiny", spec)
    path = Path(spec).expanduser()
    if not path.exists():
        if _looks_like_path(spec):
            raise R1kitError(f"model path {spec} does not exist")
        if _offline() and not _in_hub_cache(spec):
            raise _offline_error(spec)
        return CheckpointRef("hub", spec)
    if path.is_file():
        if path.suffix == ".gguf":
            return CheckpointRef("gguf", spec, path)
        raise R1kitError(
            f"{spec} is a file but not a .gguf model; pass a save_pretrained folder, an r1kit stage "
            "output, a .gguf file, 'tiny' or a hub id"
        )
    if (path / "manifest.json").is_file() and (path / "model").is_dir():
        path = path / "model"  # an r1kit stage output keeps its checkpoint in model/
    if (path / "adapter_config.json").is_file():
        try:
            adapter = json.loads((path / "adapter_config.json").read_text())
        except json.JSONDecodeError as err:
            raise R1kitError(f"{path / 'adapter_config.json'} is not valid JSON: {err}") from err
        base = adapter.get("base_model_name_or_path")
        if not base:
            raise R1kitError(
                f"{path} holds a LoRA adapter whose adapter_config.json names no base_model_name_or_path; "
                "merge it first with `r1kit merge` or set the base model there"
            )
        return CheckpointRef("adapter", spec, path, base=str(base))
    if (path / "config.json").is_file():
        return CheckpointRef("dir", spec, path)
    ggufs = sorted(path.glob("*.gguf"))
    hint = f" (it holds {ggufs[0].name}: pass that file)" if ggufs else ""
    if (path / "manifest.json").is_file() and (path / "data").is_dir():
        hint = " (it is an r1kit stage output holding a dataset in data/, not a model)"
    raise R1kitError(
        f"{spec} is not a checkpoint: no config.json (expected a save_pretrained folder, an r1kit "
        f"stage output, a .gguf file, 'tiny' or a hub id){hint}"
    )


def resolve_checkpoint_dir(spec: str) -> Path | None:
    """The local folder (or .gguf file) holding the weights; None for 'tiny' and hub ids.

    Raises R1kitError for a local path that is not a loadable checkpoint, and for a hub id that
    is not in the local cache while HF_HUB_OFFLINE=1. Imports no torch.
    """
    return resolve_checkpoint(spec).path


def is_checkpoint_spec(spec: str) -> bool:
    """Cheap yes/no: would `load_model(spec)` find something to load? Hub ids count when online
    or, offline, when their config is in the local hub cache."""
    try:
        ref = resolve_checkpoint(spec)
    except R1kitError:
        return False
    return is_checkpoint_spec(ref.base) if ref.kind == "adapter" else True


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - a malformed repo id is simply not cached
        return False


def _offline_error(spec: str) -> R1kitError:
    return R1kitError(
        f"{spec} does not exist locally, and as a hub id it cannot be downloaded because HF_HUB_OFFLINE=1 "
        "(pass a local checkpoint folder, an r1kit stage output, a .gguf file or 'tiny', or unset HF_HUB_OFFLINE)"
    )


# ---------------------------------------------------------------------------------------------
# The tiny model


def build_tiny_tokenizer() -> PreTrainedTokenizerBase:
    """Character-level tokenizer over printable ASCII and newline, with single-token specials.

    ids: 0 <pad>, 1 <unk>, 2 <|end|> (eos), 3-5 role markers, 6-9 think/answer tags, then the
    106 - 10 = 96 characters. Tags are added as non-special tokens so that
    `decode(skip_special_tokens=True)` keeps them (rewards parse them).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # Characters are spelled in GPT-2's byte alphabet (" " -> "\u0120", "\n" -> "\u010a") so that
    # transformers' Qwen2Tokenizer, which AutoTokenizer forces onto any qwen2 checkpoint and which
    # always byte-level encodes, reads the saved files into the same ids.
    spell = bytes_to_unicode()
    chars = ["".join(spell[b] for b in c.encode()) for c in TINY_CHARS]
    specials = [PAD, UNK, EOS, *ROLE_TOKENS]
    vocab = {tok: i for i, tok in enumerate([*specials, *TAG_TOKENS, *chars])}
    # BPE without merges splits any text into its characters; unknown characters become <unk>.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=EOS,
        additional_special_tokens=list(ROLE_TOKENS),
        padding_side="right",
        model_max_length=1024,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


def build_tiny_model(tokenizer: PreTrainedTokenizerBase, arch: str = "qwen2", seed: int = 0) -> PreTrainedModel:
    """A randomly initialised small causal LM sized for `tokenizer`; identical weights per seed.

    `arch` is a TINY_SPECS name ("tiny", "tiny-llama") or an architecture ("qwen2", "llama").
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    by_arch = {a: name for name, (a, _) in TINY_SPECS.items()}
    name = arch if arch in TINY_SPECS else by_arch.get(arch)
    if name is None:
        raise R1kitError(f"unknown tiny architecture {arch!r}; choose one of {sorted(TINY_SPECS) + sorted(by_arch)}")
    family, sizes = TINY_SPECS[name]
    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if family == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None}
    config = config_cls(
        vocab_size=len(tokenizer), max_position_embeddings=1024, tie_word_embeddings=True,
        **sizes, **ids,
    )
    # fork_rng: building the model must not move the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config = GenerationConfig(**ids)
    # peft records this as the adapter's base, so a LoRA trained on "tiny" can be reloaded
    # (load_model rebuilds the same base weights from the same seed).
    model.config.name_or_path = name
    model.name_or_path = name
    return model


# ---------------------------------------------------------------------------------------------
# Loading


def _torch_dtype(dtype: str | None):
    import torch

    if dtype is None or dtype == "auto":
        return dtype
    if dtype not in DTYPES:
        close = difflib.get_close_matches(str(dtype), DTYPES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise R1kitError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.{hint}")
    return getattr(torch, dtype)


def _device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _hub_error(spec: str, err: Exception) -> R1kitError:
    if _offline():
        return _offline_error(spec)
    return R1kitError(f"could not load {spec!r} from the hub: {type(err).__name__}: {str(err).splitlines()[0]}")


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """The tokenizer for a model spec (see the module docstring); pad falls back to eos."""
    ref = resolve_checkpoint(spec)
    if ref.kind == "tiny":
        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    try:
        if ref.kind == "gguf":
            tok = AutoTokenizer.from_pretrained(str(ref.path.parent), gguf_file=ref.path.name)
        elif ref.kind == "adapter":
            # An adapter folder may carry its own tokenizer (e.g. new special tokens); else the base's.
            has_own = any((ref.path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
            return _load_dir_tokenizer(ref.path) if has_own else load_tokenizer(ref.base)
        elif ref.kind == "dir":
            tok = _load_dir_tokenizer(ref.path)
        else:
            tok = AutoTokenizer.from_pretrained(spec)
    except R1kitError:
        raise
    except Exception as err:
        if ref.kind == "hub":
            raise _hub_error(spec, err) from err
        raise R1kitError(f"could not load the tokenizer of {spec}: {type(err).__name__}: {err}") from err
    return _with_pad(tok)


def _load_dir_tokenizer(path: Path):
    from transformers import AutoTokenizer

    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise R1kitError(f"{path} has no tokenizer files; save the tokenizer next to the model (r1kit.models.save_model)")
    # AutoTokenizer swaps a saved generic tokenizer for the model family's class (for qwen2 it
    # rebuilds the pre-tokenizer and drops the unk token); a folder whose tokenizer was saved as
    # the generic class is loaded as exactly what was saved.
    try:
        declared = json.loads((path / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, json.JSONDecodeError):
        declared = None
    if declared in ("TokenizersBackend", "PreTrainedTokenizerFast") and (path / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return _with_pad(PreTrainedTokenizerFast.from_pretrained(str(path)))
    return _with_pad(AutoTokenizer.from_pretrained(str(path)))


def _with_pad(tok):
    # Batched generation and training need a pad token; eos is the usual stand-in.
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    spec: str, *, dtype: str | None = None, device: str | None = None, seed: int = 0
) -> PreTrainedModel:
    """Load (or build, for 'tiny') a causal LM from a spec and move it to `device`.

    dtype: None keeps the stored dtype ("auto"; the tiny model is float32), or one of DTYPES.
    device: default "cuda" when available, else "cpu". seed only affects the tiny models.
    """
    ref = resolve_checkpoint(spec)
    torch_dtype = _torch_dtype(dtype)
    if ref.kind == "tiny":
        model = build_tiny_model(build_tiny_tokenizer(), arch=spec, seed=seed)
        if torch_dtype not in (None, "auto"):
            model = model.to(torch_dtype)
        return model.to(_device(device))
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype or "auto"}
    try:
        if ref.kind == "adapter":
            model = _load_merged_adapter(ref, dtype=dtype, seed=seed)
        elif ref.kind == "gguf":
            model = AutoModelForCausalLM.from_pretrained(str(ref.path.parent), gguf_file=ref.path.name, **kwargs)
            # The weights are dequantized to dense tensors; without this transformers' Trainer still
            # takes the model for a quantized one and refuses to train it.
            model.hf_quantizer = None
            model.is_quantized = False
            if getattr(model.config, "quantization_config", None) is not None:
                del model.config.quantization_config
        elif ref.kind == "dir":
            model = AutoModelForCausalLM.from_pretrained(str(ref.path), **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(spec, **kwargs)
    except R1kitError:
        raise
    except Exception as err:
        if ref.kind == "hub":
            raise _hub_error(spec, err) from err
        raise R1kitError(f"could not load the model {spec}: {type(err).__name__}: {err}") from err
    return model.to(_device(device))


def _load_merged_adapter(ref: CheckpointRef, *, dtype: str | None, seed: int):
    from peft import PeftModel

    # The base is loaded on CPU; merging there avoids holding two copies on the accelerator.
    base = load_model(ref.base, dtype=dtype, device="cpu", seed=seed)
    return PeftModel.from_pretrained(base, str(ref.path)).merge_and_unload()


def load_model_and_tokenizer(
    spec: str, *, dtype: str | None = None, device: str | None = None, seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`(load_model(spec, ...), load_tokenizer(spec))`, with the model's generation ids filled in."""
    tokenizer = load_tokenizer(spec)
    model = load_model(spec, dtype=dtype, device=device, seed=seed)
    gen = model.generation_config
    if gen is not None:
        if gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
        if gen.eos_token_id is None:
            gen.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | os.PathLike) -> Path:
    """save_pretrained of model (safetensors) and tokenizer into one folder; returns the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    return path
