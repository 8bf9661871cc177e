#!/usr/bin/env bash
# DeepSeek-R1-Zero: pure reinforcement learning from a base model, no SFT at all.
#
# Reproduces: DeepSeek-R1 §2.2 (DeepSeek-R1-Zero), i.e. GRPO (PAPERS.md "GRPO (DeepSeekMath eq
# 3-4)") with the rule rewards and the R1-Zero template of "R1 rewards / template / eval":
# accuracy + format, equal weight, β 0.001, G 16, temperature 1.0, lr 3e-6, reference reset every
# 400 steps (all from `--preset r1-zero`, r1kit/rl/presets.py). Then the base model and the RL
# checkpoint are evaluated side by side (pass@1 over k samples, cons@k, tokens).
# Differs from the paper: GSM8K instead of R1's undisclosed prompt set, 32 prompts x 16 samples
# of at most 1024 tokens per step (R1: 32768 tokens), and however many steps you ask for. The
# nearest small-scale reference is SimpleRL-Zoo (PAPERS.md "Small-scale reference points"):
# Qwen2.5-1.5B on GSM8K 55.7 -> 74.4.
#
# Hardware: the defaults (a 1.5B model, 512 completions of <= 1024 tokens per step) are sized for
# one 80 GB GPU with vLLM rollouts (GRPO_ARGS="--use-vllm on"); for 7B and up, several GPUs with
# R1KIT_TRAIN="accelerate launch --config_file recipes/accelerate/zero3.yaml -m r1kit".
# (Not timed here: this machine has no GPU.) SMOKE=1 runs on a laptop CPU in well under a minute.
#
# Commands:
#   bash recipes/r1-zero.sh                                       # the defaults below
#   MODEL=Qwen/Qwen2.5-Math-7B STEPS=1000 OUT=runs/zero-7b bash recipes/r1-zero.sh
#   SMOKE=1 bash recipes/r1-zero.sh                               # CI form: tiny model, built-in task
#
# Variables (defaults in brackets; SMOKE=1 changes the ones marked *):
#   MODEL* [Qwen/Qwen2.5-Math-1.5B]   base model (hub id, folder, .gguf, r1kit stage output)
#   DATA* [../shared/data/gsm8k_train.jsonl]   RL prompts;  EVAL_DATA* [gsm8k_test.jsonl]
#   TASK* [gsm8k]   task adapter of both;  TRAIN_TASK [$TASK] of DATA;  EVAL_TASK [$TASK] of EVAL_DATA
#     (e.g. TRAIN_TASK=gsm8k EVAL_DATA=.../math500_test.jsonl EVAL_TASK=math500)
#   OUT* [runs/r1-zero]   where every stage writes
#   STEPS* [500]  PROMPTS_PER_STEP* [32]  NUM_GEN* [16]  MAX_LEN* [1024]  MICRO_BATCH* [16]
#   UPDATES* [16: optimizer steps per rollout batch, R1's minibatches]
#   LIMIT* [0 = all prompts]  EVAL_LIMIT* [0]  EVAL_SAMPLES* [16]  EVAL_MAX_TOKENS* [1024]
#   GRPO_ARGS, EVAL_ARGS: extra flags for those stages; R1KIT, R1KIT_TRAIN: see common.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ "${SMOKE:-0}" == 1 ]]; then
  : "${OUT:=runs/smoke-r1-zero}" "${SMOKE_DIR:=$(dirname "$OUT")/smoke-base}"
  smoke_data
  # Pure RL needs no correct answers to run, so the untrained tiny model is the base here.
  : "${MODEL:=tiny}" "${DATA:=$SMOKE_DIR/data}" "${EVAL_DATA:=$SMOKE_DIR/data}" "${TASK:=arithmetic}"
  : "${STEPS:=2}" "${PROMPTS_PER_STEP:=2}" "${NUM_GEN:=2}" "${MAX_LEN:=32}" "${MICRO_BATCH:=0}" "${UPDATES:=1}"
  : "${LIMIT:=8}" "${EVAL_LIMIT:=4}" "${EVAL_SAMPLES:=2}" "${EVAL_MAX_TOKENS:=48}"
fi
: "${MODEL:=Qwen/Qwen2.5-Math-1.5B}" "${OUT:=runs/r1-zero}"
: "${DATA:=$SHARED_DATA/gsm8k_train.jsonl}" "${EVAL_DATA:=$SHARED_DATA/gsm8k_test.jsonl}" "${TASK:=gsm8k}"
: "${TRAIN_TASK:=$TASK}" "${EVAL_TASK:=$TASK}"  # e.g. TRAIN_TASK=gsm8k EVAL_TASK=math500
: "${STEPS:=500}" "${PROMPTS_PER_STEP:=32}" "${NUM_GEN:=16}" "${MAX_LEN:=1024}" "${MICRO_BATCH:=16}" "${UPDATES:=16}"
: "${LIMIT:=0}" "${EVAL_LIMIT:=0}" "${EVAL_SAMPLES:=16}" "${EVAL_MAX_TOKENS:=1024}"
read -r -a grpo_extra <<<"${GRPO_ARGS:-}"
read -r -a eval_extra <<<"${EVAL_ARGS:-}"

# 1. GRPO straight from the base model with the R1-Zero template and rewards.
run_stage "$OUT/grpo" grpo --preset r1-zero --model "$MODEL" --data "$DATA" --task "$TRAIN_TASK" \
  --limit "$LIMIT" --max-steps "$STEPS" --prompts-per-step "$PROMPTS_PER_STEP" \
  --num-generations "$NUM_GEN" --max-completion-length "$MAX_LEN" --batch-size "$MICRO_BATCH" \
  --updates-per-rollout "$UPDATES" "${grpo_extra[@]}"

# 2. Base vs RL on held-out problems, R1's sampling (temperature 0.6, top-p 0.95, k samples).
run_stage "$OUT/eval" evaluate --model "$MODEL" --model "$OUT/grpo" --data "$EVAL_DATA" --task "$EVAL_TASK" \
  --template r1-zero --limit "$EVAL_LIMIT" --num-samples "$EVAL_SAMPLES" --pass-k 1 \
  --max-new-tokens "$EVAL_MAX_TOKENS" "${eval_extra[@]}"
summary "$OUT/eval"
