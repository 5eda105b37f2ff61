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

-- A step's trace ID is in its traceparent (trace_context): track_steps.trace_id is no longer
-- written (NULL on new rows; processing_logs.trace_id is kept on every event).
COMMENT ON COLUMN track_steps.trace_id IS 'written before migration 0014; the trace ID is in trace_context';

COMMENT ON COLUMN track_steps.trace_context IS
    'the traceparent of the step''s latest activation, kept when a fan-in step links to it (0014)';

-- Its indexes follow in 0015, built CONCURRENTLY (outside a transaction: no blocked writes).
