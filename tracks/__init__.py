"""The app shell: the ``tracks`` command, the embedded servers, the console, the bench."""

__version__ = "0.1.0"
"""The distribution's version (pyproject.toml reads it from here)."""
