-- A bookkeeping entry remembers that a POST to freee was sent (receipts/books.py): the reply may
-- have been lost, or the process killed before the deal ID was stored. The next try then asks
-- freee for a deal with the entry's idempotency key as ref_number before posting again, so a
-- crash between freee creating the deal and the deal ID being stored never posts it twice.
ALTER TABLE bookkeeping_entries ADD COLUMN post_sent_at timestamptz;

COMMENT ON COLUMN bookkeeping_entries.post_sent_at IS
    'when the last POST /api/1/deals for this entry was sent; set with no deal ID: its outcome is unknown';
