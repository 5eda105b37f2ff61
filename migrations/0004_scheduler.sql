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

-- Decide a tick once for all replicas, in one round trip (see scheduler/executions.py).
-- The first caller inserts the tick's row: running, or by the overlap policy queued/skipped.
-- Later callers find the row: 'publish' again (JetStream de-duplicates) while it is fresh and
-- running, else 'done'.
CREATE FUNCTION tracks_claim_tick(p_schedule uuid, p_for timestamptz, p_cid text, p_policy text,
                                  p_follow_s double precision, p_meta jsonb)
RETURNS TABLE (o_decision text, o_correlation_id text, o_reason text) LANGUAGE plpgsql AS $$
DECLARE
    existing  record;
    n_running bigint;
    n_queued  bigint;
    v_status  text := 'running';
    v_reason  text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('job_schedule:' || p_schedule::text, 0));
    SELECT e.status, e.correlation_id, e.started_at > now() - make_interval(secs => p_follow_s) AS fresh
      INTO existing
      FROM job_executions e WHERE e.schedule_id = p_schedule AND e.scheduled_for = p_for;
    IF FOUND THEN
        RETURN QUERY SELECT CASE WHEN existing.status = 'running' AND existing.fresh
                                 THEN 'publish' ELSE 'done' END,
                            existing.correlation_id, NULL::text;
        RETURN;
    END IF;
    IF p_policy <> 'allow' THEN
        SELECT count(*) FILTER (WHERE e.status = 'running'), count(*) FILTER (WHERE e.status = 'queued')
          INTO n_running, n_queued
          FROM job_executions e
         WHERE e.schedule_id = p_schedule AND e.status IN ('running', 'queued') AND e.scheduled_for < p_for;
        IF n_queued > 0 THEN
            v_status := 'skipped'; v_reason := 'overlap: a run is already queued';
        ELSIF n_running > 0 AND p_policy = 'queue' THEN
            v_status := 'queued'; v_reason := 'overlap: waiting for the previous run';
        ELSIF n_running > 0 THEN
            v_status := 'skipped'; v_reason := 'overlap: the previous run is unfinished';
        END IF;
    END IF;
    INSERT INTO job_executions (schedule_id, correlation_id, status, scheduled_for, completed_at,
                                execution_metadata)
    VALUES (p_schedule, p_cid, v_status, p_for, CASE WHEN v_status = 'skipped' THEN now() END,
            CASE WHEN v_reason IS NULL THEN p_meta ELSE p_meta || jsonb_build_object('reason', v_reason) END)
    ON CONFLICT (schedule_id, scheduled_for) DO NOTHING;
    IF NOT FOUND THEN
        -- Recorded meanwhile as skipped by a replica's catch-up (which takes no lock): follow it.
        RETURN QUERY SELECT 'done', e.correlation_id, NULL::text
                     FROM job_executions e WHERE e.schedule_id = p_schedule AND e.scheduled_for = p_for;
        RETURN;
    END IF;
    RETURN QUERY SELECT CASE v_status WHEN 'running' THEN 'publish' ELSE v_status END, p_cid, v_reason;
END $$;

-- Many ticks in one call and one commit (a burst of schedules due at the same second).
-- Callers pass them sorted by (schedule, time) so concurrent batches take the advisory locks in
-- the same order and cannot deadlock.
CREATE FUNCTION tracks_claim_ticks(p_schedules uuid[], p_fors timestamptz[], p_cids text[], p_policies text[],
                                   p_follow_s double precision, p_metas jsonb[])
RETURNS TABLE (o_index integer, o_decision text, o_correlation_id text, o_reason text) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_schedules, 1), 0) LOOP
        RETURN QUERY SELECT i, c.o_decision, c.o_correlation_id, c.o_reason
                     FROM tracks_claim_tick(p_schedules[i], p_fors[i], p_cids[i], p_policies[i],
                                            p_follow_s, p_metas[i]) AS c;
    END LOOP;
END $$;
