"""Tasks: data generators and loaders, metrics and chance levels."""

from .addition import AdditionData, addition, addition_metrics, oracle_step, rollout
from .dfa import DFA, dfa_dataset, random_dfa
from .mnist import chunk_images, load_mnist, mnist_shift_augment, sequential_mnist
from .xor import first_last_xor

__all__ = [
    "AdditionData", "addition", "addition_metrics", "oracle_step", "rollout", "DFA", "dfa_dataset",
    "random_dfa", "chunk_images", "load_mnist", "mnist_shift_augment", "sequential_mnist", "first_last_xor",
]
