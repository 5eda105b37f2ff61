"""What the product's handlers share: the runtime's connections and the product's settings."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from actors import TracksClient, current_runtime
from receipts.drive import Drive, LocalDrive
from receipts.settings import FreeeSettings, ReceiptsSettings

__all__ = ["Product", "product"]


@dataclass(frozen=True)
class Product:
    pool: asyncpg.Pool
    client: TracksClient
    settings: ReceiptsSettings
    freee: FreeeSettings
    drive: Drive


def product() -> Product:
    """The connections of the runtime this step runs in, the settings read now (so a test or an
    operator can change them between runs)."""
    runtime = current_runtime()
    assert runtime.pool is not None and runtime.nc is not None
    settings = ReceiptsSettings()
    if "home" not in settings.model_fields_set:  # beside the runtime's own files (TRACKS_DATA_DIR)
        settings = settings.model_copy(update={"home": runtime.settings.data_dir / "receipts"})
    return Product(
        pool=runtime.pool,
        client=TracksClient(runtime.nc, payloads=runtime.payloads),
        settings=settings,
        freee=FreeeSettings(),
        drive=LocalDrive(settings.drive),
    )
