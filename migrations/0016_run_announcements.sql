-- A timed-out run's announcement is replay-safe: the reaper marks the run timed out and logs it in
-- one statement, publishes `tracks.workflow.<wf>.timed_out.<cid>`, and only then sets
-- `announced_at`. A publish that failed (NATS away, the process killed in between) leaves the
-- run unannounced, and the next round of any runtime's reaper announces it (the event's fixed
-- Nats-Msg-Id makes a repeat harmless). Runs timed out before this migration were announced.
ALTER TABLE workflow_runs ADD COLUMN announced_at timestamptz;

COMMENT ON COLUMN workflow_runs.announced_at IS
    'when the reaper''s timed_out announcement was published (NULL while a timed-out run still owes it)';

UPDATE workflow_runs SET announced_at = coalesce(finished_at, updated_at) WHERE status = 'timed_out';

CREATE INDEX workflow_runs_unannounced ON workflow_runs (finished_at)
    WHERE status = 'timed_out' AND announced_at IS NULL;
