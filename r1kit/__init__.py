"""r1kit: the DeepSeek-R1 and Kimi k1.5 reasoning-RL recipes as composable CLI stages."""

__version__ = "0.1.0"
