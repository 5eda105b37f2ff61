-- The failure-rate alert (actors/failures/alerts.py) finds a window's dead-lettered failures
-- through this small index instead of reading every log row of the window, then counts each
-- failing track's completions only as far as the verdict needs (a bounded LIMIT): the check
-- costs in proportion to failures, not to the events of the hour.
CREATE INDEX processing_logs_dead_lettered ON processing_logs (occurred_at, track_id)
    WHERE event_type = 'failed' AND details @> '{"deadLettered": true}';
