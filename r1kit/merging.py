"""Streaming weighted average of safetensors checkpoints (the tensor work behind `r1kit merge`).

    merged[name] = sum_i w_i * model_i[name],   w_i = weight_i / sum_j weight_j

(Kimi k1.5, "long2short: model merging", PAPERS.md). Every check is made from safetensors
headers and JSON files before any tensor data is read (and without importing torch), so a bad
set of inputs fails fast and leaves nothing behind. The merge reads one block of rows of one
tensor from each input at a time (BLOCK_ELEMENTS, a 128 MB float32 accumulator) with plain file
reads, and writes the result straight into the output shard file, whose header is computed in
advance from the known shapes. Peak memory is therefore a few blocks plus the imported
libraries, independent of model size; no whole tensor, shard or model is ever held.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1kit.errors import R1kitError

if TYPE_CHECKING:
    import torch

INDEX = "model.safetensors.index.json"
LM_HEAD = "lm_head.weight"
# Names a tied input head shares its weights with, in the families r1kit meets.
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")
# Files copied next to the merged weights: the model's from the first model, the tokenizer's from
# the first model that has a tokenizer (tokenizer_source).
MODEL_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = ("special_tokens_map.json", "added_tokens.json", "merges.txt")
TOKENIZER_PATTERNS = ("tokenizer*", "vocab*", "chat_template*")
# Any of these makes a folder's tokenizer loadable by AutoTokenizer.
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
# Rows of a tensor averaged at once: 32M elements = a 128 MB float32 accumulator. Bounds memory by
# this block, not by the largest tensor (a 7B model's embedding is 545M elements).
BLOCK_ELEMENTS = 32 * 2**20
# safetensors dtype code -> torch dtype name.
SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
    "BOOL": "bool",
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*((?:[kmgt]i?)?b?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    dtype: str  # safetensors code: "F32", "BF16", ...
    shape: tuple[int, ...]
    start: int = 0  # absolute byte offset of the tensor's data in file


@dataclass
class Checkpoint:
    """One input: the folder its config/tokenizer/weights live in and its tensor headers."""

    spec: str
    folder: Path
    config: dict[str, Any]
    tensors: dict[str, TensorInfo]
    alias: dict[str, str] = field(default_factory=dict)  # name read from another tensor (tied head)

    def info(self, name: str) -> TensorInfo:
        return self.tensors[self.alias.get(name, name)]


def parse_size(text: str) -> int:
    """'2GB', '500MB', '1.5GiB' or a plain byte count -> bytes."""
    m = _SIZE.match(str(text))
    if not m:
        raise R1kitError(f"--max-shard-size {text!r} is not a size; write e.g. 2GB, 500MB or 1000000")
    unit = m.group(2).lower()
    power = "_kmgt".index(unit[0]) if unit[:1] in ("k", "m", "g", "t") else 0
    mult = (1024 if "i" in unit else 1000) ** power
    size = int(float(m.group(1)) * mult)
    if size < 1:
        raise R1kitError(f"--max-shard-size {text!r} must be positive")
    return size


def natural_key(name: str) -> list[Any]:
    """Sort key that puts layers.2 before layers.10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def normalise_weights(weights: list[float], n_models: int) -> list[float]:
    """Weights default to equal; else one per model, each >= 0, divided by their (positive) sum."""
    if not weights:
        return [1.0 / n_models] * n_models
    if len(weights) != n_models:
        raise R1kitError(
            f"got {len(weights)} --weight values for {n_models} --model values; "
            "give one weight per model or none"
        )
    negative = [w for w in weights if w < 0]
    if negative:
        raise R1kitError(f"--weight values must be >= 0 (got {weights}); a merge is a convex combination")
    total = sum(weights)
    if not total > 0:
        raise R1kitError(f"--weight values sum to {total}; they must sum to a positive number")
    return [w / total for w in weights]


# ---------------------------------------------------------------------------------------------
# Reading inputs (headers only)


def read_checkpoint(spec: str, folder: Path) -> Checkpoint:
    """Headers of every safetensors file of a save_pretrained folder (single or sharded)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise R1kitError(f"{spec}: cannot read {folder / 'config.json'}: {err}") from err
    if (folder / INDEX).is_file():
        weight_map = json.loads((folder / INDEX).read_text()).get("weight_map", {})
        files = sorted({folder / f for f in weight_map.values()})
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        bins = sorted(p.name for p in folder.glob("*.bin"))
        hint = (
            f" (it holds {bins[0]}: re-save it with save_pretrained(..., safe_serialization=True))"
            if bins
            else ""
        )
        raise R1kitError(f"{spec}: no .safetensors weights in {folder}{hint}")
    tensors: dict[str, TensorInfo] = {}
    for path in files:
        if not path.is_file():
            raise R1kitError(f"{spec}: {path.name} is listed in {INDEX} but missing")
        header, data_start = read_header(path, spec)
        for name, entry in header.items():
            tensors[name] = TensorInfo(
                path, entry["dtype"], tuple(entry["shape"]), data_start + entry["data_offsets"][0]
            )
    return Checkpoint(spec, folder, config, tensors)


def read_header(path: Path, spec: str = "") -> tuple[dict[str, dict[str, Any]], int]:
    """(name -> {dtype, shape, data_offsets}, file offset where the data starts) of a safetensors file.

    The format is an 8-byte little-endian header length, then the JSON header, then the data;
    reading just the header keeps every check free of torch and of tensor data.
    """
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                raise ValueError(f"header length {length} is implausible")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error) as err:
        raise R1kitError(f"{spec or path}: {path} is not a readable safetensors file: {err}") from err
    header.pop("__metadata__", None)
    return header, 8 + length


def read_vocab(folder: Path) -> dict[str, int] | None:
    """token -> id from tokenizer.json (model vocab + added tokens) or vocab.json; None if neither."""
    tj = folder / "tokenizer.json"
    vocab: dict[str, int] = {}
    if tj.is_file():
        data = json.loads(tj.read_text())
        model_vocab = (data.get("model") or {}).get("vocab") or {}
        if isinstance(model_vocab, list):  # Unigram: [[piece, score], ...], id = position
            vocab = {piece: i for i, (piece, *_rest) in enumerate(model_vocab)}
        else:
            vocab = dict(model_vocab)
        vocab.update({t["content"]: t["id"] for t in data.get("added_tokens") or []})
        return vocab
    if (folder / "vocab.json").is_file():
        vocab = json.loads((folder / "vocab.json").read_text())
        if (folder / "added_tokens.json").is_file():
            vocab.update(json.loads((folder / "added_tokens.json").read_text()))
        return vocab
    return None


# ---------------------------------------------------------------------------------------------
# Checks


def _tied(ckpt: Checkpoint) -> bool:
    cfg = ckpt.config
    return bool(
        cfg.get("tie_word_embeddings", (cfg.get("text_config") or {}).get("tie_word_embeddings", False))
    )


def _resolve_tied_head(ckpts: list[Checkpoint]) -> bool:
    """If some inputs store lm_head and tied ones do not, read the tied ones' head from their
    embedding. Returns True when the output stores a head that the first model had tied."""
    if not any(LM_HEAD in c.tensors for c in ckpts) or all(LM_HEAD in c.tensors for c in ckpts):
        return False
    for c in ckpts:
        if LM_HEAD in c.tensors or not _tied(c):
            continue
        emb = [n for n in c.tensors if n.endswith(EMBEDDING_SUFFIXES)]
        if len(emb) == 1:
            c.alias[LM_HEAD] = emb[0]
    return LM_HEAD in ckpts[0].alias


def check_compatible(ckpts: list[Checkpoint]) -> tuple[list[str], bool]:
    """Refuse inputs that cannot be averaged; return (tensor names in natural order, untie_head).

    Order: architecture, vocabulary size, tokenizer vocabulary, tensor names, shapes.
    """
    first = ckpts[0]
    for c in ckpts[1:]:
        for key in ("model_type", "architectures"):
            if first.config.get(key) != c.config.get(key):
                raise R1kitError(
                    f"different architectures: {key} is {first.config.get(key)} in {first.spec} but "
                    f"{c.config.get(key)} in {c.spec}; only checkpoints of one architecture can be averaged"
                )
        va, vb = first.config.get("vocab_size"), c.config.get("vocab_size")
        if va != vb:
            raise R1kitError(
                f"different vocabularies: vocab_size is {va} in {first.spec} but {vb} in {c.spec}"
            )
        _check_vocab(first, c)
    untie = _resolve_tied_head(ckpts)
    names = sorted({*first.tensors, *first.alias}, key=natural_key)
    for c in ckpts[1:]:
        have = {*c.tensors, *c.alias}
        missing = sorted(set(names) - have, key=natural_key)
        extra = sorted(have - set(names), key=natural_key)
        if missing or extra:
            parts = []
            if missing:
                parts.append(
                    f"{len(missing)} tensor(s) of {first.spec} missing from {c.spec} (first: {missing[0]})"
                )
            if extra:
                parts.append(f"{len(extra)} tensor(s) of {c.spec} not in {first.spec} (first: {extra[0]})")
            raise R1kitError("different tensor names: " + "; ".join(parts))
    for name in names:
        shape = first.info(name).shape
        for c in ckpts[1:]:
            if c.info(name).shape != shape:
                raise R1kitError(
                    f"tensor {name} has shape {list(shape)} in {first.spec} but {list(c.info(name).shape)} "
                    f"in {c.spec}; only checkpoints of the same architecture and size can be averaged"
                )
    return names, untie


def _check_vocab(a: Checkpoint, b: Checkpoint) -> None:
    va, vb = read_vocab(a.folder), read_vocab(b.folder)
    if va is None or vb is None or va == vb:
        return
    by_id_a = {i: t for t, i in va.items()}
    by_id_b = {i: t for t, i in vb.items()}
    for i in sorted(set(by_id_a) | set(by_id_b)):
        ta, tb = by_id_a.get(i), by_id_b.get(i)
        if ta != tb:
            raise R1kitError(
                f"different vocabularies: token id {i} is {ta!r} in {a.spec} but {tb!r} in {b.spec} "
                f"({len(va)} vs {len(vb)} tokens); merged weights would mix up tokens"
            )
    # Same ids, yet the dicts differ: one token string maps to two ids in one tokenizer.
    raise R1kitError(f"different vocabularies in {a.spec} and {b.spec} (same ids, different token strings)")


# ---------------------------------------------------------------------------------------------
# Writing


def _torch_dtype(code: str) -> torch.dtype:
    import torch

    table = {code: getattr(torch, name) for code, name in SAFETENSORS_DTYPES.items()}
    if code not in table:
        raise R1kitError(f"tensor dtype {code} is not supported by r1kit merge")
    return table[code]


def plan_shards(names: list[str], infos: dict[str, TensorInfo], max_bytes: int) -> list[list[str]]:
    """Group names (in order) into shards of at most max_bytes; a bigger tensor gets its own shard."""
    shards: list[list[str]] = [[]]
    size = 0
    for name in names:
        info = infos[name]
        nbytes = _nbytes(info)
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def row_blocks(shape: tuple[int, ...], max_elements: int) -> list[tuple[int, int] | None]:
    """[start, end) ranges over dim 0 holding at most max_elements each (None: a 0-d tensor)."""
    if not shape:
        return [None]
    per_row = 1
    for d in shape[1:]:
        per_row *= d
    step = max(1, max_elements // max(per_row, 1))
    return [(a, min(a + step, shape[0])) for a in range(0, shape[0], step)] or [(0, 0)]


def _nbytes(info: TensorInfo) -> int:
    n = 1
    for d in info.shape:
        n *= d
    return n * _torch_dtype(info.dtype).itemsize


def write_safetensors(
    path: Path,
    names: list[str],
    infos: dict[str, TensorInfo],
    produce: Callable[[str], Iterable[torch.Tensor]],
) -> int:
    """Write one safetensors file; `produce(name)` yields each tensor as consecutive row blocks.

    The header (names, dtypes, shapes, byte offsets) is fully known beforehand, so it is written
    first and the data follows block by block without ever holding a whole tensor.
    """
    import torch

    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in names:
        info = infos[name]
        nbytes = _nbytes(info)
        header[name] = {
            "dtype": info.dtype,
            "shape": list(info.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned, as the format recommends
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name in names:
            info, written = infos[name], 0
            for block in produce(name):
                if block.dtype != _torch_dtype(info.dtype):
                    raise AssertionError(f"{name}: produced {block.dtype}, header says {info.dtype}")
                written += fh.write(block.contiguous().reshape(-1).view(torch.uint8).numpy().data)
            if written != _nbytes(info):
                raise AssertionError(f"{name}: wrote {written} bytes, header says {_nbytes(info)}")
    return offset


class _Readers:
    """Reads tensors, or blocks of their rows, with plain file reads.

    safetensors.safe_open memory-maps the file, and every mapped page it touches stays in the
    process's resident set until the file is closed: merging two 1 GB checkpoints that way
    peaked at 2.4 GB RSS of file pages alone. Reading into a fresh buffer keeps RSS at the
    blocks in flight (the data still passes through the page cache, which is not RSS).
    """

    def __init__(self) -> None:
        self._open: dict[Path, Any] = {}

    def get(self, ckpt: Checkpoint, name: str, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """The tensor `name` of ckpt, or only its rows [start, end)."""
        import torch

        info = ckpt.info(name)
        dtype = _torch_dtype(info.dtype)
        shape, offset = info.shape, info.start
        if rows is not None:
            row_bytes = _nbytes(info) // shape[0] if shape[0] else 0
            offset += rows[0] * row_bytes
            shape = (rows[1] - rows[0], *shape[1:])
        nbytes = _nbytes(TensorInfo(info.file, info.dtype, shape))
        fh = self._open.get(info.file)
        if fh is None:
            fh = self._open[info.file] = open(info.file, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        buf = torch.empty(nbytes, dtype=torch.uint8)
        view, got = memoryview(buf.numpy()), 0
        fh.seek(offset)
        while got < nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise R1kitError(f"{ckpt.spec}: {info.file} ends inside tensor {name}; the file is truncated")
            got += n
        return buf.view(dtype).reshape(shape)

    def close(self) -> None:
        for fh in self._open.values():
            fh.close()
        self._open.clear()


def merge_checkpoints(
    ckpts: list[Checkpoint],
    weights: list[float],
    names: list[str],
    out_dir: Path,
    max_shard_bytes: int,
) -> dict[str, Any]:
    """Write sum_i weights[i] * ckpts[i] into out_dir as safetensors (sharded above max_shard_bytes).

    Floating tensors are accumulated in float32 and cast back to the first model's dtype; inputs
    with weight 0 are not read, so weights (1, 0) reproduce the first model bit for bit. Integer
    and bool tensors are not averaged: they must be equal in all inputs and are copied.
    """
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    infos = {n: ckpts[0].info(n) for n in names}
    readers = _Readers()
    used = [(c, w) for c, w in zip(ckpts, weights, strict=True) if w != 0]

    def produce(name: str) -> Iterator[torch.Tensor]:
        info = infos[name]
        dtype = _torch_dtype(info.dtype)
        if not dtype.is_floating_point:
            ref = readers.get(ckpts[0], name)
            for c in ckpts[1:]:
                if not torch.equal(readers.get(c, name).to(ref.dtype), ref):
                    raise R1kitError(
                        f"non-float tensor {name} ({info.dtype}) differs between {ckpts[0].spec} "
                        f"and {c.spec}; it cannot be averaged"
                    )
            yield ref
            return
        for rows in row_blocks(info.shape, BLOCK_ELEMENTS):
            acc = None
            for c, w in used:
                block = readers.get(c, name, rows)
                if acc is None:
                    acc = block.to(torch.float32, copy=True).mul_(w)
                else:
                    acc.add_(block, alpha=w)  # bf16/fp16 blocks are promoted to float32 inside add_
                del block
            yield acc.to(dtype)
            del acc

    shards = plan_shards(names, infos, max_shard_bytes)
    total = 0
    weight_map: dict[str, str] = {}
    try:
        for k, shard in enumerate(shards, start=1):
            fname = (
                "model.safetensors" if len(shards) == 1 else f"model-{k:05d}-of-{len(shards):05d}.safetensors"
            )
            total += write_safetensors(out_dir / fname, shard, infos, produce)
            weight_map.update({n: fname for n in shard})
    finally:
        readers.close()
    params = sum(_nbytes(i) // _torch_dtype(i.dtype).itemsize for i in infos.values())
    if len(shards) > 1:
        index = {"metadata": {"total_size": total, "total_parameters": params}, "weight_map": weight_map}
        (out_dir / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return {
        "tensors": len(names),
        "parameters": params,
        "bytes": total,
        "shards": len(shards),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def tokenizer_source(ckpts: list[Checkpoint]) -> Checkpoint:
    """The first input that has tokenizer files; R1kitError when none has.

    A merged checkpoint without a tokenizer cannot be loaded by the next stage. Inputs saved
    with model.save_pretrained only have none; the tokenizer of another input is the right one,
    since the inputs were checked to share one vocabulary (check_compatible).
    """
    for ckpt in ckpts:
        if any((ckpt.folder / name).is_file() for name in TOKENIZER_MARKERS):
            return ckpt
    raise R1kitError(
        f"none of the --model inputs has tokenizer files ({', '.join(TOKENIZER_MARKERS)}), so the merged "
        "checkpoint could not be loaded; save the tokenizer into one of them (tokenizer.save_pretrained(folder))"
    )


def copy_side_files(
    src: Path, dst: Path, *, untie_head: bool, tokenizer_src: Path | None = None
) -> list[str]:
    """Copy config and generation config from src, and the tokenizer and chat template files from
    tokenizer_src (default src), to dst; return the copied names."""
    tok = tokenizer_src or src
    copied = []
    for folder, names, patterns in ((src, MODEL_FILES, ()), (tok, TOKENIZER_FILES, TOKENIZER_PATTERNS)):
        found = {p.name for p in folder.iterdir() if p.is_file() and p.name in names}
        for pattern in patterns:
            found |= {p.name for p in folder.glob(pattern) if p.is_file()}
        for name in sorted(found):
            shutil.copy2(folder / name, dst / name)
        copied += sorted(found)
    if untie_head:
        # The merged head is its own tensor now; a tied config would replace it by the embedding.
        cfg = json.loads((dst / "config.json").read_text())
        cfg["tie_word_embeddings"] = False
        (dst / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return sorted(copied)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
