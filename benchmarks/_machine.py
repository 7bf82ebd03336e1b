"""The machine line every benchmark prints: CPU model, cores and date."""

from __future__ import annotations

import datetime
import os
import platform


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown CPU"


def machine_line() -> str:
    """'CPU: <model>, <n> cores; <date>'."""
    return f"CPU: {cpu_model()}, {os.cpu_count()} cores; {datetime.date.today().isoformat()}"
