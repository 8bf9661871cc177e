#!/usr/bin/env bash
# Gemma 3 270M RL on the GPU machine: examples/gemma3_gsm8k.sh and examples/gemma3_arithmetic.sh in
# four concurrent processes ("lanes"), within one device call's budget; run it twice, back to back
# (the second call continues where the first stopped). bench/README.md has the exact device calls.
#
#   bash bench/gemma3_device.sh --part 1 [--budget 480] [--gpus 1|2]   # first call
#   bash bench/gemma3_device.sh --part 2 [--budget 480] [--gpus 1|2]   # second call, machine still warm
#
# Each call:
#   1. installs the carried wheels into $SITE (/tmp/site) unless trl, datasets, math-verify and
#      transformers >= 5.24 import from there already (.whl/base/*.whl, .whl/tf/*.whl; the image's
#      transformers 5.17 mis-loads the Gemma 3 GGUF);
#   2. once per machine: converts $GGUF (default /tmp/g3/gemma-3-270m-q4_k_m.gguf, assembled there
#      beforehand) into the float32 checkpoint $ROOT/base after r1kit's sanity check passes
#      (examples/gemma3_data.py convert), then bench/real_model_check.py on it on CUDA in bf16
#      ($ROOT/base_check.json); every stage loads that folder, never the GGUF;
#   3. starts four lanes with DEADLINE = start + budget - 40 s (each step starts only when its estimate
#      fits, a step still running at the deadline is stopped, finished steps are skipped next time;
#      the folders live under the git-ignored runs/, kept between calls while the machine is warm):
#        gsm8k_rl     gemma3_gsm8k.sh PARTS=rl              think data -> SFT -> GRPO -> evaluations
#        gsm8k_evals  gemma3_gsm8k.sh PARTS=base,sfteval    base evaluations, then the SFT's (waits for it)
#        arith_a      gemma3_arithmetic.sh PARTS=a          R1-Zero from the base model
#        arith_b      gemma3_arithmetic.sh PARTS=b          cold-start SFT, then GRPO
#      --gpus 1 (default with one GPU visible): all on cuda:0 (a 270M model leaves an H200 mostly idle
#      in any one lane); --gpus 2: the GSM8K lanes on GPU 0, the arithmetic lanes on GPU 1;
#   4. writes at most 8 files under $OUT: gemma3_summary.json and gemma3_summary.md (bench/
#      gemma3_summary.py: accuracy, format rate, SE, mean tokens, step times, commands), the curves
#      arith_a_curves.png, arith_b_curves.png, gsm8k_curves.png, and this call's lane logs (last 150 kB
#      per example: gsm8k_partN.log, arith_partN.log); and prints the table last.
# Exit status: 0 when every lane ended normally (finished, or stopped for time), else 1.
#
# Environment: CUDA_VISIBLE_DEVICES (the GPUs the lanes may use, e.g. 1 to leave GPU 0 to another job), ROOT [runs/gemma3], GGUF, DATA [.data: gsm8k_train.jsonl, gsm8k_test.jsonl], SITE
# [/tmp/site], PY [python3], MODEL (tiny or a checkpoint folder: no conversion; CPU checks with
# SMOKE=1), and any variable of the two examples (e.g. GRPO_MINUTES, A_MINUTES, RS, SMOKE).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

PART="" BUDGET=480 GPUS=""
while (($#)); do
  case $1 in
    --part) PART=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --gpus) GPUS=$2; shift 2 ;;
    *) echo "usage: bash bench/gemma3_device.sh --part 1|2 [--budget SECONDS] [--gpus 1|2]" >&2; exit 2 ;;
  esac
done
[[ -z "$GPUS" || "$GPUS" == 1 || "$GPUS" == 2 ]] || { echo "gemma3_device.sh: --gpus 1 or --gpus 2" >&2; exit 2; }
[[ "$PART" == 1 || "$PART" == 2 ]] || { echo "gemma3_device.sh: --part 1 or --part 2" >&2; exit 2; }
START=$(date +%s)
END=$((START + BUDGET))
ROOT=${ROOT:-runs/gemma3} GGUF=${GGUF:-/tmp/g3/gemma-3-270m-q4_k_m.gguf} DATA=${DATA:-.data} SITE=${SITE:-/tmp/site}
RESULTS=${OUT:-$ROOT/out}
mkdir -p "$ROOT/logs" "$RESULTS"
log() { printf '[%s +%ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - START))" "$*"; }

# 1. packages
PY=${PY:-python3}
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHON=$PY R1KIT="$PY -m r1kit"
ready() {
  "$PY" -c "import trl, datasets, math_verify, transformers; from packaging.version import Version as V; \
assert V(transformers.__version__) >= V('5.24'), transformers.__version__" 2>/dev/null
}
if ! ready; then
  shopt -s nullglob
  wheels=(.whl/base/*.whl .whl/tf/*.whl)
  log "installing ${#wheels[@]} wheels into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" \
    || { log "wheel install failed (carry .whl with base/ and tf/)"; exit 1; }
  ready || { log "trl / datasets / math-verify / transformers>=5.24 still do not import from $SITE"; exit 1; }
fi
log "python: $("$PY" -c 'import torch, transformers, trl; print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, GPUs {torch.cuda.device_count()}")')"

export EVAL_DTYPE=${EVAL_DTYPE:-$("$PY" -c "import torch; print('bfloat16' if torch.cuda.is_available() else 'auto')")}

# 2. the base model, once per machine (MODEL=tiny or a checkpoint folder skips it: CPU checks of this script)
BASE=${MODEL:-$ROOT/base}
if [[ -n "${MODEL:-}" ]]; then
  log "base model: $MODEL (given; no conversion, no check)"
elif [[ ! -f "$ROOT/base/config.json" ]]; then
  if [[ ! -f "$GGUF" ]]; then
    log "no base checkpoint and no GGUF at $GGUF: the machine was given back since the chunks were carried;" \
      "carry them again (bench/README.md, Gemma 3 section)"
    exit 1
  fi
  log "converting $GGUF -> $ROOT/base"
  "$PY" examples/gemma3_data.py convert --model "$GGUF" --out "$ROOT/base" || { log "conversion refused"; exit 1; }
fi
# lanes index the GPUs this call may use: CUDA_VISIBLE_DEVICES's entries when it is set (e.g. 1, to leave
# GPU 0 to another benchmark), else 0 and 1
IFS=, read -r -a GPU_IDS <<<"${CUDA_VISIBLE_DEVICES:-0,1}"
if [[ -z "${MODEL:-}" && ! -f "$ROOT/base_check.json" ]]; then
  CUDA_VISIBLE_DEVICES=${GPU_IDS[0]} "$PY" bench/real_model_check.py --model "$ROOT/base" --device cuda --dtype bfloat16 \
    --out "$ROOT/base_check.json" || { log "real_model_check failed on CUDA: stopping"; exit 1; }
fi

# 3. the lanes
visible=$("$PY" -c "import torch; print(torch.cuda.device_count())")
GPUS=${GPUS:-$((visible >= 2 ? 2 : 1))}
((visible >= GPUS || visible == 0)) || { log "--gpus $GPUS but $visible GPU(s) visible"; exit 1; }
second=$((GPUS - 1))
export DEADLINE=$((END - 40))
log "part $PART: gsm8k lanes on GPU ${GPU_IDS[0]}, arithmetic lanes on GPU ${GPU_IDS[$second]:-$second}; deadline in $((DEADLINE - $(date +%s))) s"
# four processes (lanes): the GSM8K base and SFT evaluations beside the SFT -> GRPO chain (they wait
# for its SFT checkpoint), and the arithmetic (a) and (b) runs; each a plain run of its example script
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True} OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
lanes=("gsm8k_rl 0 gsm8k PARTS=rl" "gsm8k_evals 0 gsm8k PARTS=base,sfteval"
  "arith_a $second arithmetic PARTS=a" "arith_b $second arithmetic PARTS=b")
pids=() names=()
for lane in "${lanes[@]}"; do
  read -r name gpu example setting <<<"$lane"
  out=$ROOT/${example/arithmetic/arith}
  env CUDA_VISIBLE_DEVICES="${GPU_IDS[$gpu]:-$gpu}" OUT="$out" MODEL="$BASE" DATA="$DATA" "$setting" \
    bash "examples/gemma3_$example.sh" >"$ROOT/logs/${name}_part$PART.log" 2>&1 &
  pids+=($!) names+=("$name")
done
rcs=()
for i in "${!pids[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  rcs+=("$rc")
  log "${names[$i]}: exit $rc"
done
for name in "${names[@]}"; do
  echo "--- $name (last lines)"
  grep -av '^\s*$' "$ROOT/logs/${name}_part$PART.log" | tail -n 4
done
for d in "$ROOT/gsm8k" "$ROOT/arith"; do
  [[ -f "$d/stopped.txt" ]] && { echo "--- $d/stopped.txt"; tail -n 4 "$d/stopped.txt"; }
done

# 4. results: at most 8 files under $RESULTS (= $OUT on the device)
for example in gsm8k arith; do  # the lanes' logs of this call, one file per example (the last 150 kB)
  for name in "${names[@]}"; do
    [[ "$name" == "$example"* ]] && { echo "===== $name"; cat "$ROOT/logs/${name}_part$PART.log"; }
  done | tail -c 150000 >"$RESULTS/${example}_part$PART.log"
done
log "summary"
"$PY" bench/gemma3_summary.py --arith "$ROOT/arith" --gsm8k "$ROOT/gsm8k" --out "$RESULTS" \
  --extra "$ROOT/base_check.json"
for rc in "${rcs[@]}"; do ((rc == 0)) || exit 1; done
