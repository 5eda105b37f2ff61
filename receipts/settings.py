"""The product's settings, from ``TRACKS_RECEIPTS_*`` (and freee's own ``FREEE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SAMPLE_MAIL", "FreeeSettings", "ReceiptsSettings", "load_receipts_settings"]

SAMPLE_MAIL = Path(__file__).resolve().parent / "sample_data" / "mail"
"""The shipped sample mailbox (a folder of ``.eml`` files): the default mail source."""


class ReceiptsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRACKS_RECEIPTS_", frozen=True, extra="ignore")

    home: Path = Path(".tracks") / "receipts"
    """Where the product keeps its files: ``spool/`` (attachments), ``drive/``, ``reports/``,
    ``backups/``; unset, ``<TRACKS_DATA_DIR>/receipts``."""
    mail_dir: Path = SAMPLE_MAIL
    """A Maildir (``new/`` and ``cur/``) or a folder of ``.eml`` files; used unless ``imap_host`` is set."""
    imap_host: str | None = None
    imap_port: int = 993
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_folder: str = "INBOX"
    imap_ssl: bool = True
    drive_dir: Path | None = None
    """The local "drive" receipts are filed in; default ``<home>/drive``."""
    review_below: float = Field(default=0.75, ge=0, le=1)
    """Receipts extracted with less confidence wait for a person (``receipt_review``)."""
    backup_keep: int = Field(default=7, ge=1)
    """How many backups ``backup_create`` keeps (the oldest beyond that are removed)."""
    pg_bin_dir: Path | None = None
    """Where ``pg_dump`` / ``pg_restore`` are; default the embedded PostgreSQL's, else the PATH."""

    @property
    def drive(self) -> Path:
        return self.drive_dir or self.home / "drive"

    @property
    def spool(self) -> Path:
        return self.home / "spool"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def backups(self) -> Path:
        return self.home / "backups"


class FreeeSettings(BaseSettings):
    """freee accounting: posting is on when ``FREEE_ACCESS_TOKEN`` and ``FREEE_COMPANY_ID`` are set."""

    model_config = SettingsConfigDict(env_prefix="FREEE_", frozen=True, extra="ignore")

    access_token: SecretStr | None = None
    company_id: int | None = None
    api_url: str = "https://api.freee.co.jp"

    @property
    def enabled(self) -> bool:
        return self.access_token is not None and self.company_id is not None


def load_receipts_settings() -> ReceiptsSettings:
    return ReceiptsSettings()
