-- Every ledger statement is safe to replay. When PostgreSQL dies after a batch committed but before
-- its reply arrived, the group commit sends the same batch again: each row now carries a key chosen
-- by the client, and a replay finds its rows already there instead of writing them twice.
--   processing_logs.event_id  one per log row (time-ordered UUIDs: the index grows at its right edge)
--   track_steps.claim_id      the claim that last activated the step (its `started` row has the same id)
--   track_steps.tries         deliveries of the activating message that reached the handler; an
--                             activation is exhausted by its tries, not by how often JetStream
--                             delivered the message (messages handed back unstarted do not count)
ALTER TABLE processing_logs ADD COLUMN event_id uuid;
CREATE UNIQUE INDEX processing_logs_event_id ON processing_logs (event_id);

ALTER TABLE track_steps ADD COLUMN claim_id uuid;
ALTER TABLE track_steps ADD COLUMN tries integer NOT NULL DEFAULT 1;

-- The unsettled-step sweep reads running steps of a track by their activating message.
CREATE INDEX track_steps_running ON track_steps (track_id, activated_by) WHERE status = 'running';
