"""``tracks bench``: the runtime against a raw nats-py baseline, measured in the same run."""

from .driver import Measurement, drive
from .suite import BenchConfig, run_bench

__all__ = ["BenchConfig", "Measurement", "drive", "run_bench"]
