"""The task registry: one ``TaskSpec`` per benchmark task, registered by its own module.

A task module builds its ``TaskSpec`` and passes it to ``register``; ``spikecvx.tasks`` imports
every task module, so ``TASKS`` (name -> spec, in report order) is complete once the package is
imported. The experiment runner, presets, report and command line iterate over ``TASKS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

LAYOUTS = ("accuracy", "lengths")


@dataclass(frozen=True)
class Splits:
    """The data of one cell: (X, y) pairs for training and validation, the disjoint pair that
    hybrid methods fine-tune and validate on, and the task's test data (any object its
    ``evaluate`` understands)."""

    train: tuple
    val: tuple
    tune: tuple
    tune_val: tuple
    test: Any


@dataclass(frozen=True)
class TaskSpec:
    """Everything the experiments need to know about one task.

    ``cell_keys`` maps every cell key the task reads to its default; a config value for such a
    key must have the default's type (an int, a float, a string or a list of ints). ``heads``
    returns plain ``(name, size, loss)`` tuples (the ``Head`` type belongs to the training layer).
    ``published`` maps grid values (or "*", for every value) to the published numbers.
    ``evaluate(net, splits, cell)`` returns the test metrics, with the paper's metric in [0, 1]
    under ``"headline"``. ``layout`` says how the report lays out the task's table: "accuracy"
    (one headline column) or "lengths" (one column per test length, from ``metrics``).
    """

    name: str
    title: str
    metric: str
    grid_key: str
    check_grid: Callable[[Any], Any]
    cell_keys: Mapping[str, Any]
    splits: Callable[[dict], Splits]
    heads: Callable[[dict], list[tuple[str, int, str]]]
    evaluate: Callable[[torch.nn.Module, Splits, dict], dict]
    chance: Callable[[dict], float]
    readout: str = "membrane"
    readout_at: str = "last"
    augment: Callable[[dict], Callable | None] = lambda cell: None
    published: Mapping[Any, str] = field(default_factory=dict)
    layout: str = "accuracy"
    published_label: str = "published"
    chance_label: str = "chance"

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"task {self.name!r}: layout must be one of {LAYOUTS}, got {self.layout!r}")

    def published_for(self, value) -> str:
        """Published numbers for one grid value (the entry "*" holds those for every value)."""
        return self.published.get(value, self.published.get("*", "-"))

    def option(self, cell: dict, key: str):
        """The cell's value of one of the task's keys, or its default."""
        return cell.get(key, self.cell_keys[key])


TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to ``TASKS`` (a name may be registered once)."""
    if spec.name in TASKS:
        raise ValueError(f"task {spec.name!r} is already registered")
    TASKS[spec.name] = spec
    return spec


def predict_last(net: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    """Scores of the network at the last time step, as a numpy array."""
    with torch.no_grad():
        return net(torch.as_tensor(X)).cpu().numpy()


def check_grid_int(name: str, minimum: int, choices: tuple[int, ...] | None = None) -> Callable[[Any], int]:
    """A grid-value check: an integer >= ``minimum`` (and among ``choices`` when given)."""
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        if value < minimum or (choices is not None and value not in choices):
            want = f"one of {choices}" if choices is not None else f">= {minimum}"
            raise ValueError(f"{name} must be {want}, got {value!r}")
        return int(value)
    return check
