"""--push-to-hub: the model a stage trained, with its model card, uploaded to the Hugging Face hub.

trl's Trainer pushes when `push_to_hub=True`, to `hub_model_id` (else a repo named after
`output_dir`). r1kit pushes once, at the end, what the stage published: OUT/model with its
README.md (r1kit/model_card.py), from rank 0 only (r1kit.outputs.stage_output calls
`push_model` after the output is complete, so a failed upload never costs the trained model).

A push that cannot happen must stop the run before it trains, not hours later. What can be
known without the network is checked when the options are read (`check_push`, from
r1kit.options.HubOptions.validate): the repo id, offline mode (HF_HUB_OFFLINE=1) and a token
(`hf auth login` or HF_TOKEN). The network is first asked when the stage opens its output:
`open_repo` creates the repo, or finds it, before the model loads (trl's Trainer does the same
in its constructor), so a wrong token, a missing write permission or no network stops the run
there too, in one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from r1kit.errors import R1kitError

_TRUE = {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """Whether the hub is switched off, as huggingface_hub reads it (HF_HUB_OFFLINE, or transformers'
    TRANSFORMERS_OFFLINE), at the time of the call."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().upper() in _TRUE


def check_push(repo: str) -> None:
    """R1kitError when `repo` is not a repo id, the hub is off, or there is no token; no network."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as err:
        reason = str(err).split(":")[0].strip().rstrip(".")
        raise R1kitError(
            f"--push-to-hub {repo!r} is not a hub repo id ({reason}); write NAME or USER/NAME"
        ) from None
    if offline():
        raise R1kitError(
            f"--push-to-hub {repo}: the hub is switched off (HF_HUB_OFFLINE=1), so the trained model could "
            "not be uploaded; unset HF_HUB_OFFLINE, or train without --push-to-hub and upload OUT/model "
            f"later (hf upload {repo} OUT/model)"
        )
    if not get_token():
        raise R1kitError(
            f"--push-to-hub {repo}: no Hugging Face token; log in with `hf auth login` (or set HF_TOKEN) "
            "with a token that may write, then run again"
        )


def _api() -> Any:
    from huggingface_hub import HfApi

    return HfApi()


def _reason(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def open_repo(repo: str, private: bool = False) -> str:
    """Create `repo` (or find it: exist_ok) before training; its full id (NAME gets the token's user).

    Any failure here (no network, a token that may not write, a name taken by someone else's repo)
    means the upload after training would fail too: one line, before the model loads."""
    try:
        url = _api().create_repo(repo, private=private or None, exist_ok=True, repo_type="model")
    except Exception as err:  # whatever the hub or the network raised, the run must not start
        raise R1kitError(
            f"--push-to-hub {repo}: cannot create or reach the repo before training ({_reason(err)}); "
            "check the network and that the token may write there, or train without --push-to-hub"
        ) from err
    return getattr(url, "repo_id", None) or repo


def push_model(folder: Path, repo_id: str, stage: str, output: Path) -> str:
    """Upload `folder` (OUT/model: weights, tokenizer, model card) to `repo_id`; the commit's URL.

    The output is complete on disk when this runs: a failure says so and how to upload it by hand."""
    try:
        info = _api().upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message=f"r1kit {stage}: {output.name}",
        )
    except Exception as err:  # the model is safe on disk: say how to finish the upload
        raise R1kitError(
            f"the output is complete in {output}, but uploading it to {repo_id} failed ({_reason(err)}); "
            f"upload it with: hf upload {repo_id} {folder}"
        ) from err
    return str(getattr(info, "commit_url", "") or f"https://huggingface.co/{repo_id}")
