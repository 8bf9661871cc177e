"""The reward bench/multi_gpu.py trains GRPO with: `--reward r1kit_bench_reward:score=1`.

score = (sum of the completion's token ids mod 7) / 6: deterministic in the completion, spread over
[0, 1] within every group of a random-init model's (or the fixed rollouts') completions, so
advantages are non-zero. With R1KIT_BENCH_REWARD_LOG=DIR each rank appends what it scored
({step, rank, prompt, reward} per completion, in the order trl passed them) to
DIR/reward-<RANK>.jsonl; the bench checks from those records that every prompt's G completions
sit side by side in the gathered batch and that the logged reward statistics are the gathered ones.
"""

from __future__ import annotations

import hashlib
import json
import os


def score(prompts=None, completions=(), completion_ids=None, trainer_state=None, **kwargs):
    ids = completion_ids if completion_ids is not None else [[len(str(c))] for c in completions]
    rewards = [float(sum(map(int, row)) % 7) / 6.0 for row in ids]
    folder = os.environ.get("R1KIT_BENCH_REWARD_LOG")
    if folder:
        rank = os.environ.get("RANK", "0")
        step = int(getattr(trainer_state, "global_step", -1))
        with open(os.path.join(folder, f"reward-{rank}.jsonl"), "a") as fh:
            for prompt, reward in zip(prompts or [""] * len(rewards), rewards):
                text = json.dumps(prompt, sort_keys=True)
                fh.write(
                    json.dumps(
                        {
                            "step": step,
                            "rank": int(rank),
                            "reward": reward,
                            "prompt": hashlib.sha1(text.encode()).hexdigest()[:12],
                        }
                    )
                    + "\n"
                )
    return rewards
