"""The contract between r1kit's GRPO trainer and trl: every trl method r1kit overrides or calls, and
every private trl attribute it reads, checked against the installed trl (issue 16).

`r1kit.rl.trainer.TRL_CONTRACT` lists them. These tests fail, naming the method or attribute, when
trl renames or re-signs one (so an upgrade breaks here, not mid-run), and when r1kit starts to
override or use a trl name that the list does not hold (so the list stays complete).
"""

import inspect
import re
from pathlib import Path

import pytest
import trl
from trl import GRPOTrainer

from r1kit.rl.fast_rollout import FastRolloutMixin
from r1kit.rl.trainer import TRL_CONTRACT, R1GRPOTrainer

RL = Path(__file__).resolve().parents[1] / "r1kit" / "rl"
OURS = {name for cls in R1GRPOTrainer.__mro__ if cls.__module__.startswith("r1kit.") for name in vars(cls)}


def _methods():
    return {**TRL_CONTRACT["overridden"], **TRL_CONTRACT["called"]}


@pytest.mark.parametrize("name", sorted(_methods()))
def test_trl_method_has_the_parameters_r1kit_relies_on(name):
    where = "overrides" if name in TRL_CONTRACT["overridden"] else "calls"
    method = getattr(GRPOTrainer, name, None)
    assert callable(method), (
        f"trl {trl.__version__}: GRPOTrainer.{name} is gone, but r1kit/rl {where} it "
        f"(r1kit.rl.trainer.TRL_CONTRACT); port R1GRPOTrainer / FastRolloutMixin"
    )
    expected = _methods()[name]
    found = tuple(inspect.signature(method).parameters)
    assert found[: len(expected)] == expected, (
        f"trl {trl.__version__}: GRPOTrainer.{name} now takes {found}; r1kit/rl {where} it with the leading "
        f"parameters {expected} (r1kit.rl.trainer.TRL_CONTRACT): check what changed and port r1kit's code"
    )


def test_every_override_of_a_trl_method_is_in_the_contract():
    for cls in (R1GRPOTrainer, FastRolloutMixin):
        for name, value in vars(cls).items():
            if callable(value) and not name.startswith("__") and hasattr(GRPOTrainer, name):
                assert name in TRL_CONTRACT["overridden"], (
                    f"{cls.__name__}.{name} overrides trl's GRPOTrainer.{name}: add it to TRL_CONTRACT['overridden']"
                )


def test_every_private_trl_name_used_in_rl_is_in_the_contract():
    # `self._x` / `trainer._x` / `super()._x` in the trainer's modules that r1kit does not define
    # itself must be a listed trl method or attribute (the other r1kit/rl modules never see the trainer)
    listed = set(_methods()) | set(TRL_CONTRACT["private_attributes"])
    used = set()
    for path in (RL / "trainer.py", RL / "fast_rollout.py", RL / "trl_args.py"):
        used |= set(re.findall(r"(?:self|trainer|super\(\))\.(_[a-zA-Z]\w*)", path.read_text()))
    r1kit_own = {n for n in used if n in OURS or n.startswith(("_r1_", "_fast_"))}
    missing = sorted(used - r1kit_own - listed)
    assert not missing, f"r1kit/rl uses trl's private {missing}: list them in r1kit.rl.trainer.TRL_CONTRACT"


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from datasets import Dataset
    from trl import GRPOConfig

    from r1kit.models import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("contract")),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=4,
        use_cpu=True,
        report_to="none",
    )
    return R1GRPOTrainer(
        model=build_tiny_model(tok),
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["1+1="] * 4}),
        processing_class=tok,
    )


def test_trl_sets_the_attributes_r1kit_reads(trainer):
    for name in (*TRL_CONTRACT["private_attributes"], *TRL_CONTRACT["attributes"]):
        assert hasattr(trainer, name), (
            f"trl {trl.__version__}: GRPOTrainer no longer sets self.{name}, which "
            f"r1kit/rl reads (r1kit.rl.trainer.TRL_CONTRACT)"
        )
    assert (
        set(trainer._metrics) >= {"train", "eval"} and trainer._metrics["train"]["x"] == []
    )  # defaultdict(list)
    assert trainer._tokenizer.pad_token_id is not None and trainer._is_vlm is False
    assert trainer.scale_rewards in ("group", "batch", "none")
