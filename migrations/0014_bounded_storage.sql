-- Bounded storage (issue #14): what a run leaves in PostgreSQL, each thing stored once.
-- Measured with tracks/bench/footprint.py (README, "Sizing"), which prints every relation's bytes.

-- A workflow's definition is stored once, not with every run: runs reference it by the md5 of its
-- jsonb text (the claim that opens a run computes the same in SQL). Runs written before this
-- migration keep their own `definition` (not rewritten: readers take the referenced definition,
-- else the run's own); a run refused before it began has neither.
CREATE TABLE workflow_definitions (
    id          uuid        PRIMARY KEY,
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN workflow_definitions.id IS 'md5(definition::text)::uuid';

ALTER TABLE workflow_runs ADD COLUMN definition_id uuid;
ALTER TABLE workflow_runs ALTER COLUMN definition DROP NOT NULL;
ALTER TABLE workflow_runs ALTER COLUMN definition DROP DEFAULT;
COMMENT ON COLUMN workflow_runs.definition IS
    'a run''s own definition: runs written before migration 0014 (newer ones reference workflow_definitions)';
COMMENT ON COLUMN workflow_runs.definition_id IS
    'the workflow as it was when the run started (workflow_definitions): status, proceed and resume need no code';

-- A run's chain is read by correlation ID alone and its few rows sorted: an index on the
-- correlation ID only holds one entry per run (B-tree deduplication: a posting list of the run's
-- rows) where (correlation_id, occurred_at, id) held one per row.
DROP INDEX processing_logs_correlation;
CREATE INDEX processing_logs_correlation ON processing_logs (correlation_id);

-- A step's trace ID is in its traceparent (trace_context): track_steps.trace_id is no longer
-- written (NULL on new rows; processing_logs.trace_id is kept on every event).
COMMENT ON COLUMN track_steps.trace_id IS 'written before migration 0014; the trace ID is in trace_context';

-- Per-track activity is read for one thing: the failure-rate alert counting a failing track's
-- recent completions (actors/failures/alerts.py; its failures come from the partial index of
-- 0013). An index of completions only holds half the rows.
DROP INDEX processing_logs_track_time;
CREATE INDEX processing_logs_track_completed ON processing_logs (track_id, occurred_at)
    WHERE event_type = 'completed';
COMMENT ON COLUMN track_steps.trace_context IS
    'the traceparent of the step''s latest activation, kept when a fan-in step links to it (0014)';

-- The listing's indexes (0008), ascending: a new run's entry goes at the right end of its range,
-- where a full page splits leaving the old page full; in descending order it went at the left
-- end, and every split left two half-empty pages behind. The listing reads them backwards.
DROP INDEX workflow_runs_started;
CREATE INDEX workflow_runs_started ON workflow_runs (started_at, correlation_id);
DROP INDEX workflow_runs_workflow_started;
CREATE INDEX workflow_runs_workflow_started ON workflow_runs (workflow, started_at, correlation_id);
DROP INDEX workflow_runs_status_started;
CREATE INDEX workflow_runs_status_started ON workflow_runs (lower(status), started_at, correlation_id);
