# Shared helpers for the recipes in this folder. Sourced by them, not run on its own.
#
# Variables every recipe understands (all optional):
#   R1KIT        how to call r1kit (default: `r1kit` on PATH), e.g. R1KIT="python -m r1kit"
#   R1KIT_TRAIN  how to call r1kit for sft and grpo, the stages that run under several processes
#                (default: $R1KIT), e.g.
#                R1KIT_TRAIN="accelerate launch --config_file recipes/accelerate/zero2.yaml -m r1kit"
#                (generation stages and dpo-shorten always run as one process)
#   PYTHON       Python for the few inline helpers (default: the one that runs r1kit, else python3)
#   SMOKE=1      the reduced CI form: tiny model, built-in arithmetic task, a couple of steps per stage
#   SMOKE_DIR    where SMOKE=1 keeps the data and base model that the recipes share (default:
#                smoke-base beside $OUT, so runs/smoke-* build them once)
#
# Every stage writes one output folder; a folder that holds manifest.json is finished (r1kit
# writes it last, after an atomic rename), so rerunning a recipe skips it and continues.

R1KIT=${R1KIT:-r1kit}
R1KIT_TRAIN=${R1KIT_TRAIN:-$R1KIT}
read -r -a _r1kit_words <<<"$R1KIT"
if [[ -z "${PYTHON:-}" ]]; then
  # The Python that runs r1kit: named in R1KIT, else the interpreter of the `r1kit` script.
  PYTHON=python3
  if [[ "${_r1kit_words[0]##*/}" == python* ]]; then
    PYTHON=${_r1kit_words[0]}
  elif _script=$(command -v "${_r1kit_words[0]}") && [[ -f "$_script" ]] \
    && [[ $(head -c 2 "$_script") == "#!" ]]; then
    _shebang=$(head -n 1 "$_script")
    [[ "$_shebang" == "#!"*python* && -x "${_shebang#\#!}" ]] && PYTHON=${_shebang#\#!}
  fi
fi
RECIPES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$RECIPES_DIR")
# The benchmark files live beside the repository (../shared/data), as in CI.
SHARED_DATA=${SHARED_DATA:-$(cd "$REPO_DIR/.." && pwd)/shared/data}

say() { printf '\n\033[1m[%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*" >&2; }

# is_done DIR: DIR holds a finished r1kit stage output.
is_done() { [[ -f "$1/manifest.json" ]]; }

# run_stage OUT COMMAND [ARGS...]: `r1kit COMMAND ARGS --output OUT`, skipped when OUT is finished.
# COMMAND may be two words ("data arithmetic"), passed as one argument.
run_stage() {
  local out=$1 command=$2
  shift 2
  if is_done "$out"; then
    say "skip $command: $out is finished (delete it to redo)"
    return 0
  fi
  local -a runner
  case $command in
    sft | grpo) read -r -a runner <<<"$R1KIT_TRAIN" ;;
    *) read -r -a runner <<<"$R1KIT" ;;
  esac
  local -a words
  read -r -a words <<<"$command"
  say "r1kit $command -> $out"
  "${runner[@]}" "${words[@]}" "$@" --output "$out"
}

# smoke_data: the SMOKE=1 dataset, built once in $SMOKE_DIR/data: one-digit additions with
# worked traces, 80 train / 20 test (r1kit data arithmetic).
smoke_data() {
  run_stage "$SMOKE_DIR/data" "data arithmetic" --train-size 80 --test-size 20 --digits 1
}

# smoke_base: smoke_data plus $SMOKE_DIR/teacher, the tiny model after 120 SFT steps on it (about
# a quarter of its samples are right at temperature 1). An untrained tiny model answers nothing
# right, and rejection sampling, distillation and DPO need some correct samples, so SMOKE=1 starts
# from this checkpoint where a real run starts from a pretrained model. Same commands and layout
# as the teacher of tests/test_rejection_sample.py.
smoke_base() {
  smoke_data
  run_stage "$SMOKE_DIR/teacher" sft --model tiny --data "$SMOKE_DIR/data" --max-steps 120 \
    --learning-rate 3e-3 --batch-size 32 --logging-steps 40
}

# tiny_reward_model DIR: a randomly initialised sequence classifier (one score label) over the
# tiny tokenizer, saved with save_pretrained. It only stands in for a trained reward model so that
# the reward-model stage runs end to end in SMOKE=1; its scores carry no preference.
tiny_reward_model() {
  local dir=$1
  if [[ -f "$dir/config.json" ]]; then
    say "skip reward model: $dir exists"
    return 0
  fi
  say "tiny reward model -> $dir"
  "$PYTHON" - "$dir" <<'EOF'
import sys

import torch
from transformers import Qwen2Config, Qwen2ForSequenceClassification

from r1kit.models import build_tiny_tokenizer

tok = build_tiny_tokenizer()
config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1, num_labels=1,
                     pad_token_id=tok.pad_token_id, max_position_embeddings=1024)
torch.manual_seed(0)
Qwen2ForSequenceClassification(config).save_pretrained(sys.argv[1])
tok.save_pretrained(sys.argv[1])
EOF
}

# reward_model_module DIR CHECKPOINT: writes DIR/r1kit_reward_model.py, which exposes
# `reward_model`, the registry's reward-model reward bound to CHECKPOINT, and prints the
# --reward spec that names it. `r1kit grpo` has no flag for the reward model's checkpoint, so the
# recipe passes the reward as a dotted path (DIR must be on PYTHONPATH).
reward_model_module() {
  local dir=$1 checkpoint
  checkpoint=$(cd "$2" && pwd)
  mkdir -p "$dir"
  cat >"$dir/r1kit_reward_model.py" <<EOF
"""Written by recipes/common.sh: the reward-model reward bound to one checkpoint."""
from r1kit.rewards.reward_model import make_reward_model_reward

reward_model = make_reward_model_reward(r"""$checkpoint""")
EOF
  echo "r1kit_reward_model:reward_model"
}

# summary EVAL_DIR: pass@1 and mean tokens per model, read back from EVAL_DIR/results.json (also
# after a rerun that skipped the evaluation).
summary() {
  "$PYTHON" - "$1/results.json" <<'EOF'
import json
import sys

results = json.load(open(sys.argv[1]))
width = max(len(name) for name in results)
print(f"\n{'model':<{width}}  pass@1  mean tokens")
for name, m in results.items():
    print(f"{name:<{width}}  {100 * m['pass@1']:5.1f}%  {m['mean_tokens']:11.1f}")
EOF
}
