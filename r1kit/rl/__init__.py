"""What trl lacks for the R1 / Kimi k1.5 recipes, used by `r1kit grpo`.

- losses.py    GRPO / DAPO / Dr. GRPO losses, k3 KL, group advantages (the reference trl's own
               computation is tested against) and the Kimi k1.5 mirror-descent loss (trained
               as is); pure torch, unit-tested against hand-computed numbers
- samplers.py  Kimi curriculum and prioritized prompt samplers (trl RepeatSampler contract)
- dynamic.py   DAPO dynamic sampling (zero-variance groups: mask or refill)
- partial.py   Kimi k1.5 partial rollouts (replay buffer of unfinished trajectories, loss on the newest
               segment) and repeat detection
- trl_args.py  r1kit grpo's options -> trl's GRPOConfig (loss_type, epsilon_high, scale_rewards, ...)
- inputs.py    the prompts, rewards and golds of a run, checked before a model loads
- trainer.py   R1GRPOTrainer: trl's GRPOTrainer with the above plugged in; TRL_CONTRACT lists
               the trl internals it relies on
- callbacks.py metrics.jsonl records, rich live view, KL blow-up / reward-hacking warnings
- presets.py   --preset r1-zero | r1 | dapo | dr-grpo | kimi-long2short | kimi

Importing this package imports nothing heavy; import the submodules you need.
"""
