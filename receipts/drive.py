"""The "drive" receipts are filed in: a local directory by default, behind a small interface
(a Google Drive adapter implements the same three methods)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol

__all__ = ["Drive", "LocalDrive", "file_name"]


class Drive(Protocol):
    def put(self, source: Path, name: str) -> str:
        """Store a copy of ``source`` under ``name`` (``YYYY/MM/file``), never overwriting:
        a taken name gets ``_2``, ``_3``, ...; return where it went."""
        ...

    def move_aside(self, stored: str, folder: str) -> str:
        """Move a stored file into ``folder`` (e.g. ``_duplicates``), never deleting; return its new place."""
        ...

    def exists(self, stored: str) -> bool: ...


_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def file_name(issued_on: dt.date, vendor: str, amount: Decimal, currency: str, ext: str) -> str:
    """``YYYY/MM/YYYY-MM-DD_<vendor>_<amount><currency>.<ext>`` in safe characters only."""
    safe_vendor = _UNSAFE.sub("-", vendor).strip("-.")[:40] or "unknown"
    number = f"{amount:f}".rstrip("0").rstrip(".") if "." in f"{amount:f}" else f"{amount:f}"
    safe_ext = _UNSAFE.sub("", ext.lower())[:8] or "bin"
    return (
        f"{issued_on:%Y/%m}/{issued_on:%Y-%m-%d}_{safe_vendor}_{number}{_UNSAFE.sub('', currency)}.{safe_ext}"
    )


@dataclass(frozen=True)
class LocalDrive:
    root: Path

    def put(self, source: Path, name: str) -> str:
        target = self._free(self.root / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(source, tmp)
        tmp.rename(target)  # whole or absent, never a half-copied receipt
        return str(target)

    def move_aside(self, stored: str, folder: str) -> str:
        path = Path(stored)
        target = self._free(self.root / folder / path.relative_to(self.root))
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
        return str(target)

    def exists(self, stored: str) -> bool:
        return Path(stored).is_file()

    @staticmethod
    def _free(target: Path) -> Path:
        n, candidate = 1, target
        while candidate.exists():
            n += 1
            candidate = target.with_name(f"{target.stem}_{n}{target.suffix}")
        return candidate
