-- Coordination ledger: the current state of each (run, track) step.
-- processing_logs says what happened; this table decides what may happen next:
-- a step is claimed by one activation (fan-in exactly once) and a completed step
-- keeps its output, so a duplicate trigger re-announces it instead of running again.
CREATE TABLE track_steps (
    correlation_id  text        NOT NULL,
    track_id        text        NOT NULL,
    workflow        text,
    user_id         text,
    status          text        NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'timed_out')),
    attempts        integer     NOT NULL DEFAULT 1,
    activated_by    bigint,
    output          jsonb,
    error           text,
    trace_id        text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (correlation_id, track_id)
);

COMMENT ON COLUMN track_steps.activated_by IS
    'TRACKS stream sequence of the message that claimed this step; its redeliveries may retry it';

CREATE INDEX track_steps_status ON track_steps (status, updated_at);
