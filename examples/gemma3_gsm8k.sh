#!/usr/bin/env bash
# The R1 pipeline on GSM8K with a real base model, Gemma 3 270M (Q4_K_M GGUF from PyPI, dequantized):
#
#   0. base: few-shot baseline on the full test set (1,319): "Question: ...\nAnswer: ... The answer
#      is N." x SHOTS solved train problems, stopped at the next "Question:", answer = last number;
#   1. cold start (R1 §2.3.1): SFT of the base model on the 7,473 GSM8K train solutions rewritten as
#      <think>steps</think> <answer> N </answer> under the r1-zero prompt (`r1kit data think`);
#   2. reasoning RL (R1 §2.3.2): GRPO from the SFT checkpoint, r1-zero template, accuracy + format
#      rewards, on the train questions;
#   3. rejection sampling (R1 §2.3.3) from the GRPO model on train questions, keeping the correct
#      samples, then a second SFT of the base model on them (RS=auto: only when the time left allows;
#      RS=1 always, RS=0 never);
#   every checkpoint evaluated on the full test set, greedy and pass@1 over EVAL_SAMPLES (4) samples
#   at T 0.6 / top-p 0.95 (R1's settings), with standard errors over problems and mean tokens; the
#   summary (bench/gemma3_summary.py) says whether GRPO's pass@1 is above SFT's by more than two
#   standard errors of the difference.
#
# Why this shape: the base model solves ~1% of GSM8K few-shot and never writes the R1-Zero tags, so
# R1-Zero straight from it has no reward signal (examples/gemma3_gsm8k.md: a CPU GRPO run whose every
# reward was 0 left the weights bit for bit unchanged). The cold start gives RL a model that writes
# the format and solves some problems, as R1 prescribes.
#
# Sizes: SFT 1 epoch at lr 5e-5 (R1's cold-start rate; one epoch for time); GRPO 16 prompts x G 16
# (a model that solves ~5% of GSM8K gets a correct sample in ~55% of groups of 16, ~35% with G 8),
# completions <= 320 tokens (the SFT answers are ~100-200), lr 1e-5 (a few dozen steps fit: a small
# model needs a larger rate than R1's 3e-6 to move in that many), beta 0, 3 minutes.
# GPU time (one H200; estimated from ../shared/GPU.md's figures for a 0.5B Qwen shape, which costs
# about twice Gemma 3 270M's FLOPs per token: 76k generated tok/s at 512 rows in r1kit's loop, a
# GRPO step of 64 x 512 tokens in ~3.1 s, of which 2 s generation at 64 rows):
#   evaluations: 1,319 greedy (~100-250 tokens each) + 5,276 samples, batch 512, fast backend:
#     ~20 s + ~45 s, plus ~15 s start-up each: ~1.5 min per checkpoint;
#   SFT: 1 epoch of 7,473 rows x ~260 tokens (~2M tokens, batches of 32 padded to ~400): ~1.5-2.5 min;
#   GRPO: 256 completions of <= 320 tokens a step: ~2 s generation + ~2 s training in 4 micro-batches
#     of 64: ~45 steps in GRPO_MINUTES 3 (fewer when other processes share the GPU);
#   rejection sampling: RS_LIMIT 2,000 prompts x 4 samples (~40 s) + SFT on the kept ones (~1 min).
#   Total ~11-13 min of one GPU without rejection sampling. bench/gemma3_device.sh runs it in two
#   processes (PARTS=rl and PARTS=base,sfteval: the evaluations beside SFT -> GRPO) over two device
#   calls, beside examples/gemma3_arithmetic.sh.
#
# Commands (from the repository root; DATA holds gsm8k_train.jsonl and gsm8k_test.jsonl):
#   bash examples/gemma3_gsm8k.sh                            # MODEL unset: the PyPI GGUF, converted once
#   MODEL=runs/gemma3/base DATA=.data bash examples/gemma3_gsm8k.sh
#   SMOKE=1 bash examples/gemma3_gsm8k.sh                    # CPU check: tiny model, 6 problems, 2 steps
#   SMOKE=1 MODEL=/work/models/gemma3-270m-dense bash examples/gemma3_gsm8k.sh   # real model on CPU
# DEADLINE=<epoch seconds>: stop cleanly before a step that would not fit (exit 0; rerun continues);
# every step is skipped once its output folder is finished. PARTS (default base,sfteval,rl) picks
# what runs: base (base evaluations), rl (think data, SFT, GRPO and its evaluations, RS),
# sfteval (waits for the SFT checkpoint, then evaluates it).
# Variables (SMOKE=1 changes the sizes): OUT [runs/gemma3_gsm8k], DATA [../shared/data], MODEL,
# BASE [$OUT/base], LIMIT [0 = all 1,319], SHOTS [4], BASE_MAX_NEW [256], MAX_NEW [320],
# EVAL_SAMPLES [4], EVAL_BATCH [512], SFT_EPOCHS [1], SFT_LR [5e-5], SFT_BATCH [32], SFT_MAX_LEN [512],
# GRPO_PROMPTS [16], GRPO_G [16], GRPO_LEN [320], GRPO_LR [1e-5], GRPO_MINUTES [3], GRPO_FORMAT [0.5],
# GRPO_BATCH [64], RS [auto: when RS_MIN_S (330) seconds are left], RS_LIMIT [2000], RS_SAMPLES [4],
# RS_KEEP [all-correct (R1); SMOKE: all, since the tiny model is never right],
# EVAL_DTYPE [bfloat16 on a GPU], R1KIT, PYTHON.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gemma3_common.sh"

OUT=${OUT:-runs/gemma3_gsm8k}
DATA=${DATA:-$GEMMA_REPO/../shared/data}
if [[ "${SMOKE:-0}" == 1 ]]; then
  MODEL=${MODEL:-tiny}
  : "${LIMIT:=6}" "${SHOTS:=1}" "${BASE_MAX_NEW:=24}" "${MAX_NEW:=32}" "${EVAL_SAMPLES:=2}" "${EVAL_BATCH:=16}"
  : "${THINK_LIMIT:=24}" "${SFT_EPOCHS:=1}" "${SFT_STEPS:=2}" "${SFT_BATCH:=4}" "${SFT_MAX_LEN:=1024}"
  : "${GRPO_PROMPTS:=2}" "${GRPO_G:=2}" "${GRPO_LEN:=32}" "${GRPO_STEPS:=2}" "${GRPO_LIMIT:=16}" "${GRPO_BATCH:=0}"
  : "${RS:=1}" "${RS_LIMIT:=4}" "${RS_SAMPLES:=2}" "${SFT_LOG:=1}" "${RS_KEEP:=all}"  # the tiny model is never right
fi
LIMIT=${LIMIT:-0} SHOTS=${SHOTS:-4} BASE_MAX_NEW=${BASE_MAX_NEW:-256} MAX_NEW=${MAX_NEW:-320}
EVAL_SAMPLES=${EVAL_SAMPLES:-4} EVAL_BATCH=${EVAL_BATCH:-512}
THINK_LIMIT=${THINK_LIMIT:-0} SFT_EPOCHS=${SFT_EPOCHS:-1} SFT_STEPS=${SFT_STEPS:--1} SFT_LR=${SFT_LR:-5e-5}
SFT_BATCH=${SFT_BATCH:-32} SFT_MAX_LEN=${SFT_MAX_LEN:-512}
GRPO_PROMPTS=${GRPO_PROMPTS:-16} GRPO_G=${GRPO_G:-16} GRPO_LEN=${GRPO_LEN:-320} GRPO_LR=${GRPO_LR:-1e-5}
GRPO_MINUTES=${GRPO_MINUTES:-3} GRPO_STEPS=${GRPO_STEPS:-1000} GRPO_LIMIT=${GRPO_LIMIT:-0} GRPO_BATCH=${GRPO_BATCH:-64}
GRPO_FORMAT=${GRPO_FORMAT:-0.5} GRPO_TEMP=${GRPO_TEMP:-1.0}
PARTS=${PARTS:-base,sfteval,rl} SFT_LOG=${SFT_LOG:-10}
RS=${RS:-auto} RS_KEEP=${RS_KEEP:-all-correct} RS_LIMIT=${RS_LIMIT:-2000} RS_SAMPLES=${RS_SAMPLES:-4} RS_MIN_S=${RS_MIN_S:-330}
TRAIN=$DATA/gsm8k_train.jsonl TEST=$DATA/gsm8k_test.jsonl
for f in "$TRAIN" "$TEST"; do
  [[ -f "$f" ]] || { echo "gemma3_gsm8k.sh: $f not found; set DATA to the folder holding gsm8k_train.jsonl and gsm8k_test.jsonl" >&2; exit 2; }
done
mkdir -p "$OUT"

BASE_MODEL=$(base_model)
say "base model: $BASE_MODEL; deadline in $(left_s) s; eval dtype $EVAL_DTYPE"
gen=(--backend auto --dtype "$EVAL_DTYPE" --sample-batch-size "$EVAL_BATCH")
sampled=(--num-samples "$EVAL_SAMPLES" --temperature 0.6 --top-p 0.95 --pass-k 1)
[[ "$EVAL_SAMPLES" -gt 1 ]] && sampled+=(--pass-k "$EVAL_SAMPLES")

# evaluate_pair NAME MODEL: greedy and sampled evaluations of one checkpoint on the test set (r1-zero
# template; the judge reads the <answer>, and its format flag gives the format rate)
evaluate_pair() {
  local name=$1 model=$2
  step 90 "$OUT/eval_${name}_greedy" evaluate --model "$model" --data "$TEST" --task gsm8k --limit "$LIMIT" \
    --template r1-zero --greedy --max-new-tokens "$MAX_NEW" "${gen[@]}"
  step 120 "$OUT/eval_${name}_sampled" evaluate --model "$model" --data "$TEST" --task gsm8k --limit "$LIMIT" \
    --template r1-zero "${sampled[@]}" --max-new-tokens "$MAX_NEW" "${gen[@]}"
}

# 0. the base model, few-shot (it cannot follow the r1-zero template)
if [[ "$PARTS" == *base* ]]; then
  fewshot=(--data "$TEST" --task gsm8k --limit "$LIMIT" --few-shot "$SHOTS" --few-shot-data "$TRAIN" --stop "Question:"
    --extract last_number --max-new-tokens "$BASE_MAX_NEW" "${gen[@]}")
  step 120 "$OUT/eval_base_greedy" evaluate --model "$BASE_MODEL" "${fewshot[@]}" --greedy
  step 150 "$OUT/eval_base_sampled" evaluate --model "$BASE_MODEL" "${fewshot[@]}" "${sampled[@]}"
fi

# 1. cold start
if [[ "$PARTS" == *rl* ]]; then
  step 60 "$OUT/think" "data think" --data "$TRAIN" --limit "$THINK_LIMIT"
  step 210 "$OUT/sft" sft --model "$BASE_MODEL" --data "$OUT/think" --epochs "$SFT_EPOCHS" --max-steps "$SFT_STEPS" \
    --batch-size "$SFT_BATCH" --learning-rate "$SFT_LR" --max-length "$SFT_MAX_LEN" --logging-steps "$SFT_LOG"
fi
if [[ "$PARTS" == *sfteval* ]]; then
  wait_for 90 "$OUT/sft"  # written by the rl part (in another process when bench/gemma3_device.sh runs both)
  evaluate_pair sft "$OUT/sft"
fi

# 2. reasoning RL from the cold-start checkpoint
if [[ "$PARTS" == *rl* ]]; then
  step $((GRPO_MINUTES * 60 + 90)) "$OUT/grpo" grpo --model "$OUT/sft" --data "$TRAIN" --task gsm8k \
    --limit "$GRPO_LIMIT" --template r1-zero --reward accuracy=1 --reward "format=$GRPO_FORMAT" \
    --num-generations "$GRPO_G" --prompts-per-step "$GRPO_PROMPTS" --batch-size "$GRPO_BATCH" \
    --max-completion-length "$GRPO_LEN" --temperature "$GRPO_TEMP" --learning-rate "$GRPO_LR" --beta 0 \
    --max-steps "$GRPO_STEPS" --max-minutes "$GRPO_MINUTES" --no-live
  evaluate_pair grpo "$OUT/grpo"
  step 60 "$OUT/curves" plot --run "$OUT/sft" --run "$OUT/grpo"

  # 3. rejection sampling from the GRPO model, then SFT of the base model on the kept samples
  if [[ "$RS" == 1 || ("$RS" == auto && $(left_s) -ge $RS_MIN_S) ]]; then
    step 120 "$OUT/rs" rejection-sample --model "$OUT/grpo" --data "$TRAIN" --task gsm8k --template r1-zero \
      --limit "$RS_LIMIT" --num-samples "$RS_SAMPLES" --temperature 0.6 --top-p 0.95 --max-new-tokens "$MAX_NEW" \
      --keep "$RS_KEEP" --lang en --backend auto --dtype "$EVAL_DTYPE" --sample-batch-size "$EVAL_BATCH"
    kept=$("$PYTHON" -c "import sys; from datasets import load_from_disk; print(len(load_from_disk(sys.argv[1])))" \
      "$OUT/rs/data")
    if ((kept > 0)); then
      # the kept rows' prompt/completion columns (their chat `messages` would need a chat template)
      step 180 "$OUT/rs_sft" sft --model "$BASE_MODEL" --data "$OUT/rs" --messages-field none \
        --epochs "$SFT_EPOCHS" --max-steps "$SFT_STEPS" --batch-size "$SFT_BATCH" --learning-rate "$SFT_LR" \
        --max-length "$SFT_MAX_LEN" --logging-steps "$SFT_LOG"
      evaluate_pair rs_sft "$OUT/rs_sft"
    else
      say "rejection sampling kept no sample: no second SFT"
    fi
  else
    say "rejection sampling skipped (RS=$RS, $(left_s) s left, RS_MIN_S=$RS_MIN_S)"
  fi
fi

"$PYTHON" "$GEMMA_REPO/bench/gemma3_summary.py" --gsm8k "$OUT"
