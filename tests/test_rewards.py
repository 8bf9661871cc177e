"""Rule-based rewards and the registry, with hand-computed values."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest

from r1kit.errors import R1kitError
from r1kit.rewards import (
    REWARDS,
    accuracy_reward,
    format_reward,
    kimi_length_rewards,
    make_accuracy_reward,
    make_length_reward,
    make_overlong_reward,
    make_repetition_reward,
    make_reward_model_reward,
    repetition_rate,
    required_columns,
    resolve_reward,
    tag_count_reward,
    think_format_reward,
)
from r1kit.rewards._text import completion_text, detect_think_prefill

TRL_EXTRAS = {"trainer_state": SimpleNamespace(global_step=5), "log_extra": None, "log_metric": None}


def _call(fn, completions, prompts=None, **columns):
    prompts = prompts if prompts is not None else ["Q"] * len(completions)
    return fn(prompts=prompts, completions=completions, **columns, **TRL_EXTRAS)


# ----------------------------------------------------------------------------- format

GOOD = "<think>\nadd 2 and 2\n</think>\n<answer>4</answer>\n"
BAD = [
    "<think>a</think><think>b</think><answer>4</answer>",  # two think blocks
    "<think>a <think>b</think></think><answer>4</answer>",  # nested think
    "<think>a <answer>4</answer></think><answer>4</answer>",  # answer inside think
    "<think>a</think><answer>4</answer><answer>5</answer>",  # two answers
    "<answer>4</answer><think>a</think>",  # wrong order
    "Sure! <think>a</think><answer>4</answer>",  # text before
    "<think>a</think><answer>4</answer> trailing words",  # text after
    "<think>a</think><answer>  </answer>",  # empty answer
    "<think>a</think> 4",  # no answer tags
]


def test_format_reward_strict_template_with_harmless_whitespace():
    variants = [GOOD, "  <think>x</think><answer>4</answer>", "<think></think>\n\n<answer> 4 </answer>\n\n"]
    assert _call(format_reward, variants) == [1.0, 1.0, 1.0]
    assert _call(format_reward, BAD) == [0.0] * len(BAD)


def test_format_reward_handles_prefilled_think():
    completion = "add 2 and 2\n</think>\n<answer>4</answer>"
    assert _call(format_reward, [completion]) == [0.0]
    # the prompt string ends with the template's "<think>\n"
    assert _call(format_reward, [completion], prompts=["User: 2+2? Assistant: <think>\n"]) == [1.0]
    # the stage passes the template's prefill explicitly (chat prompts end with a user message)
    chat_prompt = [[{"role": "user", "content": "2+2?"}]]
    assert _call(format_reward, [completion], prompts=chat_prompt, prefill="<think>\n") == [1.0]
    assert _call(format_reward, [completion], prompts=chat_prompt, prefill=["<think>"]) == [1.0]
    # a completion that writes <think> itself is not doubled
    assert _call(format_reward, [GOOD], prompts=["... <think>\n"]) == [1.0]
    # prefill does not rescue a completion that still has no </think>
    assert _call(format_reward, ["<answer>4</answer>"], prefill="<think>\n") == [0.0]
    # through the registry parameter
    spec = resolve_reward("format=0.5", {"prefill": "<think>\n"})
    assert spec.fn(prompts=chat_prompt, completions=[completion]) == [1.0] and spec.weight == 0.5


def test_think_format_and_tag_count():
    comps = [
        "<think>r</think>The answer is 4.",
        "<think>r</think>   ",
        "<think>a</think><think>b</think>4",
        "no think at all",
        "<think><think>r</think>4",
    ]
    assert _call(think_format_reward, comps) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert _call(think_format_reward, ["reasoning</think> 4"], prefill="<think>\n") == [1.0]
    tags = [
        "<think>a</think><answer>4</answer>",
        "<think>a</think> 4",
        "<think>a<think>b</think><answer>4",
        "plain",
        "<think>a</think><answer>1</answer><answer>2</answer>",
    ]
    assert _call(tag_count_reward, tags) == [1.0, 0.5, 0.5, 0.0, 0.5]


def test_conversational_completions():
    chat = [
        [{"role": "assistant", "content": GOOD}],
        [{"role": "assistant", "content": [{"type": "text", "text": GOOD}]}],
        [{"role": "assistant", "reasoning_content": "add", "content": "<answer>4</answer>"}],
    ]
    assert [completion_text(c) for c in chat][:2] == [GOOD, GOOD]
    assert completion_text(chat[2]) == "<think>add</think><answer>4</answer>"
    assert _call(format_reward, chat) == [1.0, 1.0, 1.0]
    assert _call(accuracy_reward, chat, answer=["4", "5", "4"]) == [1.0, 0.0, 1.0]


class _Tok:
    def __init__(self, template, rendered):
        self.chat_template, self.rendered = template, rendered

    def apply_chat_template(self, *args, **kwargs):
        return self.rendered


def test_detect_think_prefill():
    assert detect_think_prefill(_Tok("t", "<|User|>1+1?<|Assistant|><think>\n")) == "<think>\n"
    assert detect_think_prefill(_Tok("t", "<|im_start|>assistant\n")) == ""
    assert detect_think_prefill(_Tok(None, "")) == ""


# ----------------------------------------------------------------------------- accuracy


def test_accuracy_reward_rows():
    comps = [
        "<think>x</think><answer>18</answer>",
        "<think>x</think><answer>17</answer>",
        "<think>x</think><answer>\\frac{1}{2}</answer>",
        "<answer>print(1)</answer>",
        "<answer>5</answer>",
        "<answer>(B)</answer>",
    ]
    golds = ["18", "18", "0.5", None, None, "B"]
    tasks = ["math", "math", "math", "code", "math", "choice"]
    assert _call(accuracy_reward, comps, answer=golds, task=tasks) == [1.0, 0.0, 1.0, None, None, 1.0]
    assert accuracy_reward.__name__ == "accuracy"
    boxed_only = make_accuracy_reward(extract="boxed")
    assert _call(boxed_only, ["<answer>3</answer>", "so \\boxed{3}"], answer=["3", "3"]) == [0.0, 1.0]
    with pytest.raises(R1kitError, match="answer"):
        _call(accuracy_reward, ["x"])  # no answer column
    with pytest.raises(R1kitError, match="extraction mode"):
        make_accuracy_reward(extract="last")


# ----------------------------------------------------------------------------- length (Kimi)


def _toy_batch():
    # 2 prompts x 4 samples, as trl's RepeatSampler lays them out (each prompt 4 times in a row)
    prompts = ["P1"] * 4 + ["P2"] * 4
    answers = ["4"] * 4 + ["9"] * 4
    comps = [
        "<answer>4</answer>",
        "<answer>4</answer>",
        "<answer>5</answer>",
        "<answer>4</answer>",
        "<answer>9</answer>",
        "<answer>1</answer>",
        "<answer>9</answer>",
        "<answer>2</answer>",
    ]
    ids = [[0] * n for n in (10, 20, 30, 50, 100, 100, 100, 100)]
    return prompts, answers, comps, ids


def test_kimi_length_reward_hand_computed():
    prompts, answers, comps, ids = _toy_batch()
    fn = make_length_reward()
    got = fn(prompts=prompts, completions=comps, completion_ids=ids, answer=answers, **TRL_EXTRAS)
    # P1: min 10, max 50 -> lambda = 0.5 - (L-10)/40 = 0.5, 0.25, 0.0, -0.5; sample 3 (len 30) is wrong -> min(0, 0)
    # P2: all lengths equal -> 0
    assert got == pytest.approx([0.5, 0.25, 0.0, -0.5, 0.0, 0.0, 0.0, 0.0])
    # wrong and short: no reward for being short
    assert kimi_length_rewards([10, 30], [False, True]) == [0.0, -0.5]
    # order does not matter: groups are found by prompt and gold
    order = [4, 0, 5, 1, 6, 2, 7, 3]
    shuffled = fn(
        prompts=[prompts[i] for i in order],
        completions=[comps[i] for i in order],
        completion_ids=[ids[i] for i in order],
        answer=[answers[i] for i in order],
        **TRL_EXTRAS,
    )
    assert shuffled == pytest.approx([got[i] for i in order])
    # group_size: consecutive chunks
    by_size = make_length_reward(group_size=4)(
        prompts=["same"] * 8, completions=comps, completion_ids=ids, answer=answers
    )
    assert by_size == pytest.approx(got)
    # a slice that cuts groups (8 is not a multiple of 3) falls back to grouping by prompt
    with pytest.warns(UserWarning, match="group_size 3"):
        cut = make_length_reward(group_size=3)(
            prompts=prompts, completions=comps, completion_ids=ids, answer=answers
        )
    assert cut == pytest.approx(got)


def test_length_reward_warmup_column_and_none():
    prompts, answers, comps, ids = _toy_batch()
    fn = make_length_reward(warmup_steps=10)
    assert (
        fn(
            prompts=prompts,
            completions=comps,
            completion_ids=ids,
            answer=answers,
            trainer_state=SimpleNamespace(global_step=9),
        )
        == [0.0] * 8
    )
    assert fn(
        prompts=prompts,
        completions=comps,
        completion_ids=ids,
        answer=answers,
        trainer_state=SimpleNamespace(global_step=10),
    )[0] == pytest.approx(0.5)
    by_column = make_length_reward(correctness="column")
    got = by_column(
        prompts=["P"] * 3,
        completions=["a", "b", "c"],
        completion_ids=[[0] * 10, [0] * 20, [0] * 30],
        correct=[False, True, True],
    )
    assert got == pytest.approx([0.0, 0.0, -0.5])
    # unparseable gold: correctness unknown -> None; chars used without completion_ids
    got = make_length_reward()(
        prompts=["P", "P"], completions=["<answer>1</answer>", "<answer>11</answer>"], answer=[None, None]
    )
    assert got == [None, None]
    got = make_length_reward()(
        prompts=["P", "P"], completions=["<answer>1</answer>", "<answer>1 </answer>"], answer=["1", "1"]
    )
    assert got == pytest.approx([0.5, -0.5])  # 18 vs 19 characters


# ----------------------------------------------------------------------------- overlong, repetition


def test_overlong_soft_punishment():
    fn = make_overlong_reward(max_len=100, cache_len=20)
    ids = [[0] * n for n in (50, 80, 81, 90, 100, 101)]
    # (80 - L) / 20 inside (80, 100]
    assert fn(prompts=["q"] * 6, completions=[""] * 6, completion_ids=ids) == pytest.approx(
        [0.0, 0.0, -0.05, -0.5, -1.0, -1.0]
    )
    assert fn(prompts=["q"], completions=["x"], num_tokens=[90]) == pytest.approx([-0.5])
    with pytest.raises(R1kitError, match="tokens"):
        fn(prompts=["q"], completions=["x"])
    with pytest.raises(R1kitError, match="cache_len"):
        make_overlong_reward(max_len=10, cache_len=20)


def test_repetition_penalty():
    assert repetition_rate("a b c a b c") == pytest.approx(0.25)  # trigrams abc bca cab abc: 3 unique of 4
    assert repetition_rate("one two") == 0.0
    assert repetition_rate("The cat sat on the mat") == 0.0
    fn = make_repetition_reward(ngram=2, max_penalty=0.5)
    # bigrams: (x y) (y x) (x y) (y x) (x y) -> 2 unique of 5 -> rate 0.6 -> -0.3
    assert fn(prompts=["q"], completions=["x y x y x y"]) == pytest.approx([-0.3])
    assert make_repetition_reward()(prompts=["q"], completions=["hi"]) == [0.0]
    loop = " ".join(["I will check again."] * 200)
    assert make_repetition_reward()(prompts=["q"], completions=[loop])[0] < -0.99
    assert repetition_rate("一二三一二三") == pytest.approx(0.25)  # characters are words in Chinese


# ----------------------------------------------------------------------------- registry


def test_registry_resolves_names_weights_and_paths():
    spec = resolve_reward("accuracy")
    assert (spec.name, spec.weight, spec.fn.__name__) == ("accuracy", 1.0, "accuracy")
    assert resolve_reward("format=0.5").weight == 0.5
    # user rewards come back under the guard (r1kit.rewards.guard), wrapping the function itself
    assert resolve_reward("r1kit.rewards.format:tag_count_reward=2").fn.__wrapped__ is tag_count_reward
    assert resolve_reward("r1kit.rewards.format.tag_count_reward").weight == 1.0
    spec = resolve_reward("overlong=-1", {"max_len": 100, "cache_len": 20, "lang": "en"})
    assert spec.fn(prompts=["q"], completions=["x"], completion_ids=[[0] * 90]) == [-0.5]
    lang = resolve_reward("language", {"lang": "en"})
    assert lang.fn(prompts=["q"], completions=["<think>we add the two numbers together</think> 4"]) == [1.0]
    for name in ("accuracy", "format", "think_format", "tag_count", "language", "repetition"):
        assert resolve_reward(name).fn.__name__ == name
    assert resolve_reward("length").fn.__name__ == "length"
    assert resolve_reward("accuracy", {"extract": "boxed"}).fn.__name__ == "accuracy"
    # the code reward asks the judge (prefill-aware), which runs r1kit.rewards.code.check_code
    assert REWARDS["code"].target == "r1kit.rewards.accuracy:make_code_reward"
    assert resolve_reward("code").fn.__name__ == "code"
    assert REWARDS["code_pass_rate"].target == "r1kit.rewards.code:code_pass_rate"


def test_registry_errors():
    with pytest.raises(R1kitError, match="Did you mean 'accuracy'\\?.*think_format"):
        resolve_reward("acuracy")
    with pytest.raises(R1kitError, match="not a number"):
        resolve_reward("format=high")
    with pytest.raises(R1kitError, match="max_len"):
        resolve_reward("overlong")
    with pytest.raises(R1kitError, match="checkpoint"):
        resolve_reward("reward_model")
    with pytest.raises(R1kitError, match="cannot import"):
        resolve_reward("no_such_pkg.mod:fn")
    with pytest.raises(R1kitError, match="not supported"):
        resolve_reward("language", {"lang": "xx"})


def test_required_columns():
    assert required_columns("accuracy") == {"answer"}
    assert required_columns("accuracy=2") == {"answer"}
    assert required_columns("language") == {"lang"}
    assert required_columns("language", {"lang": "en"}) == set()
    assert required_columns("code") == {"tests"}
    assert required_columns("format") == set()
    assert required_columns("length", {"correctness": "column"}) == {"correct"}
    assert required_columns("my.module:fn") == set()
    with pytest.raises(R1kitError, match="Did you mean 'format'"):
        required_columns("formatt")


# ----------------------------------------------------------------------------- reward model


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForSequenceClassification, LlamaConfig, PreTrainedTokenizerFast

    words = [
        "[PAD]",
        "[UNK]",
        "<s>",
        "user",
        "assistant",
        ":",
        "what",
        "is",
        "2",
        "+",
        "?",
        "4",
        "5",
        "the",
        "answer",
        "think",
    ]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>"
    )
    tok.chat_template = "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    folders = {}
    for labels in (1, 2):
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(words),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            num_labels=labels,
            pad_token_id=0,
        )
        model = AutoModelForSequenceClassification.from_config(config)
        path = tmp_path_factory.mktemp(f"rm{labels}")
        model.save_pretrained(path)
        tok.save_pretrained(path)
        folders[labels] = path
    return folders


def _direct_score(path, text, add_special_tokens=True, labels=1):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    ids = tok(text, add_special_tokens=add_special_tokens, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0]
    return float(logits[0]) if labels == 1 else float(torch.softmax(logits, -1)[1])


def test_reward_model_scores_pairs(tiny_rm):
    fn = make_reward_model_reward(tiny_rm[1], batch_size=2, device="cpu")
    assert fn.__name__ == "reward_model"
    prompts = ["what is 2 + 2 ?", "what is 2 + 2 ?", "what ?"]
    comps = [" 4", " the answer is 5 5 5 5", " 4"]
    got = fn(prompts=prompts, completions=comps)
    # each score equals the model run alone on prompt + completion: padding in the batch changes nothing
    expected = [_direct_score(tiny_rm[1], p + c) for p, c in zip(prompts, comps)]
    assert got == pytest.approx(expected, abs=1e-5)
    assert len({round(x, 6) for x in got}) == 3


def test_reward_model_chat_template_and_two_labels(tiny_rm):
    fn = make_reward_model_reward(tiny_rm[2], batch_size=8, device="cpu")
    prompt = [{"role": "user", "content": "what is 2 + 2 ?"}]
    comps = [[{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "5"}]]
    got = fn(prompts=[prompt, prompt], completions=comps)
    rendered = ["user : what is 2 + 2 ? assistant : 4 ", "user : what is 2 + 2 ? assistant : 5 "]
    expected = [_direct_score(tiny_rm[2], t, add_special_tokens=False, labels=2) for t in rendered]
    assert got == pytest.approx(expected, abs=1e-5)
    assert all(0.0 < p < 1.0 for p in got) and not any(math.isnan(p) for p in got)


def test_reward_model_is_bounded_on_a_huge_completion(tiny_rm):
    # Before: the whole sequence went through the model (a 1 MB completion: attention over 250k tokens).
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    fn = make_reward_model_reward(tiny_rm[1], batch_size=2, device="cpu")
    prompt, huge = "what is 2 + 2 ?", " the answer is 5" * 1500 + " the answer is 4"
    start = time.monotonic()
    got = fn(prompts=[prompt, prompt], completions=[huge, " 4"])
    assert time.monotonic() - start < 30
    tok = AutoTokenizer.from_pretrained(tiny_rm[1])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm[1]).eval()
    limit = model.config.max_position_embeddings
    ids = tok(prompt + huge)["input_ids"]
    assert len(ids) > limit  # the tokenizer states no limit: the config's max_position_embeddings holds
    with torch.inference_mode():
        expected = float(model(input_ids=torch.tensor([ids[-limit:]])).logits[0, 0])
    assert got[0] == pytest.approx(expected, abs=1e-5)  # the last `limit` tokens: the end is what is judged
    assert got[1] == pytest.approx(_direct_score(tiny_rm[1], prompt + " 4"), abs=1e-5)


def test_reward_model_missing_checkpoint(tmp_path):
    with pytest.raises(R1kitError, match="config.json"):
        make_reward_model_reward(tmp_path / "nope")
