"""What the benchmarks write about the machine they ran on."""
import os
import platform


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def cpu_summary() -> str:
    """``N CPU cores (model)``."""
    return f"{os.cpu_count()} CPU cores ({cpu_name()})"
