"""The ledger's two batch statements: claims (``CLAIM_SQL``) and outcomes (``WRITE_SQL``).

Each takes a whole batch as one JSON document (``actors.ledger.store.claim_params`` and
``write_params``) and answers for every item of it.

Their plans must not depend on the tables' statistics. Those taken just after a bulk delete say
"empty" while new rows refill the table's pages, and the planner then read whole tables once per
batch (a 400-row outcome batch took 1.3 s instead of 12 ms, measured). So every access to a ledger
table is bounded by the batch's own keys (``correlation_id = ANY (ARRAY(SELECT cid FROM req))``),
no index leads with ``status`` (migration 0006), and the runtime's connections join a batch to
the rows its keys found by hash, never by a loop per row (``create_pool(batch_joins=True)``).
``tests/test_ledger_plans.py`` checks the plans on such statistics.

Both statements lock ``track_steps`` rows in key order (claims insert in key order, outcomes lock
``FOR UPDATE`` in key order; a claim of a step whose outcome is being written waits for it), so
concurrent batches wait for each other instead of deadlocking.

Both are idempotent under replay (the group commit re-sends a batch whose reply was lost, and
it may have committed): log rows carry a client-chosen ``event_id`` and are inserted ``ON
CONFLICT DO NOTHING``; a claim carries a ``claim_id`` that the step keeps, and a replayed claim
finds its own id there and changes nothing (no second attempt); an outcome whose log row is
already there is answered as written before, without touching the step again; and a run's
completion is answered from the run's durable state, not from whether this statement flipped it.
"""

from __future__ import annotations

__all__ = ["CLAIM_SQL", "WRITE_SQL"]

CLAIM_SQL = """
WITH req AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb)
        AS r(cid text, track text, seq bigint, workflow text, user_id text, trace_id text, details jsonb,
             at timestamptz, deps text[], root boolean, gate text, timeout_s float8, definition jsonb,
             claim_id uuid, max_tries int, source text, tp text, link boolean, keep boolean)
), defs AS (
    -- each distinct definition stored once (migration 0014), known by the md5 of its jsonb text
    INSERT INTO workflow_definitions (id, definition)
    SELECT DISTINCT ON (md5(definition::text)) md5(definition::text)::uuid, definition
    FROM req WHERE root AND workflow IS NOT NULL AND definition IS NOT NULL
    ORDER BY md5(definition::text)
    ON CONFLICT (id) DO NOTHING
), new_runs AS (
    INSERT INTO workflow_runs
        (correlation_id, workflow, status, user_id, input, deadline, started_at, definition_id, trace_context)
    SELECT DISTINCT ON (cid) cid, workflow, 'running', user_id, details -> 'payload',
           at + make_interval(secs => timeout_s), at, md5(definition::text)::uuid, tp
    FROM req WHERE root AND workflow IS NOT NULL
    ORDER BY cid
    ON CONFLICT (correlation_id) DO NOTHING
), state AS (
    SELECT r.*, w.status AS run_status, coalesce(w.released_phases, '{}') AS released,
           w.trace_context AS run_trace,
           (cardinality(r.deps) = 0 OR
            (SELECT count(*) FILTER (WHERE d.status = 'completed') FROM track_steps d
             WHERE d.correlation_id = r.cid AND d.track_id = ANY (r.deps)) = cardinality(r.deps)) AS deps_met,
           -- an upstream's event starts a step only when that upstream completed in this run (forged
           -- or stray events are refused); a fan-in's deps_met already covers it
           (r.source IS NULL OR cardinality(r.deps) > 0 OR EXISTS
            (SELECT 1 FROM track_steps u WHERE u.correlation_id = r.cid AND u.track_id = r.source
                                           AND u.status = 'completed')) AS source_ok,
           -- the activating message came back after its last try never settled: not run again
           (p.status = 'running' AND p.activated_by = r.seq AND p.tries >= r.max_tries
            AND p.claim_id IS DISTINCT FROM r.claim_id) AS exhausted,
           p.attempts AS prior_attempts
    FROM req r
    LEFT JOIN workflow_runs w
        ON w.correlation_id = r.cid AND w.correlation_id = ANY (ARRAY(SELECT cid FROM req))
    LEFT JOIN track_steps p
        ON p.correlation_id = r.cid AND p.track_id = r.track
       AND p.correlation_id = ANY (ARRAY(SELECT cid FROM req))
), claimed AS (
    INSERT INTO track_steps AS s
        (correlation_id, track_id, workflow, user_id, status, attempts, activated_by,
         claim_id, tries, trace_context)
    SELECT cid, track, workflow, user_id,
           CASE WHEN gate IS NOT NULL AND NOT (gate = ANY (released)) THEN 'gated' ELSE 'running' END,
           CASE WHEN gate IS NOT NULL AND NOT (gate = ANY (released)) THEN 0 ELSE 1 END,
           -- the trace ID is in the traceparent (trace_id is left NULL: 0014), kept only for a step
           -- a fan-in links to (``link``)
           seq, claim_id, 1, CASE WHEN link IS NOT FALSE THEN tp END
    FROM state WHERE deps_met AND source_ok AND NOT coalesce(exhausted, false)
                 AND coalesce(run_status, '') NOT IN ('timed_out', 'cancelled')
    ORDER BY cid, track  -- rows are locked in key order by every statement: batches never deadlock
    ON CONFLICT (correlation_id, track_id) DO UPDATE
        SET status = EXCLUDED.status,
            attempts = CASE WHEN s.claim_id = EXCLUDED.claim_id THEN s.attempts
                            ELSE s.attempts + EXCLUDED.attempts END,
            tries = CASE WHEN s.claim_id = EXCLUDED.claim_id THEN s.tries
                         WHEN s.status = 'running' AND s.activated_by = EXCLUDED.activated_by THEN s.tries + 1
                         ELSE 1 END,
            claim_id = EXCLUDED.claim_id, trace_context = EXCLUDED.trace_context,
            activated_by = EXCLUDED.activated_by, error = NULL, finished_at = NULL, updated_at = now()
        WHERE s.status IN ('failed', 'timed_out', 'gated')
           OR (s.status = 'running' AND s.activated_by = EXCLUDED.activated_by)
    RETURNING s.correlation_id, s.track_id, s.attempts, s.tries, s.status
), reopened AS (
    UPDATE workflow_runs w SET status = 'running', finished_at = NULL, error = NULL, updated_at = now()
    FROM claimed c
    WHERE w.correlation_id = ANY (ARRAY(SELECT cid FROM req)) AND w.correlation_id = c.correlation_id
      AND c.status = 'running' AND w.status = 'failed'
), logged AS (
    INSERT INTO processing_logs (user_id, correlation_id, track_id, event_type, attempt, details, trace_id,
                                 stream_seq, occurred_at, event_id)
    SELECT r.user_id, r.cid, r.track, CASE c.status WHEN 'gated' THEN 'gated' ELSE 'started' END, c.attempts,
           -- TRACKS_RECORD_PAYLOADS: a gated step keeps its input (proceed sends it); else it is kept
           -- only when asked (``keep``), e.g. not when it is the upstream's output, already recorded
           CASE WHEN c.status = 'gated' OR r.keep IS NOT FALSE THEN r.details ELSE r.details - 'payload' END,
           -- the run's trace when it has one: the step's span joins it (a message from another trace)
           coalesce(substr(r.run_trace, 4, 32), r.trace_id), r.seq, r.at, r.claim_id
    FROM claimed c JOIN state r ON r.cid = c.correlation_id AND r.track = c.track_id
    ON CONFLICT (event_id) DO NOTHING
)
SELECT s.cid, s.track, s.seq, c.attempts, c.tries, c.status AS claimed, prior.status AS prior_status,
       prior.output::text AS prior_output, prior.activated_by, s.run_status, s.deps_met, s.source_ok,
       coalesce(s.exhausted, false) AS exhausted, s.prior_attempts, s.run_trace,
       CASE WHEN c.status = 'running' AND cardinality(s.deps) > 0 THEN
           (SELECT jsonb_object_agg(d.track_id, d.output) FROM track_steps d
            WHERE d.correlation_id = s.cid AND d.track_id = ANY (s.deps))::text END AS inputs,
       CASE WHEN c.status = 'running' AND cardinality(s.deps) > 0 THEN  -- a fan-in links its causes
           (SELECT jsonb_object_agg(d.track_id, d.trace_context) FROM track_steps d
            WHERE d.correlation_id = s.cid AND d.track_id = ANY (s.deps))::text END AS causes
FROM state s
LEFT JOIN claimed c ON c.correlation_id = s.cid AND c.track_id = s.track
LEFT JOIN track_steps prior ON prior.correlation_id = s.cid AND prior.track_id = s.track
                             AND prior.correlation_id = ANY (ARRAY(SELECT cid FROM req))
"""

WRITE_SQL = """
WITH fin AS (
    SELECT * FROM jsonb_to_recordset($2::text::jsonb)
        AS x(cid text, track text, status text, output jsonb, error text, at timestamptz, fence int,
             ends_run boolean, eid uuid)
), seen AS (
    -- outcomes of this batch already written (a replayed batch): answered from their rows
    SELECT l.correlation_id, l.track_id, l.event_type, l.event_id
    FROM processing_logs l
    WHERE l.event_id = ANY (ARRAY(SELECT eid FROM fin WHERE eid IS NOT NULL))
), locked AS (
    -- Locked in key order, as the claim statement locks them (a claim of a completing step waits
    -- for its outcome): concurrent batches wait for each other instead of deadlocking.
    SELECT s.correlation_id, s.track_id
    FROM track_steps s JOIN fin x ON s.correlation_id = x.cid AND s.track_id = x.track
    WHERE s.correlation_id = ANY (ARRAY(SELECT cid FROM fin))
      AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.event_id = x.eid)
    ORDER BY s.correlation_id, s.track_id
    FOR UPDATE OF s
), steps AS (
    UPDATE track_steps s
    SET status = x.status, output = x.output, error = x.error, finished_at = x.at, updated_at = now()
    FROM fin x JOIN locked l ON l.correlation_id = x.cid AND l.track_id = x.track
    WHERE s.correlation_id = ANY (ARRAY(SELECT cid FROM fin))
      AND s.correlation_id = l.correlation_id AND s.track_id = l.track_id
      AND (x.fence IS NULL OR s.attempts = x.fence)
    RETURNING s.correlation_id, s.track_id, x.ends_run, x.output
), runs AS (
    UPDATE workflow_runs w
    SET status = 'completed', result = st.output, finished_at = now(), updated_at = now()
    FROM steps st
    WHERE w.correlation_id = ANY (ARRAY(SELECT correlation_id FROM steps WHERE ends_run))
      AND st.ends_run AND w.correlation_id = st.correlation_id AND w.status = 'running'
    RETURNING w.correlation_id, w.workflow
), replayed AS (
    SELECT x.cid, x.track, x.ends_run FROM fin x JOIN seen ON seen.event_id = x.eid
    WHERE seen.event_type <> 'superseded'
), logs AS (
    INSERT INTO processing_logs (user_id, correlation_id, track_id, event_type, attempt, details, error,
                                 error_type, trace_id, stream_seq, duration_ms, occurred_at, event_id)
    SELECT u, c, t,
           CASE WHEN f AND NOT EXISTS
                    (SELECT 1 FROM steps WHERE steps.correlation_id = c AND steps.track_id = t)
                THEN 'superseded' ELSE e END,
           a, d, er, et, tr, sq, du, oc, i
    FROM jsonb_to_recordset($1::text::jsonb)
        AS x(u text, c text, t text, e text, a int, d jsonb, er text, et text, tr text, sq bigint,
             du float8, oc timestamptz, f boolean, i uuid)
    ON CONFLICT (event_id) DO NOTHING
)
SELECT correlation_id, track_id, NULL AS completed_run FROM steps
UNION ALL
SELECT cid, track, NULL FROM replayed
UNION ALL
SELECT correlation_id, NULL, workflow FROM runs
UNION ALL
-- the only leaf's completion written before (a replay): the run is announced from its durable state
SELECT w.correlation_id, NULL, w.workflow FROM workflow_runs w
WHERE w.correlation_id = ANY (ARRAY(SELECT cid FROM replayed WHERE ends_run)) AND w.status = 'completed'
"""
