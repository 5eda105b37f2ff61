-- Workflow runs: one row per correlation ID of a workflow, created with its first root step.
CREATE TABLE workflow_runs (
    correlation_id   text        PRIMARY KEY,
    workflow         text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'timed_out')),
    user_id          text,
    input            jsonb,
    result           jsonb,
    error            text,
    released_phases  text[]      NOT NULL DEFAULT '{}',
    definition       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at       timestamptz NOT NULL DEFAULT now(),
    deadline         timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON COLUMN workflow_runs.released_phases IS 'manual phases a person released with `tracks proceed`';
COMMENT ON COLUMN workflow_runs.definition IS
    'the workflow as it was when the run started (tracks and upstreams, phases, leaves): status, proceed and resume need no code';

-- The timeout reaper looks only at running runs that have a deadline.
CREATE INDEX workflow_runs_deadline ON workflow_runs (deadline) WHERE status = 'running' AND deadline IS NOT NULL;
CREATE INDEX workflow_runs_finished ON workflow_runs (status, finished_at);

-- A step of a manual phase waits as 'gated' until the phase is released.
ALTER TABLE track_steps DROP CONSTRAINT track_steps_status_check;
ALTER TABLE track_steps ADD CONSTRAINT track_steps_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'timed_out', 'gated'));
