-- Cron schedules and the history of the ticks they fired (SPEC section 3).
CREATE TABLE job_schedules (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name             text        NOT NULL UNIQUE,
    cron_expression  text        NOT NULL,
    job_type         text        NOT NULL,
    enabled          boolean     NOT NULL DEFAULT true,
    timezone         text        NOT NULL DEFAULT 'UTC',
    target           text        NOT NULL,
    payload          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    priority         text        NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job_executions (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id         uuid        REFERENCES job_schedules (id) ON DELETE SET NULL,
    correlation_id      text,
    status              text        NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    scheduled_for       timestamptz,
    started_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    error_message       text,
    execution_metadata  jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX job_executions_schedule ON job_executions (schedule_id, started_at DESC);
CREATE UNIQUE INDEX job_executions_correlation ON job_executions (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX job_executions_running ON job_executions (status) WHERE status = 'running';
