"""Names a package exports on first use (PEP 562), one mechanism for ``subjects``, ``actors``
and ``scheduler``: a read-only CLI command imports only what it touches.

It lives here, in the bottom layer, because ``subjects`` may import no other package of the
project and the others may all import ``subjects``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, Sequence[str]], submodules: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__``: ``where`` maps a module to the names it
    gives the package; ``submodules`` are the package's own modules exposed as attributes. A
    name is imported once, then kept in the package's namespace."""
    module_of = {name: module for module, names in where.items() for name in names}
    namespace = vars(importlib.import_module(package))

    def getattr_(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *module_of, *submodules})

    return getattr_, dir_
