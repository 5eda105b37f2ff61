-- Schedules follow the run's outcome (scheduler/history.py): a tick's execution ends as the
-- run ended, so 'timed_out' and 'cancelled' join the statuses a job execution may take.
ALTER TABLE job_executions DROP CONSTRAINT job_executions_status_check;
ALTER TABLE job_executions ADD CONSTRAINT job_executions_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'timed_out', 'cancelled', 'skipped', 'queued'));

-- Retention (actors/ledger/retention.py) deletes finished executions by their end time.
CREATE INDEX job_executions_finished ON job_executions (completed_at)
    WHERE status NOT IN ('running', 'queued');
