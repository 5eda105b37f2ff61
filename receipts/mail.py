"""Mail sources: a Maildir or folder of ``.eml`` files (the default), or an IMAP mailbox.

A source yields raw messages; ``email_scan`` parses them, keeps what it has seen by Message-ID
and hands the ones with receipt-like attachments to ``receipt_process``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import hashlib
import imaplib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from receipts.extract import kind_of
from receipts.models import Kind
from receipts.settings import ReceiptsSettings

__all__ = [
    "Attachment",
    "FolderSource",
    "ImapSource",
    "MailSource",
    "attachments_of",
    "message_key",
    "parse",
    "source_from",
]


class MailSource(Protocol):
    @property
    def name(self) -> str: ...

    def messages(self, since: dt.datetime | None) -> Iterator[bytes]:
        """Raw RFC 822 messages received since ``since`` (all when ``None``); may repeat seen ones."""
        ...


@dataclass(frozen=True)
class FolderSource:
    """A Maildir (``new/``, ``cur/``) or a plain folder of ``.eml`` files, read, never changed."""

    path: Path

    @property
    def name(self) -> str:
        return f"folder:{self.path}"

    def messages(self, since: dt.datetime | None) -> Iterator[bytes]:
        if not self.path.is_dir():
            raise FileNotFoundError(f"mail folder {self.path} does not exist; set TRACKS_RECEIPTS_MAIL_DIR")
        folders = [self.path / "new", self.path / "cur"] if (self.path / "cur").is_dir() else [self.path]
        for folder in folders:
            for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
                if since is None or dt.datetime.fromtimestamp(file.stat().st_mtime, dt.UTC) >= since:
                    yield file.read_bytes()


@dataclass(frozen=True)
class ImapSource:
    """An IMAP mailbox (Gmail speaks IMAP with an app password) through the standard ``imaplib``."""

    host: str
    user: str
    password: str
    folder: str = "INBOX"
    port: int = 993
    ssl: bool = True

    @property
    def name(self) -> str:
        return f"imap:{self.user}@{self.host}/{self.folder}"

    def messages(self, since: dt.datetime | None) -> Iterator[bytes]:
        client = imaplib.IMAP4_SSL(self.host, self.port) if self.ssl else imaplib.IMAP4(self.host, self.port)
        try:
            client.login(self.user, self.password)
            client.select(self.folder, readonly=True)
            # IMAP's SINCE has day granularity: a day earlier, the seen-table drops the repeats
            criteria = f"SINCE {(since - dt.timedelta(days=1)):%d-%b-%Y}" if since else "ALL"
            status, found = client.search(None, criteria)
            if status != "OK":
                raise RuntimeError(f"IMAP search in {self.folder} failed: {status}")
            for number in found[0].split():
                status, parts = client.fetch(number.decode(), "(BODY.PEEK[])")
                if status != "OK":
                    continue
                # the literal comes as a (header, bytes) pair; servers may send FLAGS apart from it
                yield from (part[1] for part in parts if isinstance(part, tuple))
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()


def source_from(settings: ReceiptsSettings) -> MailSource:
    if settings.imap_host:
        if not settings.imap_user or settings.imap_password is None:
            raise ValueError("TRACKS_RECEIPTS_IMAP_HOST needs TRACKS_RECEIPTS_IMAP_USER and _IMAP_PASSWORD")
        return ImapSource(
            settings.imap_host,
            settings.imap_user,
            settings.imap_password.get_secret_value(),
            settings.imap_folder,
            settings.imap_port,
            settings.imap_ssl,
        )
    return FolderSource(settings.mail_dir)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def message_key(message: EmailMessage, raw: bytes) -> tuple[str, str]:
    """(Message-ID, its SHA-256 in hex); a message without a Message-ID is known by its content hash."""
    message_id = str(message.get("Message-ID") or "").strip() or f"<sha256:{hashlib.sha256(raw).hexdigest()}>"
    return message_id, hashlib.sha256(message_id.encode()).hexdigest()


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str
    kind: Kind
    data: bytes


def attachments_of(message: EmailMessage) -> list[Attachment]:
    """The receipt-like attachments (PDF, HTML, text, image files) of a message, in order."""
    found: list[Attachment] = []
    for part in message.iter_attachments():
        filename = part.get_filename() or ""
        kind = kind_of(filename, part.get_content_type())
        if kind is None or not filename:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        found.append(Attachment(len(found), filename, kind, data))
    return found
