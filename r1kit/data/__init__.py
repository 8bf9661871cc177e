"""Datasets: loading from any source, task adapters, prompt templates, the built-in synthetic task.

Importing this package stays light: `datasets` is imported only inside the functions.
"""

from r1kit.data.arithmetic import make_arithmetic, verify_trace, write_arithmetic
from r1kit.data.loading import load_dataset_any, pick_split, rename_columns, require_columns, require_text
from r1kit.data.tasks import (
    TASK_TYPES,
    TASKS,
    TaskAdapter,
    detect_task,
    get_task,
    gsm8k_gold,
    prepare_dataset,
)
from r1kit.data.templates import (
    R1_ZERO_TEMPLATE,
    TEMPLATE_PREFILL,
    TEMPLATES,
    get_template,
    is_chat_template,
    render_prompt,
    template_prefill,
)

__all__ = [
    "R1_ZERO_TEMPLATE",
    "TASKS",
    "TASK_TYPES",
    "TEMPLATES",
    "TEMPLATE_PREFILL",
    "TaskAdapter",
    "detect_task",
    "get_task",
    "get_template",
    "gsm8k_gold",
    "is_chat_template",
    "load_dataset_any",
    "make_arithmetic",
    "pick_split",
    "prepare_dataset",
    "rename_columns",
    "render_prompt",
    "require_columns",
    "require_text",
    "template_prefill",
    "verify_trace",
    "write_arithmetic",
]
