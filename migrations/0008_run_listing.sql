-- Runs an operator can find and stop: `tracks runs ls` and `tracks cancel`.

-- A run (and a step still in flight when its run was cancelled) may end 'cancelled'.
ALTER TABLE workflow_runs DROP CONSTRAINT workflow_runs_status_check;
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'timed_out', 'cancelled'));
ALTER TABLE track_steps DROP CONSTRAINT track_steps_status_check;
ALTER TABLE track_steps ADD CONSTRAINT track_steps_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'timed_out', 'gated', 'cancelled'));

-- `tracks runs ls`: newest first, LIMIT n, each filter read from an index in that order (keyset:
-- (started_at, correlation_id) DESC, so a page ends where the next begins). Measured with
-- tracks/bench/run_listing.py on 1,000,000 runs (README, "Operating runs").
CREATE INDEX workflow_runs_started ON workflow_runs (started_at DESC, correlation_id DESC);
CREATE INDEX workflow_runs_workflow_started ON workflow_runs (workflow, started_at DESC, correlation_id DESC);
-- Not led by `status` itself (0006: with statistics that say "empty", the ledger's statements went
-- through such an index instead of their keys; tests/actors/ledger/test_ledger_plans.py): by
-- lower(status), an expression only the listing uses (it matches --status case-insensitively).
CREATE INDEX workflow_runs_status_started ON workflow_runs (lower(status), started_at DESC, correlation_id DESC);
