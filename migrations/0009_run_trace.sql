-- One trace per run. A run keeps the W3C traceparent of its first step (the span that opened it),
-- so that what continues it later — a manual gate released by `tracks proceed`, a `tracks resume`
-- days after, a second root triggered on its own, the timeout sweep — joins the same trace.
--   workflow_runs.trace_context  the run's traceparent, set by the claim that creates the run
--   track_steps.trace_context    the traceparent of the step's latest activation (its CONSUMER
--                                span): a fan-in step links to each upstream it waited for
ALTER TABLE workflow_runs ADD COLUMN trace_context text;
ALTER TABLE track_steps ADD COLUMN trace_context text;
