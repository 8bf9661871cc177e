"""Neural reward model (DeepSeek-R1's final all-scenario RL stage scores general answers with one).

A local AutoModelForSequenceClassification checkpoint scores each (prompt, completion) pair:
  * conversational prompt and a tokenizer with a chat template -> the template renders
    prompt messages + the completion as an assistant turn (no extra special tokens added);
  * otherwise prompt text + completion text, tokenized with the tokenizer's special tokens.
The score is the logit when the head has one label, the probability of label 1 when it has two.
The model loads on the first call, so resolving the reward (e.g. to check dataset columns) stays
cheap; a missing checkpoint is reported at construction.

Bounded: a sequence longer than `max_length` keeps its last `max_length` tokens (the answer is what
is judged). Without `max_length` the limit is the model's own (tokenizer.model_max_length, else the
config's max_position_embeddings / n_positions), so a 1 MB completion costs one forward pass of
that length, not an attention matrix over 250k tokens.
"""

from __future__ import annotations

from pathlib import Path

from r1kit.errors import R1kitError
from r1kit.rewards._text import completion_text, prompt_tail


def _pair_ids(tokenizer, prompt, completion) -> list[int]:
    if isinstance(prompt, list) and getattr(tokenizer, "chat_template", None):
        reply = (
            completion
            if isinstance(completion, list)
            else [{"role": "assistant", "content": completion_text(completion)}]
        )
        text = tokenizer.apply_chat_template(list(prompt) + list(reply), tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    prompt_text = prompt if isinstance(prompt, str) else "\n".join(prompt_tail([m]) for m in (prompt or []))
    return tokenizer(prompt_text + completion_text(completion))["input_ids"]


def _length_limit(tokenizer, config) -> int:
    """The longest input the model takes: the tokenizer's limit when it states one, else the config's."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit <= 1_000_000:
        return limit
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 4096


def make_reward_model_reward(
    checkpoint: str | Path, batch_size: int = 8, device: str | None = None, max_length: int | None = None
):
    """A reward function that scores completions with the sequence classifier in `checkpoint`."""
    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise R1kitError(
            f"reward model checkpoint {str(path)!r} has no config.json; pass a folder written "
            f"by save_pretrained (a sequence-classification model and its tokenizer)"
        )
    if batch_size < 1:
        raise R1kitError(f"reward model batch_size must be >= 1, got {batch_size}")
    loaded: dict = {}

    def load():
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise R1kitError(f"the tokenizer in {path} has neither a pad nor an eos token; set pad_token")
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(path)
        if model.config.num_labels not in (1, 2):
            raise R1kitError(
                f"reward model in {path} has {model.config.num_labels} labels; r1kit needs 1 "
                f"(a score) or 2 (probability of label 1)"
            )
        model.config.pad_token_id = tokenizer.pad_token_id  # lets the head find the last real token
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        loaded.update(
            torch=torch,
            tokenizer=tokenizer,
            model=model.to(dev).eval(),
            device=dev,
            limit=max_length or _length_limit(tokenizer, model.config),
        )

    def reward_model(prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
        if not loaded:
            load()
        torch, tokenizer, model = loaded["torch"], loaded["tokenizer"], loaded["model"]
        prompts = list(prompts) if prompts is not None else [""] * len(completions)
        ids = [_pair_ids(tokenizer, p, c) for p, c in zip(prompts, completions)]
        ids = [x[-loaded["limit"] :] for x in ids]  # keep the end: the answer is what is judged
        scores: list[float] = []
        for start in range(0, len(ids), batch_size):
            batch = tokenizer.pad({"input_ids": ids[start : start + batch_size]}, return_tensors="pt")
            batch = {k: v.to(loaded["device"]) for k, v in batch.items()}
            with torch.inference_mode():
                logits = model(**batch).logits.float()
            values = logits[:, 0] if logits.shape[-1] == 1 else torch.softmax(logits, dim=-1)[:, 1]
            scores.extend(values.tolist())
        return scores

    reward_model.__name__ = "reward_model"
    return reward_model
