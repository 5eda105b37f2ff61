-- Scheduler: per-schedule policies, replica-safe tick rows, skip/queue states, change notifications.

ALTER TABLE job_schedules
    ADD COLUMN overlap_policy  text NOT NULL DEFAULT 'skip' CHECK (overlap_policy IN ('skip', 'allow', 'queue')),
    ADD COLUMN timeout_s       double precision CHECK (timeout_s > 0),
    ADD COLUMN misfire_grace_s double precision CHECK (misfire_grace_s >= 0);

COMMENT ON COLUMN job_schedules.timeout_s IS 'NULL: the scheduler''s TRACKS_SCHEDULER_JOB_TIMEOUT_S';
COMMENT ON COLUMN job_schedules.misfire_grace_s IS 'NULL: the scheduler''s TRACKS_SCHEDULER_MISFIRE_GRACE_S';

-- skipped: a tick that did not run (misfire, overlap); the reason is in execution_metadata.
-- queued: a tick waiting for the previous run to finish (overlap_policy = queue).
ALTER TABLE job_executions DROP CONSTRAINT job_executions_status_check;
ALTER TABLE job_executions ADD CONSTRAINT job_executions_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'skipped', 'queued'));

-- One row per tick: two scheduler replicas firing the same tick both try to insert it.
CREATE UNIQUE INDEX job_executions_tick ON job_executions (schedule_id, scheduled_for);
CREATE INDEX job_executions_active ON job_executions (schedule_id, scheduled_for)
    WHERE status IN ('running', 'queued');

-- updated_at marks the last edit (catch-up after downtime never reaches before it); an UPDATE
-- that sets updated_at itself keeps its value (imports, tests).
CREATE FUNCTION job_schedules_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER job_schedules_touch BEFORE UPDATE ON job_schedules
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION job_schedules_touch();

-- Running schedulers LISTEN on this channel and reload the one schedule that changed.
CREATE FUNCTION job_schedules_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed job_schedules;
BEGIN
    changed := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    PERFORM pg_notify('tracks_job_schedules',
                      json_build_object('op', TG_OP, 'id', changed.id, 'name', changed.name)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER job_schedules_notify AFTER INSERT OR UPDATE OR DELETE ON job_schedules
    FOR EACH ROW EXECUTE FUNCTION job_schedules_notify();
