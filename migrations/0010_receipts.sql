-- The receipts product (receipts/): its own state, beside the runtime's ledger. The ledger
-- records steps; these tables record what the product knows about mail, receipts and books.

-- Every message email_scan has seen, by Message-ID: a re-scan hands nothing over twice.
CREATE TABLE receipts_seen_messages (
    message_id    TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    subject       TEXT,
    received_at   TIMESTAMPTZ,
    attachments   INT NOT NULL DEFAULT 0,
    run_id        TEXT,                          -- the receipt_process run it was handed to
    handed_off_at TIMESTAMPTZ,
    seen_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per receipt attachment, from extraction to its place in the drive.
CREATE TABLE receipts (
    receipt_id    TEXT PRIMARY KEY,              -- <message key>-<attachment index>
    message_id    TEXT NOT NULL,
    filename      TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    spool_path    TEXT NOT NULL,
    kind          TEXT NOT NULL,                 -- pdf, html, text, image
    issued_on     DATE,
    vendor        TEXT,
    amount        NUMERIC(14, 2),
    tax           NUMERIC(14, 2),
    currency      TEXT,
    category      TEXT,
    confidence    REAL NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'extracted'
        CHECK (status IN ('extracted', 'needs_review', 'accepted', 'filed', 'duplicate')),
    review_reason TEXT,
    drive_path    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX receipts_sha256 ON receipts (sha256);
CREATE INDEX receipts_issued_on ON receipts (issued_on);

-- What duplicate_cleanup moved aside (never deleted): where it was, where it is, and why.
CREATE TABLE receipts_duplicates (
    receipt_id    TEXT PRIMARY KEY REFERENCES receipts (receipt_id),
    duplicate_of  TEXT NOT NULL REFERENCES receipts (receipt_id),
    match         TEXT NOT NULL CHECK (match IN ('exact', 'near')),
    moved_from    TEXT,
    moved_to      TEXT,
    moved_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One bookkeeping entry per accepted receipt; freee_deal_id once posted (never posted twice).
CREATE TABLE bookkeeping_entries (
    receipt_id      TEXT PRIMARY KEY REFERENCES receipts (receipt_id),
    idempotency_key TEXT NOT NULL UNIQUE,
    issue_date      DATE NOT NULL,
    vendor          TEXT NOT NULL,
    category        TEXT NOT NULL,
    amount          NUMERIC(14, 2) NOT NULL,
    tax             NUMERIC(14, 2),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'recorded' CHECK (status IN ('recorded', 'posted', 'void')),
    freee_deal_id   BIGINT,
    posted_at       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
