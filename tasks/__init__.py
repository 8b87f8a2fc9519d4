"""Tasks by name: each builds its head and owns its loss and metrics."""

from ._base import Evaluator, Task, create_task, list_tasks, register_task
from .metrics import accuracy, macro_f1, nasa_score, rmse

__all__ = ["Evaluator", "Task", "accuracy", "create_task", "list_tasks", "macro_f1", "nasa_score", "register_task", "rmse"]
