#!/usr/bin/env bash
# Kimi k1.5 long2short: four ways to make a long-chain-of-thought model answer in fewer tokens.
#
# Reproduces Kimi k1.5 §2.4 (PAPERS.md "Kimi k1.5", long2short), each method applied to the
# long-CoT model LONG_MODEL:
#   1. model merging: average the weights of the long and a short-CoT model of the same base;
#   2. shortest rejection sampling: 8 samples per problem, the shortest correct one becomes SFT
#      data, then SFT of the long model on it;
#   3. DPO: shortest correct answer = chosen; wrong answers and correct ones longer than 1.5x the
#      chosen = rejected;
#   4. long2short RL: GRPO with the Kimi length reward added to accuracy, warmed up, and a much
#      smaller rollout budget (`--preset kimi-long2short`);
# then all six models are evaluated on the same prompts; the table reports pass@1 and mean tokens
# per model, the two numbers long2short trades against each other (Kimi: k1.5-short w/ rl keeps
# AIME 60.8 at ~3272 tokens).
# Differs from the paper: the methods are run side by side from the same long model (Kimi reports
# them separately); the SFT learning rate, DPO β and the RL budget are r1kit's choices (the paper
# gives none); merging needs two checkpoints with the same architecture and tokenizer.
#
# Hardware: the defaults (1.5B models, 8 samples of <= 2048 tokens per problem, 1024-token RL
# rollouts) want one 80 GB GPU (RS_ARGS="--backend vllm" and GRPO_ARGS="--use-vllm on" for faster
# sampling); DPO holds two copies of the model. (Not timed here: this machine has no GPU.)
#
# Commands:
#   bash recipes/r1.sh && bash recipes/kimi-long2short.sh      # long model = r1.sh's reasoning RL
#   LONG_MODEL=my/long-cot SHORT_MODEL=my/short-cot OUT=runs/l2s bash recipes/kimi-long2short.sh
#   SMOKE=1 bash recipes/kimi-long2short.sh        # CI form: tiny model, built-in task
#
# Variables (defaults in brackets; SMOKE=1 changes the ones marked *):
#   LONG_MODEL* [runs/r1/reasoning-rl, from recipes/r1.sh]  SHORT_MODEL* [Qwen/Qwen2.5-1.5B-Instruct]
#   MERGE_WEIGHT [0.5: weight of the long model]  DATA* [../shared/data/gsm8k_train.jsonl]
#   EVAL_DATA* [gsm8k_test.jsonl]  TASK* [gsm8k]  TEMPLATE* [chat-think]  OUT* [runs/kimi-long2short]
#   TRAIN_TASK [$TASK]: task adapter of DATA;  EVAL_TASK [$TASK]: of EVAL_DATA
#   SAMPLES [8]  LIMIT* [0 = all prompts]  MAX_LEN* [2048: sampling budget of the long model]
#   SFT_STEPS* [-1 = 1 epoch]  SFT_LR [1e-5]  DPO_STEPS* [-1 = 1 epoch]  DPO_LR [1e-6]  DPO_BETA [0.1]
#   BATCH* [8]  STEPS* [200]  PROMPTS_PER_STEP* [32]  NUM_GEN* [8]  MICRO_BATCH* [16]  L2S_MAX_LEN* [1024]
#   L2S_WARMUP* [20]  EVAL_LIMIT* [0]  EVAL_SAMPLES* [16]  EVAL_MAX_TOKENS* [4096]
#   RS_ARGS, SFT_ARGS, DPO_ARGS, GRPO_ARGS, EVAL_ARGS: extra flags;  R1KIT, R1KIT_TRAIN: common.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ "${SMOKE:-0}" == 1 ]]; then
  : "${OUT:=runs/smoke-kimi-long2short}" "${SMOKE_DIR:=$(dirname "$OUT")/smoke-base}"
  smoke_base
  # The "long" model must answer some prompts right (rejection sampling and DPO keep correct
  # answers): the shared smoke base, trained on traces with up to 3 self-checks. The "short" one
  # is that model after a few SFT steps on traces without self-checks (same base, as merging needs).
  : "${LONG_MODEL:=$SMOKE_DIR/teacher}" "${DATA:=$SMOKE_DIR/data}"
  if [[ -z "${SHORT_MODEL:-}" ]]; then
    run_stage "$OUT/smoke-short-data" "data arithmetic" --train-size 80 --test-size 20 --digits 1 \
      --max-checks 0
    run_stage "$OUT/smoke-short-cot" sft --model "$LONG_MODEL" --data "$OUT/smoke-short-data" --max-steps 8 \
      --learning-rate 3e-3 --batch-size 32
    SHORT_MODEL=$OUT/smoke-short-cot
  fi
  : "${EVAL_DATA:=$SMOKE_DIR/data}" "${TASK:=arithmetic}" "${TEMPLATE:=chat}"
  : "${LIMIT:=16}" "${MAX_LEN:=96}" "${SFT_STEPS:=2}" "${DPO_STEPS:=2}" "${BATCH:=4}"
  : "${STEPS:=2}" "${PROMPTS_PER_STEP:=2}" "${NUM_GEN:=2}" "${MICRO_BATCH:=0}"
  : "${L2S_MAX_LEN:=32}" "${L2S_WARMUP:=0}"
  : "${EVAL_LIMIT:=4}" "${EVAL_SAMPLES:=2}" "${EVAL_MAX_TOKENS:=64}"
fi
: "${LONG_MODEL:=runs/r1/reasoning-rl}" "${SHORT_MODEL:=Qwen/Qwen2.5-1.5B-Instruct}" "${MERGE_WEIGHT:=0.5}"
: "${DATA:=$SHARED_DATA/gsm8k_train.jsonl}" "${EVAL_DATA:=$SHARED_DATA/gsm8k_test.jsonl}" "${TASK:=gsm8k}"
: "${TRAIN_TASK:=$TASK}" "${EVAL_TASK:=$TASK}"  # e.g. TRAIN_TASK=gsm8k EVAL_TASK=math500
: "${TEMPLATE:=chat-think}" "${OUT:=runs/kimi-long2short}" "${SAMPLES:=8}" "${LIMIT:=0}" "${MAX_LEN:=2048}"
: "${SFT_STEPS:=-1}" "${SFT_LR:=1e-5}" "${DPO_STEPS:=-1}" "${DPO_LR:=1e-6}" "${DPO_BETA:=0.1}" "${BATCH:=8}"
: "${STEPS:=200}" "${PROMPTS_PER_STEP:=32}" "${NUM_GEN:=8}" "${MICRO_BATCH:=16}"
: "${L2S_MAX_LEN:=1024}" "${L2S_WARMUP:=20}"
: "${EVAL_LIMIT:=0}" "${EVAL_SAMPLES:=16}" "${EVAL_MAX_TOKENS:=4096}"
read -r -a rs_extra <<<"${RS_ARGS:-}"
read -r -a sft_extra <<<"${SFT_ARGS:-}"
read -r -a dpo_extra <<<"${DPO_ARGS:-}"
read -r -a grpo_extra <<<"${GRPO_ARGS:-}"
read -r -a eval_extra <<<"${EVAL_ARGS:-}"
sample=(--data "$DATA" --task "$TRAIN_TASK" --template "$TEMPLATE" --limit "$LIMIT" --num-samples "$SAMPLES"
  --max-new-tokens "$MAX_LEN")

# 1. Merge the long and the short model.
run_stage "$OUT/merge" merge --model "$LONG_MODEL" --model "$SHORT_MODEL" \
  --weight "$MERGE_WEIGHT" --weight "$(awk "BEGIN {print 1 - $MERGE_WEIGHT}")"

# 2. Shortest rejection sampling, then SFT of the long model on the shortest correct answers.
run_stage "$OUT/shortest-rs" rejection-sample --model "$LONG_MODEL" "${sample[@]}" --keep shortest-correct \
  "${rs_extra[@]}"
run_stage "$OUT/shortest-sft" sft --model "$LONG_MODEL" --data "$OUT/shortest-rs" --epochs 1 \
  --max-steps "$SFT_STEPS" --learning-rate "$SFT_LR" --batch-size "$BATCH" --max-length "$((MAX_LEN + 512))" \
  "${sft_extra[@]}"

# 3. DPO: shortest correct vs wrong and over-long answers, sampled from the long model.
run_stage "$OUT/dpo" dpo-shorten --model "$LONG_MODEL" "${sample[@]}" --length-ratio 1.5 --beta "$DPO_BETA" \
  --epochs 1 --max-steps "$DPO_STEPS" --learning-rate "$DPO_LR" --batch-size "$BATCH" \
  --max-length "$((MAX_LEN + 512))" "${dpo_extra[@]}"

# 4. Long2short RL: accuracy + Kimi length reward, short rollouts.
run_stage "$OUT/long2short-rl" grpo --preset kimi-long2short --model "$LONG_MODEL" --data "$DATA" \
  --task "$TRAIN_TASK" --template "$TEMPLATE" --limit "$LIMIT" --max-steps "$STEPS" \
  --prompts-per-step "$PROMPTS_PER_STEP" --num-generations "$NUM_GEN" --batch-size "$MICRO_BATCH" \
  --max-completion-length "$L2S_MAX_LEN" --length-warmup-steps "$L2S_WARMUP" "${grpo_extra[@]}"

# All six on the same prompts: accuracy against tokens.
models=("$LONG_MODEL" "$SHORT_MODEL" "$OUT/merge" "$OUT/shortest-sft" "$OUT/dpo" "$OUT/long2short-rl")
model_flags=()
for m in "${models[@]}"; do model_flags+=(--model "$m"); done
run_stage "$OUT/eval" evaluate "${model_flags[@]}" --data "$EVAL_DATA" --task "$EVAL_TASK" --template "$TEMPLATE" \
  --limit "$EVAL_LIMIT" --num-samples "$EVAL_SAMPLES" --pass-k 1 --max-new-tokens "$EVAL_MAX_TOKENS" \
  "${eval_extra[@]}"
summary "$OUT/eval"
