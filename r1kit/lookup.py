"""Names to objects: the one registry lookup behind rewards, tasks, templates, backends, presets and dtypes.

lm-evaluation-harness keeps one registry helper for every kind of plug-in; r1kit does the same.
A registry is a plain dict (name -> object, or name -> "pkg.module:attr" to import lazily so that
`--help` loads no torch). `lookup` answers a registered name, a dotted import path where the
registry allows one (the escape hatch for user code: `--reward my_pkg.rewards:brevity`), and an
unknown name with one line: "unknown reward 'acuracy'. Did you mean 'accuracy'? Valid: ...".
This module must stay light: the CLI imports it to build `--help`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from r1kit.errors import R1kitError


def close_match(name: str, valid: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The valid name nearest to `name` (difflib's ratio >= cutoff), or None."""
    found = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the nearest valid name, or "" when none is near."""
    close = close_match(name, valid)
    return f" (did you mean {close!r}?)" if close else ""


def is_dotted_path(name: str) -> bool:
    """Whether `name` reads as an import path ("pkg.mod:obj" or "pkg.mod.obj") rather than a registry name."""
    return ":" in name or "." in name


def import_object(path: str, what: str) -> Any:
    """The object at "pkg.module:attr" (or "pkg.module.attr"); R1kitError that names what was asked for."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise R1kitError(f"{what} {path!r} is not a dotted path; write pkg.module:name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise R1kitError(f"cannot import {what} {path!r}: module {module_name!r} not found ({err})") from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise R1kitError(
            f"cannot import {what} {path!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None


def unknown_name(name: str, valid: Iterable[str], what: str, dotted: bool = False) -> R1kitError:
    """The error for a name that is not in a registry: did-you-mean and the valid names."""
    valid = list(valid)
    close = close_match(name, valid, cutoff=0.5)
    hint = f" Did you mean {close!r}?" if close else ""
    escape = " (or a dotted path such as my_pkg.module:name)" if dotted else ""
    return R1kitError(f"unknown {what} {name!r}.{hint} Valid: {', '.join(map(str, valid))}{escape}")


def lookup(
    registry: Mapping[str, Any], name: str, what: str, *, dotted: bool = False, load: bool = False
) -> Any:
    """registry[name]; with dotted=True also the object at a dotted import path.

    load=True: the registry's values are "pkg.module:attr" strings, imported on first use (what
    lets `--help` and config validation name a backend without importing torch).
    Unknown names raise R1kitError with a did-you-mean hint and the valid names.
    """
    if name in registry:
        value = registry[name]
        return import_object(value, what) if load else value
    if dotted and is_dotted_path(name):
        return import_object(name, what)
    raise unknown_name(name, registry, what, dotted)


def check_name(name: str, valid: Iterable[str], what: str, dotted: bool = False) -> None:
    """R1kitError unless `name` is one of `valid` (or, with dotted=True, an import path): a check
    that imports nothing, for config validation."""
    valid = list(valid)
    if name in valid or (dotted and is_dotted_path(name)):
        return
    raise unknown_name(name, valid, what, dotted)
