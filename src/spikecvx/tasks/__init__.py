"""Tasks: data generators and loaders, metrics, chance levels and the task registry ``TASKS``.

Each task module registers its ``TaskSpec``; importing the modules here fills ``TASKS`` in the
order the reports list the tasks. A new task is a new module plus its import line below.
"""

from .registry import TASKS, Splits, TaskSpec, register

# isort: off
# the task modules, in report order (each registers its TaskSpec when imported)
from .xor import first_last_xor
from .addition import AdditionData, addition, addition_metrics, oracle_step, rollout
from .mnist import chunk_images, load_mnist, mnist_shift_augment, sequential_mnist
from .dfa import DFA, dfa_dataset, random_dfa
from . import event_tasks  # noqa: F401  (registers shd and nmnist)
from .events import batch_events_to_frames, events_to_frames, load_nmnist, load_shd, read_nmnist_bin
# isort: on

__all__ = [
    "TASKS", "TaskSpec", "Splits", "register",
    "AdditionData", "addition", "addition_metrics", "oracle_step", "rollout", "DFA", "dfa_dataset",
    "random_dfa", "chunk_images", "load_mnist", "mnist_shift_augment", "sequential_mnist", "first_last_xor",
    "events_to_frames", "batch_events_to_frames", "load_shd", "load_nmnist", "read_nmnist_bin",
]
