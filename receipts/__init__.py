"""The receipts product: a freelance engineer's receipts, from mail to bookkeeping.

Workflows named after the job types (``tracks actor run receipts`` runs them all;
``tracks run receipts:<job_type> --wait`` starts one):

- ``email_scan``: new mail (a Maildir / ``.eml`` folder, or IMAP) → one ``receipt_process`` run
  per message with receipt-like attachments;
- ``receipt_process``: extract (PDF, HTML, text, image with OCR) → file in the drive → book;
  a low-confidence receipt waits at the manual gate of its ``receipt_review`` run;
- ``file_organize``, ``duplicate_cleanup``, ``report_generate``, ``backup_create``: the
  scheduled upkeep.
"""

from receipts.intake import email_scan, receipt_process, receipt_review
from receipts.models import Receipt
from receipts.upkeep import backup_create, duplicate_cleanup, file_organize, report_generate

__all__ = [
    "Receipt",
    "backup_create",
    "duplicate_cleanup",
    "email_scan",
    "file_organize",
    "receipt_process",
    "receipt_review",
    "report_generate",
]
