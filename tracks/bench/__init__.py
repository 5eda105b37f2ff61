"""``tracks bench``: the runtime against a raw nats-py baseline, measured in the same run."""

from tracks.bench.driver import Measurement, drive
from tracks.bench.suite import BenchConfig, run_bench

__all__ = ["BenchConfig", "Measurement", "drive", "run_bench"]
