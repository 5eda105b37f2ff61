-- Every track event, append-only: a run's chain can always be rebuilt from this table.
CREATE TABLE processing_logs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         text,
    correlation_id  text        NOT NULL,
    track_id        text        NOT NULL,
    event_type      text        NOT NULL CHECK (event_type <> ''),
    attempt         integer     NOT NULL DEFAULT 1 CHECK (attempt >= 0),
    details         jsonb,
    error           text,
    error_type      text,
    trace_id        text,
    stream_seq      bigint,
    duration_ms     double precision,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

COMMENT ON COLUMN processing_logs.event_type IS
    'started | completed | failed | data_ready | retry_scheduled | dead_lettered | duplicate | ...';
COMMENT ON COLUMN processing_logs.occurred_at IS 'when the event happened in the actor';
COMMENT ON COLUMN processing_logs.recorded_at IS 'when the row reached the database (records are batched)';

-- The chain of one run, in order.
CREATE INDEX processing_logs_correlation ON processing_logs (correlation_id, occurred_at, id);
-- Per-track failure rates and recent activity.
CREATE INDEX processing_logs_track_time ON processing_logs (track_id, occurred_at);
-- Retention deletes by age; BRIN stays tiny on an append-only table.
CREATE INDEX processing_logs_occurred_brin ON processing_logs USING brin (occurred_at);
