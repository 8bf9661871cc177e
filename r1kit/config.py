"""Stage configuration: typed dataclasses, one source of defaults and help text.

Every stage declares a dataclass whose fields carry their default and help
text (`option`). One precedence rule holds everywhere:

    built-in defaults  <  preset  <  --config file.yaml  <  command-line flags

A stage may declare named presets (a paper's choices in one `--preset NAME`):
`build_config` fills the options that neither the YAML file nor a flag gives
from the chosen preset, so a flag always wins, even one that repeats the
built-in default, and `--help` shows the true defaults.

Unknown keys in a YAML file are an error, never silently ignored. A renamed
option keeps its old name for one release: a stage's DEPRECATED maps old names
to new ones, and the old name (a flag or a YAML key) works with a one-line
notice on stderr. Other names of an option are accepted silently: field
metadata "aliases", and trl's / open-r1's names (r1kit/trl_names.py, which also
translates the trl keys r1kit spells differently, such as reward_funcs and
reward_weights, and names the open-r1 keys it ignores in one notice). The CLI
builds its flags from these fields (r1kit/cli.py), so a field added here
appears on the command line with its help text and nothing else to edit.
This module must stay light: `r1kit --help` imports it without torch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from r1kit.errors import R1kitError
from r1kit.lookup import did_you_mean, lookup
from r1kit.progress import notice


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    aliases: tuple[str, ...] = (),
):
    """A config field with its default and help text (shown by `--help`); `aliases` are other names
    it answers to in YAML and as (hidden) flags, e.g. trl's, without a notice."""
    meta = {
        "help": help,
        "choices": choices,
        "metavar": metavar,
        **({"aliases": tuple(aliases)} if aliases else {}),
    }
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class StageConfig:
    """Fields every stage has. Subclasses add their own and override `validate`.

    A stage with presets sets PRESETS (name -> option values) and has a `preset` field; it may
    override `fit_preset` to drop preset values that cannot apply next to what the user gave.
    Presets are applied by `build_config` (CLI, YAML and Python alike); `Config(...)` called
    directly takes its values as they are.
    """

    PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    # Fields naming the stage's inputs (paths, or 'tiny'/hub ids): --output may not be, contain or lie
    # inside any of them (r1kit.outputs.check_inputs_apart).
    INPUTS: ClassVar[tuple[str, ...]] = ()

    # Renamed options: old name -> new name, accepted with a notice (build_config, the CLI).
    DEPRECATED: ClassVar[dict[str, str]] = {}

    output: str = option(
        "", "Output directory (written atomically; refused if it exists unless --overwrite)."
    )
    overwrite: bool = option(False, "Replace an existing output directory.")
    seed: int = option(0, "Random seed for sampling, shuffling and initialisation.")

    def __post_init__(self) -> None:
        self.validate()  # a Config built in Python is checked like one built from flags or YAML

    def validate(self) -> None:
        """Raise R1kitError for values that cannot work. Runs whenever a config is built (`__post_init__`)
        and touches neither the disk nor a tokenizer: checks that must (inputs exist, dataset columns,
        chat templates) belong to the stage's `run`, before anything is written."""
        if not self.output:
            raise R1kitError("--output is required: the directory this stage writes")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise R1kitError(
                    f"--{flag_name(f.name)} {value!r} is not one of {', '.join(choices)}"
                    + did_you_mean(str(value), choices)
                )
        from r1kit.ranges import check_ranges

        check_ranges(self)

    @classmethod
    def fit_preset(cls, preset: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """The preset's values to apply, given the options the user set (YAML and flags).

        Stages override this to let a preset value step aside where the user's own choice makes it
        impossible (the user's explicit contradictions stay errors in `validate`)."""
        return preset


def flag_name(field_name: str) -> str:
    return field_name.replace("_", "-")


def other_names(cls: type) -> dict[str, str]:
    """Every other name a field of `cls` answers to -> the field: its metadata's "aliases", trl's
    names for it (r1kit.trl_names.ALIASES) and the stage's DEPRECATED names. A name that is itself
    a field of `cls` is that field."""
    from r1kit.trl_names import aliases

    fields = {f.name for f in dataclasses.fields(cls)}
    names = {alias: f.name for f in dataclasses.fields(cls) for alias in f.metadata.get("aliases", ())}
    names = {**getattr(cls, "DEPRECATED", {}), **names, **aliases(fields)}  # a trl name is never deprecated
    return {name: target for name, target in names.items() if name not in fields}


def canonical_name(cls: type, key: str, config_file: str | None = None) -> str:
    """The field `key` names in `cls` (itself, an alias or a deprecated name); a deprecated name,
    as a flag or as a key of `config_file`, prints a one-line notice on stderr."""
    from r1kit.trl_names import aliases

    target = other_names(cls).get(key)
    if target is None:
        return key
    if key in getattr(cls, "DEPRECATED", {}) and key not in aliases(
        {f.name for f in dataclasses.fields(cls)}
    ):
        old, new = (
            (f"key {key!r} in {config_file}", repr(target))
            if config_file
            else (f"--{flag_name(key)}", f"--{flag_name(target)}")
        )
        notice(f"{old} is deprecated; use {new} (the old name goes in the next release)")
    return target


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, is_optional) for `X | None` / Optional[X]."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(name: str, value: Any, tp: Any) -> Any:
    """Convert a YAML or flag value to the field's declared type, or raise R1kitError."""
    inner, optional = base_type(tp)
    if value is None:
        if optional:
            return None
        raise R1kitError(f"{flag_name(name)} must not be empty")
    origin = typing.get_origin(inner)
    try:
        if origin is list:
            (item,) = typing.get_args(inner) or (str,)
            if isinstance(value, (str, int, float)):
                value = [value]
            if not isinstance(value, (list, tuple)):  # a mapping would silently become its keys
                raise ValueError(value)
            return [coerce(name, v, item) for v in value]
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError("expected a mapping")
            return dict(value)
        if inner is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if inner is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if inner is float:
            return float(value)
        if inner is str:
            return str(value)
    except (TypeError, ValueError) as exc:
        raise R1kitError(
            f"{flag_name(name)}: cannot read {value!r} as {getattr(inner, '__name__', inner)}"
        ) from exc
    return value


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise R1kitError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise R1kitError(f"config file {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise R1kitError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise R1kitError(f"config file {p} must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def preset_layer(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """The option values the preset named in `given` (else the `preset` field's default) fills in."""
    presets = getattr(cls, "PRESETS", None)
    if not presets:
        return {}
    default = next((f.default for f in dataclasses.fields(cls) if f.name == "preset"), "")
    name = given.get("preset", default)
    if not name:
        return {}
    hints = field_types(cls)
    values = {key: coerce(key, value, hints[key]) for key, value in lookup(presets, name, "preset").items()}
    return cls.fit_preset(values, given)


def build_config(cls: type, config_file: str | None = None, flags: dict[str, Any] | None = None):
    """Resolve a stage config: defaults < preset < YAML file < flags (None means 'not given').

    Each layer may use r1kit's names, their aliases and trl's / open-r1's vocabulary
    (r1kit.trl_names); a layer that names one option twice is refused."""
    from r1kit import trl_names

    values: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    if config_file:
        layer, more = _layer(cls, read_yaml(config_file), config_file)
        values.update(layer)
        extras.update(more)
    given = {
        k: v for k, v in (flags or {}).items() if not (v is None or v == [] or v == ())
    }  # None: not given
    layer, more = _layer(cls, given, None)
    values.update(layer)
    extras.update(more)
    values = trl_names.finish(cls, values, extras, {f.name for f in dataclasses.fields(cls)})
    hints = field_types(cls)
    values = {key: coerce(key, value, hints[key]) for key, value in values.items()}
    return cls(**{**preset_layer(cls, values), **values})  # validated by __post_init__


def _layer(
    cls: type, given: dict[str, Any], config_file: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One layer (a YAML file's keys, or the flags) as r1kit options, each checked against its type, and
    the trl keys r1kit.trl_names.finish reads once every layer is known."""
    from r1kit import trl_names

    hints = field_types(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    seen: dict[str, str] = {}
    values: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in given.items():
        target = canonical_name(cls, key, config_file)
        if target in fields:
            values[_once(seen, target, key)] = trl_names.value_form(target, value)
        else:
            rest[key] = value
    translated, extras, ignored, unknown = trl_names.translate(cls, rest, fields, set(values))
    if unknown:
        key = unknown[0]
        near = did_you_mean(key, sorted(fields | set(other_names(cls)) | trl_names.known_names(fields)))
        if config_file:
            valid = [f.name for f in dataclasses.fields(cls)]
            raise R1kitError(f"unknown key {key!r} in {config_file}{near}; valid keys: {', '.join(valid)}")
        raise R1kitError(f"unknown option {flag_name(key)!r}{near}")
    for target, value, key in translated:
        values[_once(seen, target, key)] = value
    if ignored:
        where = f"in {config_file}" if config_file else "among the flags"
        notice(
            f"ignoring trl/open-r1 keys {where} that change nothing r1kit computes (r1kit/trl_names.py "
            f"says why): {', '.join(ignored)}"
        )
    return {
        key: value if value is trl_names.PUSH_TO_OUTPUT_NAME else coerce(key, value, hints[key])
        for key, value in values.items()
    }, extras


def _once(seen: dict[str, str], key: str, given: str) -> str:
    """`key`; R1kitError when another name of the same option (its old name, an alias) was given too."""
    if seen.setdefault(key, given) != given:
        raise R1kitError(
            f"--{flag_name(key)} is given twice, as {flag_name(seen[key])} and as {flag_name(given)}; "
            "keep one"
        )
    return key


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def write_yaml(cfg: Any, path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True))
