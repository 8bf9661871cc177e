#!/usr/bin/env bash
# DeepSeek-R1: the four training stages, then an evaluation of every checkpoint.
#
# Reproduces DeepSeek-R1 §2.3 (PAPERS.md "R1 pipeline" and "R1 rewards / template / eval"):
#   1. cold start (§2.3.1): SFT of the base model on long chain-of-thought data;
#   2. reasoning-oriented RL (§2.3.2): GRPO with accuracy + think-format + language-consistency
#      rewards (`--preset r1`: chat template, reply forced to open with "<think>\n", β 0.001,
#      G 16, lr 3e-6, reference reset every 400 steps);
#   3. rejection sampling and SFT (§2.3.3): sample the RL checkpoint, keep the correct answers,
#      drop mixed-language / long-paragraph / code-block / repetitive ones, then SFT the *base*
#      model (not the RL one, as R1 does) on them for 2 epochs (R1: 2-3, lr 5e-5 -> 5e-6);
#   4. RL for all scenarios (§2.3.4): GRPO again from that SFT model, rule rewards (accuracy,
#      format) plus a neural reward model;
#   then R1's evaluation (temperature 0.6, top-p 0.95, pass@1 over k samples, cons@k) of all five.
# A real run needs a trained reward model for stage 4: RM=/path/to/folder, a save_pretrained
# AutoModelForSequenceClassification checkpoint with its tokenizer (one score label, or two:
# probability of label 1). SMOKE=1 builds a randomly initialised one, which only checks the wiring.
# RM=none stops after stage 3. `r1kit grpo` has no flag for the reward model's checkpoint, so the
# recipe binds it in a small generated module ($OUT/rm/r1kit_reward_model.py) and passes it as a
# dotted-path reward.
# Differs from the paper: GSM8K prompts instead of R1's ~600k reasoning + ~200k general set
# (give general SFT data with MIX_DATA, a dataset with a `messages` column), stage 4 scores the
# same prompts as stage 2 (RL2_DATA to change), and rollouts of MAX_LEN tokens (R1: 32768).
#
# Hardware: the defaults (Qwen2.5-1.5B, 16 x 32 completions of <= 2048 tokens per RL step, SFT at
# 4096 tokens) are sized for 8 x 80 GB GPUs with R1KIT_TRAIN="accelerate launch --config_file
# recipes/accelerate/zero2.yaml -m r1kit" and GRPO_ARGS="--use-vllm on"; one 80 GB GPU runs them
# with smaller PROMPTS_PER_STEP / MAX_LEN. (Not timed here: this machine has no GPU.)
#
# Commands:
#   RM=/path/to/reward-model bash recipes/r1.sh
#   MODEL=Qwen/Qwen2.5-7B COLD_DATA=my/long-cot RM=rm OUT=runs/r1-7b bash recipes/r1.sh
#   SMOKE=1 bash recipes/r1.sh                    # CI form: tiny model, built-in task
#
# Variables (defaults in brackets; SMOKE=1 changes the ones marked *):
#   MODEL* [Qwen/Qwen2.5-1.5B]  base model;  COLD_DATA* [open-r1/OpenR1-Math-220k]  long-CoT
#     chats (`messages` column);  DATA* [../shared/data/gsm8k_train.jsonl]  RL and rejection-
#     sampling prompts;  RL2_DATA* [$DATA];  EVAL_DATA* [gsm8k_test.jsonl];  TASK* [gsm8k]
#     (both);  TRAIN_TASK [$TASK]: task adapter of DATA and RL2_DATA;  EVAL_TASK [$TASK]: of EVAL_DATA
#   TEMPLATE* [chat-think: R1's prompt, reply prefilled with "<think>\n"; used by every stage]
#   RM* [required, or none]  RM_WEIGHT [1]  MIX_DATA [none]  TARGET_LANG [en]  OUT* [runs/r1]
#   SFT_STEPS* [-1 = 2 epochs]  SFT_LR [5e-5]  SFT_MAX_LEN* [4096]  SFT_BATCH* [16]
#   STEPS* [400]  PROMPTS_PER_STEP* [32]  NUM_GEN* [16]  MAX_LEN* [2048]  MICRO_BATCH* [16]
#   UPDATES* [16: optimizer steps per rollout batch, R1's minibatches]
#   LIMIT* [0 = all]  RS_SAMPLES* [4]  RS_LIMIT* [0 = all]
#   EVAL_LIMIT* [0]  EVAL_SAMPLES* [16]  EVAL_MAX_TOKENS* [4096]
#   SFT_ARGS, GRPO_ARGS, RS_ARGS, EVAL_ARGS: extra flags;  R1KIT, R1KIT_TRAIN: see common.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ "${SMOKE:-0}" == 1 ]]; then
  : "${OUT:=runs/smoke-r1}" "${SMOKE_DIR:=$(dirname "$OUT")/smoke-base}"
  smoke_base
  : "${MODEL:=$SMOKE_DIR/teacher}" "${COLD_DATA:=$SMOKE_DIR/data}" "${DATA:=$SMOKE_DIR/data}"
  : "${EVAL_DATA:=$SMOKE_DIR/data}" "${TASK:=arithmetic}" "${RM:=$OUT/reward-model}"
  # The tiny model learned the plain chat prompt; R1's prompt adds an instruction it never saw.
  : "${TEMPLATE:=chat}"
  tiny_reward_model "$RM"
  : "${SFT_STEPS:=2}" "${SFT_MAX_LEN:=256}" "${SFT_BATCH:=8}"
  : "${STEPS:=2}" "${PROMPTS_PER_STEP:=2}" "${NUM_GEN:=2}" "${MAX_LEN:=32}" "${MICRO_BATCH:=0}" "${LIMIT:=8}" "${UPDATES:=1}"
  : "${RS_SAMPLES:=8}" "${RS_LIMIT:=16}" "${RS_MAX_TOKENS:=96}"
  : "${EVAL_LIMIT:=4}" "${EVAL_SAMPLES:=2}" "${EVAL_MAX_TOKENS:=64}"
fi
: "${MODEL:=Qwen/Qwen2.5-1.5B}" "${COLD_DATA:=open-r1/OpenR1-Math-220k}" "${OUT:=runs/r1}"
: "${DATA:=$SHARED_DATA/gsm8k_train.jsonl}" "${EVAL_DATA:=$SHARED_DATA/gsm8k_test.jsonl}" "${TASK:=gsm8k}"
: "${TRAIN_TASK:=$TASK}" "${EVAL_TASK:=$TASK}"  # e.g. TRAIN_TASK=gsm8k EVAL_TASK=math500
: "${RL2_DATA:=$DATA}" "${RM_WEIGHT:=1}" "${MIX_DATA:=}" "${TARGET_LANG:=en}" "${TEMPLATE:=chat-think}"
: "${SFT_STEPS:=-1}" "${SFT_LR:=5e-5}" "${SFT_MAX_LEN:=4096}" "${SFT_BATCH:=16}"
: "${STEPS:=400}" "${PROMPTS_PER_STEP:=32}" "${NUM_GEN:=16}" "${MAX_LEN:=2048}" "${MICRO_BATCH:=16}" "${UPDATES:=16}"
: "${LIMIT:=0}"
: "${RS_SAMPLES:=4}" "${RS_LIMIT:=0}" "${RS_MAX_TOKENS:=$MAX_LEN}"
: "${EVAL_LIMIT:=0}" "${EVAL_SAMPLES:=16}" "${EVAL_MAX_TOKENS:=4096}"
if [[ -z "${RM:-}" ]]; then
  echo "r1.sh: set RM to a trained reward model (a save_pretrained sequence-classification folder)" \
    "for stage 4, or RM=none to stop after stage 3" >&2
  exit 2
fi
read -r -a sft_extra <<<"${SFT_ARGS:-}"
read -r -a grpo_extra <<<"${GRPO_ARGS:-}"
read -r -a rs_extra <<<"${RS_ARGS:-}"
read -r -a eval_extra <<<"${EVAL_ARGS:-}"
rl_shape=(--template "$TEMPLATE" --limit "$LIMIT" --max-steps "$STEPS" --prompts-per-step "$PROMPTS_PER_STEP"
  --num-generations "$NUM_GEN" --max-completion-length "$MAX_LEN" --batch-size "$MICRO_BATCH"
  --updates-per-rollout "$UPDATES")
sft_shape=(--epochs 2 --max-steps "$SFT_STEPS" --learning-rate "$SFT_LR" --min-lr-ratio 0.1
  --max-length "$SFT_MAX_LEN" --batch-size "$SFT_BATCH")

# 1. Cold start: SFT on long chains of thought.
run_stage "$OUT/cold-start" sft --model "$MODEL" --data "$COLD_DATA" "${sft_shape[@]}" "${sft_extra[@]}"

# 2. Reasoning RL with the language-consistency reward.
run_stage "$OUT/reasoning-rl" grpo --preset r1 --model "$OUT/cold-start" --data "$DATA" --task "$TRAIN_TASK" \
  --lang "$TARGET_LANG" "${rl_shape[@]}" "${grpo_extra[@]}"

# 3. Rejection sampling from the RL checkpoint, then SFT of the base model on what survived.
mix=()
[[ -n "$MIX_DATA" ]] && mix=(--mix-data "$MIX_DATA")
run_stage "$OUT/rejection-sampling" rejection-sample --model "$OUT/reasoning-rl" --data "$DATA" \
  --task "$TRAIN_TASK" --template "$TEMPLATE" --keep all-correct --lang "$TARGET_LANG" \
  --num-samples "$RS_SAMPLES" --limit "$RS_LIMIT" --max-new-tokens "$RS_MAX_TOKENS" "${mix[@]}" "${rs_extra[@]}"
run_stage "$OUT/rs-sft" sft --model "$MODEL" --data "$OUT/rejection-sampling" "${sft_shape[@]}" \
  "${sft_extra[@]}"

models=("$MODEL" "$OUT/cold-start" "$OUT/reasoning-rl" "$OUT/rs-sft")
# 4. RL for all scenarios: rule rewards plus the reward model.
if [[ "$RM" != none ]]; then
  rm_spec=$(reward_model_module "$OUT/rm" "$RM")
  PYTHONPATH="$OUT/rm${PYTHONPATH:+:$PYTHONPATH}" run_stage "$OUT/all-scenario-rl" grpo --preset r1 \
    --model "$OUT/rs-sft" --data "$RL2_DATA" --task "$TRAIN_TASK" \
    --reward accuracy=1 --reward think_format=1 --reward "$rm_spec=$RM_WEIGHT" \
    "${rl_shape[@]}" "${grpo_extra[@]}"
  models+=("$OUT/all-scenario-rl")
fi

# Every checkpoint under the same prompt (R1's evaluation prompt by default: chat-think).
model_flags=()
for m in "${models[@]}"; do model_flags+=(--model "$m"); done
run_stage "$OUT/eval" evaluate "${model_flags[@]}" --data "$EVAL_DATA" --task "$EVAL_TASK" --template "$TEMPLATE" \
  --limit "$EVAL_LIMIT" --num-samples "$EVAL_SAMPLES" --pass-k 1 --max-new-tokens "$EVAL_MAX_TOKENS" \
  "${eval_extra[@]}"
summary "$OUT/eval"
