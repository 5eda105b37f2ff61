-- A step waiting at a manual gate of a cancelled run ends with the run (actors/ledger/cancel.py
-- now closes them when cancelling). Before, such a step stayed 'gated' for ever: retention keeps
-- unfinished steps and the whole history of their run, so the run was never purged.
UPDATE track_steps s
SET status = 'cancelled', finished_at = coalesce(w.finished_at, now()), updated_at = now(),
    error = 'the run was cancelled at its gate'
FROM workflow_runs w
WHERE w.correlation_id = s.correlation_id AND w.status = 'cancelled' AND s.status = 'gated';
