#!/usr/bin/env bash
# DeepSeek-R1-Distill: a reasoning teacher writes traces, a smaller student is SFT-trained on them.
#
# Reproduces DeepSeek-R1 §2.4 (distillation; PAPERS.md "R1 pipeline", Distill line and the
# "Distilled" table): the teacher samples answers to reasoning prompts, the correct ones that pass
# R1's filters (language mixing, long paragraphs, code blocks, repetition) are kept, and the
# student learns them with SFT only, no RL: 2-3 epochs, lr 1e-4 for the small students, batch 64.
# `r1kit distill` runs both halves (rejection-sample with the teacher, then sft of the student);
# the teacher, the untrained student and the distilled student are then evaluated side by side.
# Differs from the paper: the traces come from the TEACHER checkpoint on DATA (R1 used ~800k
# samples curated from DeepSeek-R1 itself); reference point: R1-Distill-Qwen-1.5B scores MATH-500
# 83.9 / AIME 28.9 after that full set.
#
# Hardware: the defaults (a 7B teacher sampling 4 x 7473 GSM8K answers of <= 4096 tokens, a 1.5B
# student at 4096 tokens) want one 80 GB GPU with vLLM for the teacher (DISTILL_ARGS="--backend
# vllm"); the student's SFT fits the same GPU. (Not timed here: this machine has no GPU.)
#
# Commands:
#   bash recipes/distill.sh
#   TEACHER=runs/r1/all-scenario-rl STUDENT=Qwen/Qwen2.5-0.5B OUT=runs/distill-0.5b bash recipes/distill.sh
#   SMOKE=1 bash recipes/distill.sh               # CI form: tiny teacher, tiny-llama student
#
# Variables (defaults in brackets; SMOKE=1 changes the ones marked *):
#   TEACHER* [deepseek-ai/DeepSeek-R1-Distill-Qwen-7B]  STUDENT* [Qwen/Qwen2.5-Math-1.5B]
#   DATA* [../shared/data/gsm8k_train.jsonl]  EVAL_DATA* [gsm8k_test.jsonl]  TASK* [gsm8k]
#   TRAIN_TASK [$TASK]: task adapter of DATA;  EVAL_TASK [$TASK]: of EVAL_DATA
#   TEMPLATE [chat]  OUT* [runs/distill]  LIMIT* [0 = all prompts]  SAMPLES* [4]  MAX_LEN* [4096]
#   EPOCHS [2]  STEPS* [-1 = all epochs]  LR [1e-4]  BATCH* [16]  GRAD_ACCUM* [4]
#   EVAL_LIMIT* [0]  EVAL_SAMPLES* [16]  EVAL_MAX_TOKENS* [4096]
#   DISTILL_ARGS, EVAL_ARGS: extra flags;  R1KIT: see common.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ "${SMOKE:-0}" == 1 ]]; then
  : "${OUT:=runs/smoke-distill}" "${SMOKE_DIR:=$(dirname "$OUT")/smoke-base}"
  smoke_base
  # The teacher must answer some prompts right; the student is another architecture from scratch.
  : "${TEACHER:=$SMOKE_DIR/teacher}" "${STUDENT:=tiny-llama}" "${DATA:=$SMOKE_DIR/data}"
  : "${EVAL_DATA:=$SMOKE_DIR/data}" "${TASK:=arithmetic}"
  : "${LIMIT:=16}" "${SAMPLES:=4}" "${MAX_LEN:=96}" "${STEPS:=2}" "${BATCH:=8}" "${GRAD_ACCUM:=1}"
  : "${EVAL_LIMIT:=4}" "${EVAL_SAMPLES:=2}" "${EVAL_MAX_TOKENS:=64}"
fi
: "${TEACHER:=deepseek-ai/DeepSeek-R1-Distill-Qwen-7B}" "${STUDENT:=Qwen/Qwen2.5-Math-1.5B}"
: "${OUT:=runs/distill}"
: "${DATA:=$SHARED_DATA/gsm8k_train.jsonl}" "${EVAL_DATA:=$SHARED_DATA/gsm8k_test.jsonl}" "${TASK:=gsm8k}"
: "${TRAIN_TASK:=$TASK}" "${EVAL_TASK:=$TASK}"  # e.g. TRAIN_TASK=gsm8k EVAL_TASK=math500
: "${TEMPLATE:=chat}" "${LIMIT:=0}" "${SAMPLES:=4}" "${MAX_LEN:=4096}"
: "${EPOCHS:=2}" "${STEPS:=-1}" "${LR:=1e-4}" "${BATCH:=16}" "${GRAD_ACCUM:=4}"
: "${EVAL_LIMIT:=0}" "${EVAL_SAMPLES:=16}" "${EVAL_MAX_TOKENS:=4096}"
read -r -a distill_extra <<<"${DISTILL_ARGS:-}"
read -r -a eval_extra <<<"${EVAL_ARGS:-}"

# 1. Teacher traces -> filtered, correct-only SFT data -> student SFT (OUT/distill/model).
run_stage "$OUT/distill" distill --teacher "$TEACHER" --student "$STUDENT" --data "$DATA" --task "$TRAIN_TASK" \
  --template "$TEMPLATE" --limit "$LIMIT" --num-samples "$SAMPLES" --max-new-tokens "$MAX_LEN" \
  --keep all-correct --epochs "$EPOCHS" --max-steps "$STEPS" --learning-rate "$LR" \
  --batch-size "$BATCH" --grad-accum "$GRAD_ACCUM" --max-length "$((MAX_LEN + 512))" "${distill_extra[@]}"

# 2. Teacher vs the student before and after distillation.
run_stage "$OUT/eval" evaluate --model "$TEACHER" --model "$STUDENT" --model "$OUT/distill" \
  --data "$EVAL_DATA" --task "$EVAL_TASK" --template "$TEMPLATE" --limit "$EVAL_LIMIT" \
  --num-samples "$EVAL_SAMPLES" --pass-k 1 --max-new-tokens "$EVAL_MAX_TOKENS" "${eval_extra[@]}"
summary "$OUT/eval"
