-- Flow control across replicas (actors/flow/): limits held in PostgreSQL, whatever the number of
-- replicas. A running slot is a lease that expires (a replica that dies gives its slots back
-- within its lease, the track's ack_wait); a rate is a sliding window of recorded starts.

CREATE TABLE flow_limits (
    name          text PRIMARY KEY,
    rate_n        integer,
    rate_period_s double precision,
    max_running   integer,
    per_key       boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE flow_leases (
    lease_id   bigserial PRIMARY KEY,
    name       text NOT NULL,
    key        text NOT NULL DEFAULT '',
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL,
    correlation_id text,
    seq        bigint
    -- the step holding the slot (its run, its stream sequence): on_conflict='cancel_in_progress'
    -- cancels the runs of a key's older steps that hold its slots
);
CREATE INDEX flow_leases_name_key ON flow_leases (name, key);
CREATE INDEX flow_leases_holder ON flow_leases (holder);

CREATE TABLE flow_starts (
    name text NOT NULL,
    key  text NOT NULL DEFAULT '',
    at   timestamptz NOT NULL
);
CREATE INDEX flow_starts_name_key_at ON flow_starts (name, key, at);

-- on_conflict='keep_newest': the newest stream sequence seen per (track, key); a held step older
-- than it is superseded (its run cancelled) instead of run.
CREATE TABLE flow_newest (
    name text NOT NULL,
    key  text NOT NULL,
    seq  bigint NOT NULL,
    PRIMARY KEY (name, key)
);

-- What each replica holds waiting at its gate, per limit (refreshed with its leases): the queue
-- `tracks limits` shows. Rows older than a few lease periods are a dead replica's: ignored.
CREATE TABLE flow_waiting (
    name       text NOT NULL,
    holder     text NOT NULL,
    waiting    integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, holder)
);

-- One admission, atomically: every requirement (limit, key) is locked (callers pass them sorted,
-- so two acquirers never deadlock), expired leases and starts out of the window are dropped, and
-- either all requirements are met (a lease per slot limit, a start per rate limit, recorded at
-- one instant) or nothing is taken. Starts under a rate are spread evenly (one per period / N,
-- no burst), and never more than N in any window of the period. Up to ``p_count`` admissions at
-- once (as many as the slots allow; one under a rate): ``granted`` of them, ``lease_ids`` the
-- slot leases grant by grant. ``blocked``: 1-based index of the first unmet requirement;
-- ``wait_s``: for a rate, how long until the next start may be (0 for a slot).
CREATE FUNCTION flow_acquire(
    p_names text[], p_keys text[], p_max integer[], p_rate integer[], p_period double precision[],
    p_holder text, p_lease_s double precision, p_cid text, p_seq bigint, p_count integer
) RETURNS TABLE (lease_ids bigint[], granted integer, blocked integer, wait_s double precision)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    n integer;
    oldest timestamptz;
    newest timestamptz;
    t timestamptz;
    ids bigint[] := '{}';
    new_id bigint;
    g integer := greatest(p_count, 1);
    k integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_names, 1), 0) LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(p_names[i] || chr(31) || p_keys[i], 17));
    END LOOP;
    t := clock_timestamp();
    FOR i IN 1 .. coalesce(array_length(p_names, 1), 0) LOOP
        IF p_max[i] IS NOT NULL THEN
            DELETE FROM flow_leases f WHERE f.name = p_names[i] AND f.key = p_keys[i] AND f.expires_at <= t;
            SELECT count(*) INTO n FROM flow_leases f WHERE f.name = p_names[i] AND f.key = p_keys[i];
            IF n >= p_max[i] THEN
                RETURN QUERY SELECT NULL::bigint[], 0, i, 0::double precision;
                RETURN;
            END IF;
            g := least(g, p_max[i] - n);
        END IF;
        IF p_rate[i] IS NOT NULL THEN
            DELETE FROM flow_starts f
             WHERE f.name = p_names[i] AND f.key = p_keys[i]
               AND f.at <= t - make_interval(secs => p_period[i]);
            SELECT count(*), min(f.at) INTO n, oldest
              FROM flow_starts f WHERE f.name = p_names[i] AND f.key = p_keys[i];
            IF n >= p_rate[i] THEN
                RETURN QUERY SELECT NULL::bigint[], 0, i,
                    greatest(extract(epoch FROM oldest + make_interval(secs => p_period[i]) - t)::double precision, 0.001);
                RETURN;
            END IF;
            -- evenly spread, no bursts: one start per period / N
            SELECT max(f.at) INTO newest FROM flow_starts f WHERE f.name = p_names[i] AND f.key = p_keys[i];
            IF newest IS NOT NULL AND newest + make_interval(secs => p_period[i] / p_rate[i]) > t THEN
                RETURN QUERY SELECT NULL::bigint[], 0, i,
                    greatest(extract(epoch FROM newest + make_interval(secs => p_period[i] / p_rate[i]) - t)::double precision, 0.001);
                RETURN;
            END IF;
            g := 1;
        END IF;
    END LOOP;
    FOR k IN 1 .. g LOOP
        FOR i IN 1 .. coalesce(array_length(p_names, 1), 0) LOOP
            IF p_max[i] IS NOT NULL THEN
                INSERT INTO flow_leases (name, key, holder, expires_at, correlation_id, seq)
                VALUES (p_names[i], p_keys[i], p_holder, t + make_interval(secs => p_lease_s), p_cid, p_seq)
                RETURNING lease_id INTO new_id;
                ids := ids || new_id;
            END IF;
            IF p_rate[i] IS NOT NULL THEN
                INSERT INTO flow_starts (name, key, at) VALUES (p_names[i], p_keys[i], t);
            END IF;
        END LOOP;
    END LOOP;
    RETURN QUERY SELECT ids, g, 0, 0::double precision;
END;
$$;
