"""Input checks that all ranks of a process group agree on.

A check that depends on a rank's own data (its rows, labels, weights, options) fails on that rank
alone; if that rank raised at once, its peers would wait in their next collective until the
group's timeout. ``agree`` runs the check on every rank and then all-reduces one failure flag per
rank, so every rank raises together: the failing rank its own error, the others a ValueError
naming the failing ranks. It takes any communicator with ``rank``, ``world_size`` and
``allreduce_sum`` (float64 arrays), and imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def agree(comm, check: Callable[..., T], *args, **kwargs) -> T:
    """``check(*args, **kwargs)`` on this rank, then one all-reduce of ``world_size`` numbers: if
    the check raised ValueError or TypeError on any rank, every rank raises (this rank's own error
    where it failed, else ValueError naming the ranks that failed); otherwise the check's result."""
    error, out = None, None
    try:
        out = check(*args, **kwargs)
    except (ValueError, TypeError) as err:
        error = err
    flags = np.zeros(comm.world_size)
    flags[comm.rank] = float(error is not None)
    failed = np.flatnonzero(comm.allreduce_sum(flags))
    if error is not None:
        raise error
    if len(failed):
        which = ", ".join(str(int(r)) for r in failed)
        raise ValueError(f"rank{'s' if len(failed) > 1 else ''} {which} of the process group rejected "
                         f"{'their' if len(failed) > 1 else 'its'} input (see that rank's error); "
                         f"every rank stops here")
    return out
