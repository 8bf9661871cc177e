"""Reading datasets from wherever the user keeps them, with one-line errors.

A source is a `save_to_disk` folder (Dataset or DatasetDict), an r1kit stage output (its dataset
lives in `data/` next to `manifest.json`), a `.jsonl` / `.json` / `.parquet` / `.csv` file, or a
hub id (`org/name`, optionally `org/name:config`), which needs the hub or its local cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from r1kit.errors import R1kitError

if TYPE_CHECKING:
    from datasets import Dataset

FILE_FORMATS = (".jsonl", ".json", ".parquet", ".csv")
_KINDS = "a save_to_disk folder, an r1kit stage output, a .jsonl/.json/.parquet/.csv file or a hub id"


def _offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("HF_DATASETS_OFFLINE", "")
    return flag.strip().lower() in ("1", "true", "yes", "on")


def pick_split(splits, split: str | None, source: str):
    """From a DatasetDict: `split`, else "train", else "test", else the only split."""
    names = list(splits)
    if split is not None:
        if split not in splits:
            raise R1kitError(f"{source} has no split {split!r}; available splits: {', '.join(names)}")
        return splits[split]
    for name in ("train", "test"):
        if name in splits:
            return splits[name]
    if len(names) == 1:
        return splits[names[0]]
    raise R1kitError(f"{source} has several splits ({', '.join(names)}); choose one with --split")


def _from_records(records: list, source: str) -> Dataset:
    from datasets import Dataset

    if not all(isinstance(r, dict) for r in records):
        raise R1kitError(f"{source}: every record must be a JSON object")
    # Union of keys over all rows (Dataset.from_list would only look at the first row).
    keys = list(dict.fromkeys(k for r in records for k in r))
    try:
        return Dataset.from_dict({k: [r.get(k) for r in records] for k in keys})
    except Exception as err:
        raise R1kitError(
            f"{source}: cannot build a table from the records ({type(err).__name__}: {err})"
        ) from err


def _read_file(path: Path, source: str) -> Dataset:
    """Read one data file; anything unreadable in it (encoding, syntax, format) is an R1kitError."""
    try:
        return _parse_file(path, source)
    except UnicodeDecodeError as err:
        raise R1kitError(
            f"{source} is not UTF-8 text ({err.reason} at byte {err.start}); save the file as UTF-8"
        ) from err
    except RecursionError as err:
        raise R1kitError(f"{source} nests its values too deeply to read") from err


def _parse_file(path: Path, source: str) -> Dataset:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = []
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise R1kitError(
                        f"{source} line {lineno} is not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                        f"column {err.start + 1}); save the file as UTF-8"
                    ) from err
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise R1kitError(f"{source} line {lineno} is not valid JSON: {err}") from err
        return _from_records(records, source)
    if suffix == ".json":
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            # a .json file holding JSON lines is common enough to accept
            try:
                return _from_records([json.loads(x) for x in text.splitlines() if x.strip()], source)
            except json.JSONDecodeError:
                raise R1kitError(f"{source} is not valid JSON: {err}") from err
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
            from datasets import Dataset

            try:
                return Dataset.from_dict(data)  # columnar {"col": [...]}
            except Exception as err:  # unequal lengths, mixed types: pyarrow's many exception types
                raise R1kitError(
                    f"{source}: cannot build a table from its columns ({_first_line(err)})"
                ) from err
        if not isinstance(data, list):
            raise R1kitError(
                f"{source}: expected a list of records, {{'data': [...]}} or {{column: [values]}}"
            )
        return _from_records(data, source)
    import pyarrow as pa
    from datasets import Dataset

    kind = "parquet" if suffix == ".parquet" else "CSV"
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return Dataset(pq.read_table(str(path)))
        import pyarrow.csv as pcsv

        return Dataset(pcsv.read_csv(str(path)))
    except (pa.ArrowException, ValueError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise  # a real I/O error (permission, disk): the CLI reports it
        raise R1kitError(f"{source} is not a readable {kind} file: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _load_from_disk(path: Path, split: str | None, source: str) -> Dataset:
    from datasets import DatasetDict, disable_caching, load_from_disk

    # Otherwise every later .map() writes cache-*.arrow files next to the saved data: into the
    # user's input folder (which r1kit must not change, and which may be read-only). Without the
    # cache they go to a temporary folder; r1kit's maps are cheap to redo.
    disable_caching()

    if _saved_without_rows(path):
        raise R1kitError(f"{source} has no rows (a dataset saved with 0 rows)")
    try:
        ds = load_from_disk(str(path))
    except (OSError, ValueError, IndexError, KeyError, FileNotFoundError) as err:
        if isinstance(err, OSError) and err.errno is not None and not isinstance(err, FileNotFoundError):
            raise  # a real I/O error (permission, disk): the CLI reports it
        # datasets raises IndexError for a folder saved with 0 rows (no shards) and FileNotFoundError
        # or ArrowInvalid for missing or damaged shard files
        raise R1kitError(
            f"{source}: cannot read the saved dataset ({_first_line(err)}); it is empty or damaged: "
            "write it again"
        ) from err
    return pick_split(ds, split, source) if isinstance(ds, DatasetDict) else ds


def _saved_without_rows(path: Path) -> bool:
    """A save_to_disk Dataset (or every split of a DatasetDict) written with 0 rows has no data files,
    which datasets then fails to load with an IndexError."""
    folders = [path]
    if (path / "dataset_dict.json").is_file():
        try:
            folders = [path / name for name in json.loads((path / "dataset_dict.json").read_text())["splits"]]
        except (OSError, ValueError, KeyError, TypeError):
            return False
    try:
        return all(not json.loads((f / "state.json").read_text())["_data_files"] for f in folders)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _load_hub(source: str, split: str | None) -> Dataset:
    name, _, config = source.partition(":")
    if _offline():
        raise R1kitError(
            f"{source} does not exist locally, and as a hub dataset it cannot be downloaded because "
            f"HF_HUB_OFFLINE=1 (pass {_KINDS.rsplit(' or ', 1)[0]})"
        )
    from datasets import DatasetDict, load_dataset

    try:
        ds = load_dataset(name, config or None)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise R1kitError(
            f"could not load dataset {source!r} from the hub: {type(err).__name__}: {first}"
        ) from err
    return pick_split(ds, split, source) if isinstance(ds, DatasetDict) else ds


def load_dataset_any(source: str | os.PathLike, split: str | None = None) -> Dataset:
    """Load one split of a dataset from any supported source (see the module docstring).

    `split` picks a split of a DatasetDict (default "train", then "test", then the only one);
    single files have one split and ignore it. Raises R1kitError for a missing path, an unknown
    format, a split that does not exist or a dataset with no rows.
    """
    source = str(source)
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "manifest.json").is_file() and (path / "data").is_dir():
            path = path / "data"  # an r1kit stage output
        if (
            (path / "dataset_dict.json").is_file()
            or (path / "dataset_info.json").is_file()
            or (path / "state.json").is_file()
        ):
            ds = _load_from_disk(path, split, source)
        else:
            hint = ""
            if (path / "model").is_dir() or (path / "config.json").is_file():
                hint = " (it holds a model/ folder: this looks like a checkpoint, not a dataset)"
            raise R1kitError(
                f"{source} is not a dataset folder: no dataset_dict.json or dataset_info.json "
                f"(expected {_KINDS}){hint}"
            )
    elif path.is_file():
        if path.suffix.lower() not in FILE_FORMATS:
            raise R1kitError(
                f"{source} has an unknown format {path.suffix or '(no suffix)'!r}; expected {_KINDS}"
            )
        ds = _read_file(path, source)
    elif path.suffix.lower() in FILE_FORMATS or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise R1kitError(f"dataset path {source} does not exist")
    else:
        ds = _load_hub(source, split)
    if len(ds) == 0:
        raise R1kitError(f"{source} has no rows")
    return ds


def require_columns(ds: Dataset, cols, source: str, hint: str = "") -> None:
    """Raise R1kitError naming the missing columns, the available ones and `hint` (how the caller's
    stage fixes it: only flags that stage has)."""
    missing = [c for c in cols if c not in ds.column_names]
    if missing:
        raise R1kitError(
            f"{source} is missing column(s) {', '.join(map(repr, missing))}; available columns: "
            f"{', '.join(ds.column_names)}" + (f" ({hint})" if hint else "")
        )


def require_text(ds: Dataset, columns, source: str, *, text: bool = True, messages: bool = True) -> None:
    """Raise R1kitError naming the first row whose value in `columns` is neither text (where `text`)
    nor a chat conversation (where `messages`): a list of {"role": str, "content": str}.

    A number, a null or a malformed conversation would otherwise fail deep inside a tokenizer or
    a chat template with a traceback that does not name the row.
    """
    kinds = [
        *(["text"] if text else []),
        *(["chat messages (a list of {role, content})"] if messages else []),
    ]
    kind = " or ".join(kinds)
    for column in columns:
        for i, value in enumerate(ds[column]):
            if (text and isinstance(value, str)) or (messages and is_messages(value)):
                continue
            shown = type(value).__name__ if value is not None else "null"
            if isinstance(value, list) and value:
                shown = f"a list whose items are not all {{role, content}} texts (first: {value[0]!r:.60})"
            raise R1kitError(f"{source} row {i}: column {column!r} must hold {kind}, got {shown}")


def is_messages(value) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value
        )
    )


def rename_columns(
    ds: Dataset, mapping: dict[str, str], source: str = "the dataset", hint: str = ""
) -> Dataset:
    """Rename old -> new; an existing column called `new` is replaced by the renamed one."""
    mapping = {old: new for old, new in mapping.items() if old and new and old != new}
    require_columns(ds, list(mapping), source, hint)
    clash = [new for new in mapping.values() if new in ds.column_names and new not in mapping]
    if clash:
        ds = ds.remove_columns(clash)
    return ds.rename_columns(mapping) if mapping else ds
