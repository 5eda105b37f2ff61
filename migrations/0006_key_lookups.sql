-- The ledger's hot statements (actors/ledger.py) find their rows by key, whatever the statistics say.
-- An index led by `status` gave the planner another way in: with statistics taken just after a bulk
-- delete (the table looks empty while new rows refill its pages), it read every running run or
-- completed step through that index, once per batch: 80 ms for a batch of 400 where key lookups take
-- 3 ms (measured; tests/test_ledger_plans.py keeps it so). Retention, the only reader by status and
-- age, reads by finish time instead.
DROP INDEX workflow_runs_finished;
CREATE INDEX workflow_runs_finished ON workflow_runs (finished_at) WHERE finished_at IS NOT NULL;
DROP INDEX track_steps_status;
CREATE INDEX track_steps_finished ON track_steps (finished_at) WHERE finished_at IS NOT NULL;
