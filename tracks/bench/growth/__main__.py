"""``python -m tracks.bench.growth``."""

from tracks.bench.growth.bench import main

main()
