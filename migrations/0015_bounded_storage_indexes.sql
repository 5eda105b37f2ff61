-- migrate: no transaction
-- The indexes of 0014's bounded storage, each built CONCURRENTLY: on a big table the actors keep
-- writing while it builds (inside a transaction, CREATE INDEX blocks every insert until it ends).
-- Every statement is safe to run again: a build interrupted half-way (its index left INVALID) is
-- dropped and built anew, and a replaced index takes its old name only once the new one is valid.

-- A run's chain is read by correlation ID alone and its few rows sorted: an index on the
-- correlation ID only holds one entry per run (B-tree deduplication: a posting list of the run's
-- rows) where (correlation_id, occurred_at, id) held one per row.
DROP INDEX CONCURRENTLY IF EXISTS processing_logs_correlation_0015;
CREATE INDEX CONCURRENTLY processing_logs_correlation_0015 ON processing_logs (correlation_id);
DROP INDEX CONCURRENTLY IF EXISTS processing_logs_correlation;
ALTER INDEX processing_logs_correlation_0015 RENAME TO processing_logs_correlation;

-- Per-track activity is read for one thing: the failure-rate alert counting a failing track's
-- recent completions (actors/failures/alerts.py; its failures come from the partial index of
-- 0013). An index of completions only holds half the rows.
DROP INDEX CONCURRENTLY IF EXISTS processing_logs_track_completed;
CREATE INDEX CONCURRENTLY processing_logs_track_completed ON processing_logs (track_id, occurred_at)
    WHERE event_type = 'completed';
DROP INDEX CONCURRENTLY IF EXISTS processing_logs_track_time;

-- The listing's indexes (0008), ascending: a new run's entry goes at the right end of its range,
-- where a full page splits leaving the old page full; in descending order it went at the left
-- end, and every split left two half-empty pages behind. The listing reads them backwards.
DROP INDEX CONCURRENTLY IF EXISTS workflow_runs_started_0015;
CREATE INDEX CONCURRENTLY workflow_runs_started_0015 ON workflow_runs (started_at, correlation_id);
DROP INDEX CONCURRENTLY IF EXISTS workflow_runs_started;
ALTER INDEX workflow_runs_started_0015 RENAME TO workflow_runs_started;
DROP INDEX CONCURRENTLY IF EXISTS workflow_runs_workflow_started_0015;
CREATE INDEX CONCURRENTLY workflow_runs_workflow_started_0015
    ON workflow_runs (workflow, started_at, correlation_id);
DROP INDEX CONCURRENTLY IF EXISTS workflow_runs_workflow_started;
ALTER INDEX workflow_runs_workflow_started_0015 RENAME TO workflow_runs_workflow_started;
DROP INDEX CONCURRENTLY IF EXISTS workflow_runs_status_started_0015;
CREATE INDEX CONCURRENTLY workflow_runs_status_started_0015
    ON workflow_runs (lower(status), started_at, correlation_id);
DROP INDEX CONCURRENTLY IF EXISTS workflow_runs_status_started;
ALTER INDEX workflow_runs_status_started_0015 RENAME TO workflow_runs_status_started;
