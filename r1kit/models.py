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

GGUF files are converted by transformers, and some transformers versions convert some
architectures wrongly: GGUF_MIN_TRANSFORMERS names, per GGUF architecture, the oldest version
known to load it correctly, and loading a .gguf under an older one is refused in one line that
says which version to install. `sanity_check` (perplexity of two plain English sentences and a
greedy continuation) is the cheap test that catches such a load, and what bench/real_model_check.py
runs before every real-model run.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1kit.errors import R1kitError
from r1kit.lookup import lookup

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
        {
            "hidden_size": 128,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 384,
        },
    ),
    "tiny-llama": (
        "llama",
        {
            "hidden_size": 96,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 256,
        },
    ),
}

DTYPES = ("auto", "float32", "bfloat16", "float16")

# GGUF architecture -> (oldest transformers version known to load it correctly, what goes wrong before).
# gemma3: transformers 5.17 rebuilds the Gemma 3 tokenizer from the GGUF without BOS and splits words into
# pieces ("The quick brown" -> 'The', '_qu', 'ick', '_b', 'ro', 'wn'; 5.24: '<bos>', 'The', '_quick',
# '_brown'); the weights and config it loads are the same. The Gemma 3 270M Q4_K_M file then scores
# perplexity 165,133 / 44,770 on two plain sentences on CPU (5.24: 12.4 / 9.7; measured here, issue 17) and
# continues "The capital of France is" with " is is is ...". Versions between 5.17 and 5.24 were not
# tried, so 5.24 is the floor.
GGUF_MIN_TRANSFORMERS: dict[str, tuple[str, str]] = {
    "gemma3": (
        "5.24.0",
        (
            "loads the Gemma 3 GGUF tokenizer wrongly (no BOS, words split into pieces: "
            "perplexity in the thousands)"
        ),
    ),
}
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
            check_gguf_transformers(path)  # before anything is loaded or written
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


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase, arch: str = "qwen2", seed: int = 0
) -> PreTrainedModel:
    """A randomly initialised small causal LM sized for `tokenizer`; identical weights per seed.

    `arch` is a TINY_SPECS name ("tiny", "tiny-llama") or an architecture ("qwen2", "llama").
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    by_arch = {a: name for name, (a, _) in TINY_SPECS.items()}
    name = arch if arch in TINY_SPECS else by_arch.get(arch)
    if name is None:
        raise R1kitError(
            f"unknown tiny architecture {arch!r}; choose one of {sorted(TINY_SPECS) + sorted(by_arch)}"
        )
    family, sizes = TINY_SPECS[name]
    config_cls, model_cls = (
        (Qwen2Config, Qwen2ForCausalLM) if family == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    )
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
    }
    config = config_cls(
        vocab_size=len(tokenizer),
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        **sizes,
        **ids,
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
    return getattr(torch, lookup(dict(zip(DTYPES, DTYPES)), dtype, "dtype"))


def _device(device: str | None) -> str:
    """The device a model loads on: the given one, else this process's GPU, else the CPU.

    Under `accelerate launch` / torchrun each rank owns GPU LOCAL_RANK; loading on plain "cuda"
    would put every rank's copy (and a CUDA context) on GPU 0 first.
    """
    if device:
        return device
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    local = os.environ.get("LOCAL_RANK")
    return (
        f"cuda:{int(local)}"
        if local and local.isdigit() and int(local) < torch.cuda.device_count()
        else "cuda"
    )


def _hub_error(spec: str, err: Exception) -> R1kitError:
    if _offline():
        return _offline_error(spec)
    return R1kitError(
        f"could not load {spec!r} from the hub: {type(err).__name__}: {str(err).splitlines()[0]}"
    )


def _load_error(spec: str, ref: CheckpointRef, err: Exception, what: str) -> Exception:
    """What to raise when transformers cannot load `spec`: one line (R1kitError) for the user."""
    if isinstance(err, R1kitError):
        return err
    if ref.kind == "hub":
        return _hub_error(spec, err)
    return R1kitError(f"could not load {what} {spec}: {type(err).__name__}: {err}")


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
    except Exception as err:
        raise _load_error(spec, ref, err, "the tokenizer of") from err
    return _with_pad(tok)


def _load_dir_tokenizer(path: Path):
    from transformers import AutoTokenizer

    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise R1kitError(
            f"{path} has no tokenizer files; save the tokenizer next to the model (r1kit.models.save_model)"
        )
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


def gguf_architecture(path: str | os.PathLike) -> str | None:
    """`general.architecture` of a GGUF file, read from its header (None if absent or unreadable).

    A plain reader of the key/value block, stopping at the key: gguf.GGUFReader parses every field
    (a 262k-token vocabulary takes ~8 s), which a version check should not cost.
    """
    import struct

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value types
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                return None
            _version, _tensors, n_kv = struct.unpack("<IQQ", f.read(20))

            def string() -> bytes:
                (n,) = struct.unpack("<Q", f.read(8))
                return f.read(n)

            def skip(kind: int) -> None:
                if kind == 8:
                    string()
                elif kind == 9:
                    item, count = struct.unpack("<IQ", f.read(12))
                    if item in sizes:
                        f.seek(sizes[item] * count, 1)
                    else:
                        for _ in range(count):
                            skip(item)
                else:
                    f.seek(sizes[kind], 1)

            for _ in range(min(n_kv, 4096)):
                key = string()
                (kind,) = struct.unpack("<I", f.read(4))
                if key == b"general.architecture" and kind == 8:
                    return string().decode("utf-8", "replace")
                skip(kind)
    except (OSError, struct.error, KeyError, UnicodeDecodeError):
        return None
    return None


def check_gguf_transformers(path: str | os.PathLike, version: str | None = None) -> None:
    """Refuse (R1kitError) to load a GGUF file whose architecture this transformers version is known
    to convert wrongly (GGUF_MIN_TRANSFORMERS). `version` defaults to the installed one."""
    arch = gguf_architecture(path)
    if arch not in GGUF_MIN_TRANSFORMERS:
        return
    from packaging.version import Version

    if version is None:
        import transformers

        version = transformers.__version__
    minimum, problem = GGUF_MIN_TRANSFORMERS[arch]
    if Version(version) < Version(minimum):
        raise R1kitError(
            f"transformers {version} {problem} ({arch} GGUF {Path(path).name}); install transformers>={minimum} "
            f"(pip install 'transformers>={minimum}') to load it"
        )


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
            model = AutoModelForCausalLM.from_pretrained(
                str(ref.path.parent), gguf_file=ref.path.name, **kwargs
            )
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
    except Exception as err:
        raise _load_error(spec, ref, err, "the model") from err
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
    fill_generation_ids(model, tokenizer)
    return model, tokenizer


def fill_generation_ids(model: Any, tokenizer: Any) -> None:
    """Give the model's generation config the tokenizer's pad and EOS ids where it has none, so that
    generation stops at EOS and pads batches (a 'tiny' model or a converted checkpoint may lack them)."""
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        if gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
        if gen.eos_token_id is None:
            gen.eos_token_id = tokenizer.eos_token_id


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | os.PathLike) -> Path:
    """save_pretrained of model (safetensors) and tokenizer into one folder; returns the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    return path


# ---------------------------------------------------------------------------------------------
# Sanity check of a loaded model

SANITY_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital and largest city of France, with a population of over two million people.",
)
SANITY_PROMPT = "The capital of France is"


def sanity_check(model: Any, tokenizer: Any, *, max_new_tokens: int = 8) -> dict[str, Any]:
    """Perplexity of SANITY_SENTENCES and the greedy continuation of SANITY_PROMPT.

    A pretrained model of any size scores these plain sentences in the single or low double
    digits (Gemma 3 270M: ~6 and ~21); a wrongly converted or corrupted checkpoint scores in the
    hundreds or thousands and continues the prompt with a repeated word. Runs on the model's own
    device and dtype, in eval mode, without gradients; the model's mode is restored.
    """
    import math

    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        perplexity = []
        with torch.no_grad():
            for sentence in SANITY_SENTENCES:
                ids = torch.tensor([tokenizer(sentence)["input_ids"]], device=device)
                loss = model(input_ids=ids, labels=ids).loss.float().item()
                perplexity.append(math.exp(loss) if loss < 700 else float("inf"))
            ids = torch.tensor([tokenizer(SANITY_PROMPT)["input_ids"]], device=device)
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id
                if tokenizer.pad_token_id is not None
                else tokenizer.eos_token_id,
            )
        continuation = tokenizer.decode(out[0, ids.shape[1] :].tolist(), skip_special_tokens=True)
    finally:
        model.train(was_training)
    return {
        "perplexity": perplexity,
        "sentences": list(SANITY_SENTENCES),
        "prompt": SANITY_PROMPT,
        "continuation": continuation,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "device": str(device),
    }


def check_sanity(report: dict[str, Any], max_perplexity: float = 100.0) -> None:
    """Raise R1kitError when a `sanity_check` report shows an absurd perplexity."""
    worst = max(report["perplexity"])
    if not worst <= max_perplexity:
        shown = ", ".join(f"{p:.1f}" for p in report["perplexity"])
        raise R1kitError(
            f"the model fails the sanity check: perplexity {shown} on plain English sentences (limit "
            f"{max_perplexity:g}); {report['prompt']!r} continues {report['continuation']!r}. The checkpoint is "
            "broken or was converted wrongly (for a .gguf: check the transformers version)"
        )
