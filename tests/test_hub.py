"""--push-to-hub (r1kit/hub.py): refused in one line before training when it cannot work (offline, no
token, a bad repo id, an unreachable hub), and otherwise the complete model folder with its model
card is uploaded once, at the end, by rank 0 of the outermost stage. No test touches the network:
the refusals come first, and the uploads go to a fake HfApi."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, chats, cli_config, run_cli

from r1kit import hub, outputs
from r1kit.config import StageConfig
from r1kit.options import HubOptions


def sft_to_hub(tmp_path, out, repo, *extra):
    """One step of `r1kit sft` on tmp_path/chats.jsonl, pushed to `repo`, in this process (so that the
    `online` fixture's stand-in hub is the one it talks to)."""
    from typer.testing import CliRunner

    from r1kit.cli import app

    args = ["sft", "--data", str(tmp_path / "chats.jsonl"), "--output", str(out), "--max-steps", "1"]
    return CliRunner().invoke(app, [*args, "--push-to-hub", repo, *extra])


def test_offline_push_is_refused_in_one_line_before_training(tmp_path):
    chats(tmp_path / "chats.jsonl")
    res = run_cli(
        "sft",
        "--data",
        tmp_path / "chats.jsonl",
        "--output",
        tmp_path / "out",
        "--max-steps",
        1,
        "--push-to-hub",
        "me/tiny-sft",
    )  # run_cli sets HF_HUB_OFFLINE=1
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        (
            "r1kit: error: --push-to-hub me/tiny-sft: the hub is switched off (HF_HUB_OFFLINE=1), so the trained model "
            "could not be uploaded; unset HF_HUB_OFFLINE, or train without --push-to-hub and upload OUT/model later "
            "(hf upload me/tiny-sft OUT/model)"
        )
    ]
    assert "sft step" not in res.stdout + res.stderr  # stopped before training
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chats.jsonl"
    ]  # nothing written, not even a partial


@pytest.mark.parametrize(
    "stage, args",
    [
        ("grpo", ["--data", "chats.jsonl", "--max-steps", "1"]),
        ("dpo-shorten", ["--model", "tiny", "--data", "chats.jsonl", "--max-steps", "1"]),
        ("distill", ["--teacher", "tiny", "--student", "tiny", "--data", "chats.jsonl"]),
        ("merge", ["--model", "a", "--model", "b"]),
    ],
)
def test_every_stage_that_pushes_refuses_offline_in_one_line_before_it_starts(tmp_path, stage, args):
    """The flag, and trl's YAML form (push_to_hub: true + hub_model_id), on every stage with a model output."""
    chats(tmp_path / "chats.jsonl")
    (tmp_path / "hub.yaml").write_text("push_to_hub: true\nhub_model_id: me/tiny-run\n")
    for push in (["--push-to-hub", "me/tiny-run"], ["--config", "hub.yaml"]):
        res = run_cli(stage, *args, "--output", "out", *push, cwd=tmp_path)
        assert res.returncode == 2
        assert res.stderr.strip().splitlines() == [
            (
                "r1kit: error: --push-to-hub me/tiny-run: the hub is switched off (HF_HUB_OFFLINE=1), so the trained "
                "model could not be uploaded; unset HF_HUB_OFFLINE, or train without --push-to-hub and upload OUT/model "
                "later (hf upload me/tiny-run OUT/model)"
            )
        ]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["chats.jsonl", "hub.yaml"]


def test_push_without_a_token_is_refused_before_training(tmp_path):
    """Online, but no token: HF_HOME is an empty folder and HF_TOKEN is unset; the check reads no network."""
    chats(tmp_path / "chats.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="0", PYTHONPATH=str(REPO))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "r1kit",
            "grpo",
            "--data",
            str(tmp_path / "chats.jsonl"),
            "--output",
            str(tmp_path / "out"),
            "--push_to_hub",
            "me/tiny-grpo",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        (
            "r1kit: error: --push-to-hub me/tiny-grpo: no Hugging Face token; log in with `hf auth login` (or set "
            "HF_TOKEN) with a token that may write, then run again"
        )
    ]
    assert not (tmp_path / "out").exists()


def test_a_bad_repo_id_is_refused():
    cfg, res = cli_config(
        "merge", "--model", "a", "--model", "b", "--output", "o", "--push-to-hub", "me/my model"
    )
    assert cfg is None and res.exit_code == 2
    assert (
        "r1kit: error: --push-to-hub 'me/my model' is not a hub repo id (Repo id must use alphanumeric chars"
        in (res.stderr)
    )


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records the calls and what the uploaded folder held."""

    def __init__(self, fail_upload: bool = False, fail_create: bool = False):
        self.calls: list[tuple] = []
        self.fail_upload, self.fail_create = fail_upload, fail_create

    def create_repo(self, repo_id, *, private=None, exist_ok=False, repo_type=None):
        if self.fail_create:
            raise ConnectionError("Max retries exceeded with url: /api/repos/create")
        self.calls.append(("create_repo", repo_id, private, exist_ok, repo_type))
        return type("RepoUrl", (), {"repo_id": repo_id if "/" in repo_id else f"me/{repo_id}"})()

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, commit_message=None):
        if self.fail_upload:
            raise ConnectionError("Connection reset by peer")
        files = sorted(p.name for p in Path(folder_path).iterdir())
        card = (Path(folder_path) / "README.md").read_text()
        self.calls.append(("upload_folder", repo_id, folder_path, commit_message, files, card))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


@pytest.fixture
def online(monkeypatch):
    """A hub that is on, a token, and the fake HfApi (no network)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    fake = FakeHub()
    monkeypatch.setattr(hub, "_api", lambda: fake)
    return fake


def test_sft_and_merge_push_their_model_folder_with_its_card_at_the_end(tmp_path, online, monkeypatch):
    chats(tmp_path / "chats.jsonl")
    out = tmp_path / "sft"
    created_before_training = []
    create = online.create_repo

    def create_and_look(*args, **kwargs):
        created_before_training.append(not out.exists() and not outputs.partial_dir(out).exists())
        return create(*args, **kwargs)

    monkeypatch.setattr(online, "create_repo", create_and_look)
    res = sft_to_hub(tmp_path, out, "tiny-sft", "--hub-private")
    assert res.exit_code == 0, res.stderr
    assert created_before_training == [True]
    (create_call, upload) = online.calls
    assert create_call == ("create_repo", "tiny-sft", True, True, "model")
    _, repo, folder, message, files, card = upload
    assert (repo, folder, message) == ("me/tiny-sft", str(out / "model"), "r1kit sft: sft")  # the full id
    assert {"README.md", "config.json", "model.safetensors"} <= set(files)
    assert "r1kit" in card and "sft" in card  # the model card went up with the weights
    assert (
        f"pushed {out / 'model'} to me/tiny-sft (https://huggingface.co/me/tiny-sft/commit/abc)" in res.stdout
    )
    assert (out / "manifest.json").is_file()

    online.calls.clear()
    merged = tmp_path / "merged"
    from typer.testing import CliRunner

    from r1kit.cli import app

    res = CliRunner().invoke(
        app,
        [
            "merge",
            "--model",
            str(out),
            "--model",
            str(out),
            "--output",
            str(merged),
            "--push-to-hub",
            "me/tiny-merged",
        ],
    )
    assert res.exit_code == 0, res.stderr
    assert [c[:2] for c in online.calls] == [
        ("create_repo", "me/tiny-merged"),
        ("upload_folder", "me/tiny-merged"),
    ]
    assert "\n- merge\n" in online.calls[1][5]  # the merge's own card (its tags)


def test_a_failed_upload_keeps_the_complete_output_and_says_how_to_finish(tmp_path, online):
    online.fail_upload = True
    chats(tmp_path / "chats.jsonl")
    out = tmp_path / "sft"
    res = sft_to_hub(tmp_path, out, "me/tiny-sft")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f"r1kit: error: the output is complete in {out}, but uploading it to me/tiny-sft failed (ConnectionError: "
        f"Connection reset by peer); upload it with: hf upload me/tiny-sft {out / 'model'}"
    )
    assert (out / "manifest.json").is_file() and (out / "model" / "README.md").is_file()


def test_an_unreachable_hub_stops_the_run_before_anything_is_written(tmp_path, online):
    online.fail_create = True
    chats(tmp_path / "chats.jsonl")
    res = sft_to_hub(tmp_path, tmp_path / "sft", "me/tiny-sft")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "r1kit: error: --push-to-hub me/tiny-sft: cannot create or reach the repo before training (ConnectionError: "
        "Max retries exceeded with url: /api/repos/create); check the network and that the token may write there, or "
        "train without --push-to-hub"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chats.jsonl"]


@dataclass
class _Pushing(HubOptions, StageConfig):
    pass


def _publish(path: Path, stage: str, repo: str, inner: Path | None = None) -> None:
    with outputs.stage_output(_Pushing(output=str(path), push_to_hub=repo), stage) as out:
        out.model_dir.mkdir(parents=True)
        (out.model_dir / "config.json").write_text("{}")
        if inner is not None:  # a stage that writes another stage's output inside its own (distill's student)
            _publish(inner if inner.is_absolute() else out.path / inner, "sft", "me/inner")


def test_only_the_outermost_output_pushes_and_only_from_rank_0(tmp_path, online, monkeypatch):
    _publish(tmp_path / "distill", "distill", "me/student", inner=Path("sft"))
    assert [c[:2] for c in online.calls] == [("create_repo", "me/student"), ("upload_folder", "me/student")]
    assert online.calls[1][2] == str(tmp_path / "distill" / "model")
    online.calls.clear()
    monkeypatch.setenv("RANK", "1")
    _publish(tmp_path / "other", "sft", "me/other")
    assert online.calls == []
