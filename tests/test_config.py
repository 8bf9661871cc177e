"""Config precedence (defaults < YAML < flags), unknown keys, type checks, atomic outputs."""

import dataclasses
import json
from typing import ClassVar

import pytest

from r1kit.config import StageConfig, build_config, option
from r1kit.errors import R1kitError
from r1kit.outputs import partial_dir, read_manifest, read_metrics, stage_output


@dataclasses.dataclass
class Demo(StageConfig):
    lr: float = option(1e-3, "learning rate")
    steps: int = option(10, "steps")
    rewards: list[str] = option(["accuracy"], "rewards")
    mode: str = option("a", "mode", choices=("a", "b"))
    flag: bool = option(False, "a flag")


def test_defaults_then_yaml_then_flags(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("lr: 0.5\nsteps: 3\nrewards: [format, accuracy]\n")
    cfg = build_config(Demo, str(yml), {"output": "o", "steps": 7, "lr": None})
    assert cfg.lr == 0.5  # from YAML, flag not given
    assert cfg.steps == 7  # flag beats YAML
    assert cfg.rewards == ["format", "accuracy"]
    assert cfg.mode == "a"  # default


def test_dashes_in_yaml_keys_and_type_coercion(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("output: o\nflag: 'yes'\nsteps: 4.0\n")
    cfg = build_config(Demo, str(yml), {})
    assert cfg.flag is True and cfg.steps == 4


def test_unknown_yaml_key_is_an_error_with_suggestion(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("output: o\nstpes: 3\n")
    with pytest.raises(R1kitError, match=r"unknown key 'stpes'.*did you mean 'steps'"):
        build_config(Demo, str(yml), {})


def test_bad_type_and_bad_choice():
    with pytest.raises(R1kitError, match="cannot read 'x' as int"):
        build_config(Demo, None, {"output": "o", "steps": "x"})
    with pytest.raises(R1kitError, match=r"--mode 'c' is not one of a, b"):
        build_config(Demo, None, {"output": "o", "mode": "c"})
    with pytest.raises(R1kitError, match="--output is required"):
        build_config(Demo, None, {})


@dataclasses.dataclass
class WithPresets(Demo):
    PRESETS: ClassVar = {"fast": {"lr": 0.1, "steps": 2, "rewards": ["format"]}, "slow": {"lr": "1e-5"}}
    preset: str = option("", "preset")


def test_presets_sit_between_defaults_and_yaml(tmp_path):
    # defaults < preset < YAML < flags; a flag equal to the default still beats the preset
    cfg = build_config(WithPresets, None, {"output": "o", "preset": "fast"})
    assert (cfg.lr, cfg.steps, cfg.rewards, cfg.mode) == (0.1, 2, ["format"], "a")
    yml = tmp_path / "c.yaml"
    yml.write_text("preset: fast\nsteps: 5\n")
    cfg = build_config(WithPresets, str(yml), {"output": "o", "lr": 1e-3})
    assert (cfg.lr, cfg.steps, cfg.rewards) == (1e-3, 5, ["format"])
    assert build_config(WithPresets, None, {"output": "o", "preset": "slow"}).lr == 1e-5  # coerced
    assert build_config(WithPresets, None, {"output": "o"}).lr == 1e-3  # no preset: the defaults
    # the preset's list is a copy: a second build starts from the table again
    build_config(WithPresets, None, {"output": "o", "preset": "fast"}).rewards.append("x")
    assert WithPresets.PRESETS["fast"]["rewards"] == ["format"]
    with pytest.raises(R1kitError, match=r"unknown preset 'fats'. Did you mean 'fast'\? Valid: fast, slow"):
        build_config(WithPresets, None, {"output": "o", "preset": "fats"})


def test_stage_output_is_atomic(tmp_path):
    cfg = build_config(Demo, None, {"output": str(tmp_path / "run")})
    with stage_output(cfg, "demo", {"x": 1}) as out:
        assert out.path == partial_dir(tmp_path / "run") and out.path.is_dir()
        assert not (tmp_path / "run").exists()
        out.log({"step": 1, "loss": 0.5})
    final = tmp_path / "run"
    assert read_manifest(final)["stage"] == "demo"
    assert read_manifest(final)["inputs"] == {"x": 1}
    assert read_metrics(final)[0]["loss"] == 0.5
    assert "lr: 0.001" in (final / "resolved_config.yaml").read_text()
    assert not out.path.exists()


def test_failed_stage_leaves_nothing_and_existing_output_is_refused(tmp_path):
    cfg = build_config(Demo, None, {"output": str(tmp_path / "run")})
    with pytest.raises(KeyboardInterrupt), stage_output(cfg, "demo") as out:
        (out.path / "half.txt").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "run").mkdir()
    with pytest.raises(R1kitError, match="already exists; pass --overwrite"), stage_output(cfg, "demo"):
        pass
    cfg.overwrite = True
    with stage_output(cfg, "demo") as out:
        out.log({"a": 1})
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["stage"] == "demo"


def test_an_alias_is_another_name_without_a_notice(tmp_path, capsys):
    """Other names of a field (metadata "aliases", and trl's from r1kit.trl_names) are accepted beside
    r1kit's: in YAML and as flags, without a notice."""
    import dataclasses

    from r1kit.config import other_names

    @dataclasses.dataclass
    class Aliased(StageConfig):
        epochs: float = option(1.0, "Passes over the data.", aliases=("passes",))

    assert other_names(Aliased) == {"passes": "epochs", "num_train_epochs": "epochs", "output_dir": "output"}
    cfg = build_config(Aliased, None, {"output": "o", "passes": 3})
    assert cfg.epochs == 3.0
    yml = tmp_path / "c.yaml"
    yml.write_text("num_train_epochs: 2\n")
    assert build_config(Aliased, str(yml), {"output": "o"}).epochs == 2.0
    assert capsys.readouterr().err == ""  # an alias is not deprecated
    with pytest.raises(R1kitError, match="given twice"):
        build_config(Aliased, None, {"output": "o", "passes": 3, "epochs": 2})
