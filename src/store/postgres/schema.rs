//! The schema: numbered migrations, the commit function, and the SQL text of every statement
//! the store sends, all qualified with the store's schema name.
//!
//! Time is stored as `bigint` nanoseconds since the Unix epoch (not `timestamptz`, which keeps
//! microseconds): a hold's expiry must come back exactly as the rules wrote it, or a hold
//! lapsing between two microseconds would be lapsed to the store and live to the rules.
//!
//! # Tables (schema version 4)
//!
//! - `occurrences`: one row per occurrence — its configuration (`config`, JSON, with
//!   `config_version`) and its seat counters as parallel arrays over its dimensions (`dims`,
//!   `caps`, `held`, `confirmed`, `blocked`, `offered`). The row every commit of the
//!   occurrence locks first.
//! - `records`: every record of every kind, `(occ_key, kind, key)` → `version`, `body`
//!   (JSON), and `due_ns` (the expiry index, partial indexes on it), plus the sweep's lease
//!   (`sweep_claimed_*`, not part of the version). A new kind of record needs no new table.
//! - `outbox`: `id bigserial`, `occ_key`, `body` (the event's JSON).
//! - `seathold_meta`: the schema version.
//! - `record_version`: the sequence every put takes its version from (clause 7 of the store
//!   contract: a version never repeats for a key, also after a delete).

/// The SQLSTATE-style codes `seathold_apply` answers (class `SH`, which PostgreSQL leaves to
/// applications), followed by `:detail`.
pub(super) const CODE_CAPACITY: &str = "SH001";
pub(super) const CODE_RECORD: &str = "SH002";
pub(super) const CODE_OCCURRENCE: &str = "SH004";
pub(super) const CODE_USAGE: &str = "SH005";
pub(super) const CODE_INVALID: &str = "SH009";

/// The schema version this code writes; `migrate()` brings a database up to it, and refuses a
/// database whose version is newer.
pub(super) const SCHEMA_VERSION: i32 = 4;

/// Whether `name` is usable as a schema name without quoting surprises: 1 to 63 bytes of
/// lower-case ASCII letters, digits and `_`, not starting with a digit or `pg_`.
pub(super) fn valid_schema_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && !b[0].is_ascii_digit()
        && !name.starts_with("pg_")
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// The schema and its version table, created if absent.
pub(super) fn bootstrap_sql(s: &str) -> String {
    format!(
        r#"
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".seathold_meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    schema_version integer NOT NULL
);
"#
    )
}

/// Migration `version` (1-based), or `None` past the last one.
pub(super) fn migration(s: &str, version: i32) -> Option<String> {
    match version {
        1 => Some(v1(s)),
        2 => Some(v2(s)),
        // Version 3 changes no table: the commit function learned counter guards
        // (`unchanged`, `at_least`). The number keeps older code, which refuses a newer schema, from
        // reinstalling a function that would ignore them.
        3 => Some(String::new()),
        4 => Some(v4(s)),
        _ => None,
    }
}

/// Version 1 (seathold 0.1): one hold row per (occurrence, actor), typed settlement and
/// outbox columns.
fn v1(s: &str) -> String {
    format!(
        r#"
CREATE TABLE "{s}".occurrences (
    occ_key text PRIMARY KEY,
    capacity bigint NOT NULL CHECK (capacity >= 0),
    hold_ttl_secs bigint NOT NULL CHECK (hold_ttl_secs > 0),
    held bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    confirmed bigint NOT NULL DEFAULT 0 CHECK (confirmed >= 0)
);
CREATE TABLE "{s}".holds (
    occ_key text NOT NULL,
    actor text NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    hold_ref text NOT NULL,
    quantity bigint NOT NULL CHECK (quantity > 0),
    amount text NOT NULL,
    currency text NOT NULL,
    attempt bigint NOT NULL,
    placed_at_ns bigint NOT NULL,
    expires_at_ns bigint NOT NULL,
    state text NOT NULL CHECK (state IN ('held', 'confirmed', 'released', 'expired')),
    ended_at_ns bigint,
    sweep_claimed_by uuid,
    sweep_claimed_until timestamptz,
    PRIMARY KEY (occ_key, actor)
);
CREATE TABLE "{s}".settlements (
    occ_key text NOT NULL,
    actor text NOT NULL,
    hold_ref text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('confirmed', 'refund')),
    reason text,
    amount text,
    currency text,
    provider_ref text,
    refund_occ_key text,
    refund_actor text,
    refund_ref text,
    settled_at_ns bigint NOT NULL,
    PRIMARY KEY (occ_key, actor, hold_ref)
);
CREATE TABLE "{s}".outbox (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    occ_key text NOT NULL,
    actor text NOT NULL,
    hold_ref text NOT NULL,
    at_ns bigint NOT NULL,
    quantity bigint,
    amount text,
    currency text,
    expires_at_ns bigint,
    reason text,
    provider_ref text
);
"#
    )
}

/// Version 2: generic records. Converts version 1's rows in place: each hold becomes a
/// booking record and its actor's summary, each settlement a payment record (and each
/// confirmed hold gets the payment record version 1 did not write for confirmations, so its
/// redeliveries still replay), each counter pair the `total` dimension, each outbox row the
/// event's JSON (same id, same bytes on the wire).
fn v2(s: &str) -> String {
    format!(
        r#"
-- RFC 3339 in UTC from nanoseconds, as the crate writes it: fraction digits only when
-- non-zero, trailing zeros trimmed.
CREATE OR REPLACE FUNCTION "{s}".ns_rfc3339(ns bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(to_timestamp(div(ns, 1000000000)::double precision) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN mod(ns, 1000000000) = 0 THEN ''
                ELSE '.' || rtrim(lpad(mod(ns, 1000000000)::text, 9, '0'), '0') END
        || 'Z' $$;

CREATE TABLE "{s}".records (
    occ_key text NOT NULL,
    kind text NOT NULL,
    key text NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    body jsonb NOT NULL,
    due_ns bigint,
    sweep_claimed_by uuid,
    sweep_claimed_until timestamptz,
    PRIMARY KEY (occ_key, kind, key)
);
CREATE INDEX records_due ON "{s}".records (due_ns) WHERE due_ns IS NOT NULL;
CREATE INDEX records_occ_due ON "{s}".records (occ_key, due_ns) WHERE due_ns IS NOT NULL;

INSERT INTO "{s}".records (occ_key, kind, key, version, body, due_ns)
SELECT h.occ_key, 'booking', h.hold_ref, 1,
       jsonb_strip_nulls(jsonb_build_object(
           'occ_key', h.occ_key, 'actor', h.actor, 'ref', h.hold_ref, 'quantity', h.quantity,
           'price', jsonb_build_object('amount', h.amount, 'currency', h.currency),
           'placed_at', h.placed_at_ns, 'expires_at', h.expires_at_ns, 'state', h.state,
           'ended_at', h.ended_at_ns)),
       CASE WHEN h.state = 'held' THEN h.expires_at_ns END
  FROM "{s}".holds h;

INSERT INTO "{s}".records (occ_key, kind, key, version, body)
SELECT h.occ_key, 'actor', h.actor, 1,
       jsonb_strip_nulls(jsonb_build_object(
           'occ_key', h.occ_key, 'actor', h.actor, 'current', h.hold_ref,
           'live', CASE WHEN h.state = 'held' THEN jsonb_build_object(
                       'ref', h.hold_ref, 'quantity', h.quantity, 'expires_at', h.expires_at_ns) END,
           'confirmed_ref', CASE WHEN h.state = 'confirmed' THEN h.hold_ref END,
           'confirmed_seats', CASE WHEN h.state = 'confirmed' THEN h.quantity ELSE 0 END,
           'holds', h.attempt))
  FROM "{s}".holds h;

INSERT INTO "{s}".records (occ_key, kind, key, version, body)
SELECT st.occ_key, 'payment', st.hold_ref || chr(31) || st.actor, 1,
       jsonb_strip_nulls(jsonb_build_object(
           'occ_key', st.occ_key, 'actor', st.actor, 'ref', st.hold_ref, 'provider_ref', st.provider_ref,
           'amount', st.amount, 'currency', st.currency,
           'outcome', CASE WHEN st.outcome = 'confirmed'
                           THEN jsonb_build_object('confirmed', jsonb_build_object('revived', false))
                           ELSE jsonb_build_object('refund', jsonb_strip_nulls(jsonb_build_object(
                               'occ_key', coalesce(st.refund_occ_key, st.occ_key),
                               'actor', coalesce(st.refund_actor, st.actor),
                               'ref', coalesce(st.refund_ref, st.hold_ref),
                               'reason', st.reason, 'amount', st.amount, 'currency', st.currency,
                               'provider_ref', st.provider_ref))) END,
           'settled_at', st.settled_at_ns))
  FROM "{s}".settlements st;

INSERT INTO "{s}".records (occ_key, kind, key, version, body)
SELECT h.occ_key, 'payment', h.hold_ref || chr(31) || h.actor, 1,
       jsonb_build_object(
           'occ_key', h.occ_key, 'actor', h.actor, 'ref', h.hold_ref,
           'amount', h.amount, 'currency', h.currency,
           'outcome', jsonb_build_object('confirmed', jsonb_build_object('revived', false)),
           'settled_at', coalesce(h.ended_at_ns, h.placed_at_ns))
  FROM "{s}".holds h
 WHERE h.state = 'confirmed'
ON CONFLICT (occ_key, kind, key) DO NOTHING;

ALTER TABLE "{s}".occurrences
    ADD COLUMN config jsonb, ADD COLUMN config_version bigint NOT NULL DEFAULT 1,
    ADD COLUMN dims text[], ADD COLUMN caps bigint[],
    ADD COLUMN c_held bigint[], ADD COLUMN c_confirmed bigint[],
    ADD COLUMN c_blocked bigint[], ADD COLUMN c_offered bigint[];
UPDATE "{s}".occurrences
   SET config = jsonb_build_object('capacity', capacity, 'hold_ttl_secs', hold_ttl_secs),
       dims = ARRAY['total'], caps = ARRAY[capacity], c_held = ARRAY[held], c_confirmed = ARRAY[confirmed],
       c_blocked = ARRAY[0::bigint], c_offered = ARRAY[0::bigint];
ALTER TABLE "{s}".occurrences
    DROP COLUMN capacity, DROP COLUMN hold_ttl_secs, DROP COLUMN held, DROP COLUMN confirmed;
ALTER TABLE "{s}".occurrences RENAME COLUMN c_held TO held;
ALTER TABLE "{s}".occurrences RENAME COLUMN c_confirmed TO confirmed;
ALTER TABLE "{s}".occurrences RENAME COLUMN c_blocked TO blocked;
ALTER TABLE "{s}".occurrences RENAME COLUMN c_offered TO offered;
ALTER TABLE "{s}".occurrences
    ALTER COLUMN config SET NOT NULL, ALTER COLUMN dims SET NOT NULL, ALTER COLUMN caps SET NOT NULL,
    ALTER COLUMN held SET NOT NULL, ALTER COLUMN confirmed SET NOT NULL,
    ALTER COLUMN blocked SET NOT NULL, ALTER COLUMN offered SET NOT NULL;

ALTER TABLE "{s}".outbox ADD COLUMN body jsonb;
UPDATE "{s}".outbox SET body = jsonb_strip_nulls(jsonb_build_object(
    'type', kind, 'occ_key', occ_key, 'actor', actor, 'ref', hold_ref, 'at', "{s}".ns_rfc3339(at_ns),
    'quantity', quantity, 'amount', amount, 'currency', currency,
    'expires_at', CASE WHEN expires_at_ns IS NOT NULL THEN "{s}".ns_rfc3339(expires_at_ns) END,
    'reason', reason, 'provider_ref', provider_ref));
ALTER TABLE "{s}".outbox
    DROP COLUMN kind, DROP COLUMN actor, DROP COLUMN hold_ref, DROP COLUMN at_ns, DROP COLUMN quantity,
    DROP COLUMN amount, DROP COLUMN currency, DROP COLUMN expires_at_ns, DROP COLUMN reason,
    DROP COLUMN provider_ref;
ALTER TABLE "{s}".outbox ALTER COLUMN body SET NOT NULL;

DROP VIEW IF EXISTS "{s}".holds_readable;
DROP FUNCTION IF EXISTS "{s}".seathold_commit;
DROP TABLE "{s}".holds;
DROP TABLE "{s}".settlements;
"#
    )
}

/// Version 4: record versions from a store-wide sequence (the store contract's clause 7: a
/// version never repeats for a key, even after a delete). Versions written before it grew by
/// one per write from 1, so the sequence starts far above any of them: 2^32, or past the
/// largest version stored if that is larger.
fn v4(s: &str) -> String {
    format!(
        r#"
CREATE SEQUENCE "{s}".record_version AS bigint MINVALUE 1;
SELECT setval('"{s}".record_version', greatest(4294967296, (SELECT coalesce(max(version), 0) + 1 FROM "{s}".records)));
"#
    )
}

/// Functions and views, replaced by every `migrate()` (they hold no data).
pub(super) fn functions_sql(s: &str) -> String {
    format!(
        r#"
-- Nanoseconds to timestamptz, for people reading the tables.
CREATE OR REPLACE FUNCTION "{s}".ns_time(ns bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_timestamp(ns / 1000000000) + make_interval(secs => (ns % 1000000000) / 1e9::float8) $$;

CREATE OR REPLACE VIEW "{s}".records_readable AS
    SELECT occ_key, kind, replace(key, chr(31), '/') AS key, version, body,
           "{s}".ns_time(due_ns) AS due, sweep_claimed_by, sweep_claimed_until
    FROM "{s}".records;

{apply}
"#,
        apply = apply_function_sql(s),
    )
}

/// `seathold_apply`: a batch of commits (one operation's whole commit each, as JSON) in one
/// statement, so one round trip and one transaction — one WAL flush for all of them.
///
/// Why a batch: every commit of an occurrence writes or locks its row, and a row lock is held
/// until the transaction's WAL flush; one commit per transaction would cap a hot occurrence
/// at one commit per flush. The store combines the commits waiting at the same moment into
/// one call; a lone commit is a batch of one.
///
/// Each commit of the batch is atomic on its own, without subtransactions: all its guards are
/// checked first — on rows it has locked — and only then is anything written. Per commit,
/// the order of work, which is also the lock order (so two batches never deadlock; a batch
/// holds one occurrence's commits):
/// 1. the occurrence row, `FOR NO KEY UPDATE`; for an occurrence that does not exist, a
///    transaction-scoped advisory lock on its key, then the row again (so a create and any
///    other commit of a missing occurrence take turns);
/// 2. the guards: the occurrence (config version, existence), the records, read in one
///    statement and compared with their expected versions (no row locks needed: the
///    occurrence's lock already orders every commit that could write them), then the
///    counters (every guarded dimension counts exactly what the commit's `unchanged` says,
///    and at least what its `at_least` says;
///    every delta's dimension must exist; none may go negative; every dimension in `admits`
///    must end within its cap; dimensions a new configuration drops must count nothing);
/// 3. if all pass, the writes: occurrence, counters, records (one upsert for the puts, all
///    at one fresh version from the `record_version` sequence, with the expiry index and the
///    sweep's lease cleared; one delete), events (ids in order).
///
/// Returns one code per commit: `ok:VERSION` when applied (the version its puts are at),
/// else `SH00x:detail`.
fn apply_function_sql(s: &str) -> String {
    format!(
        r#"
CREATE OR REPLACE FUNCTION "{s}".seathold_apply(batch jsonb) RETURNS text[] LANGUAGE plpgsql AS $fn$
DECLARE
    codes text[] := ARRAY[]::text[];
    c jsonb;
    ci integer;
    ai integer;
    di integer;
    g jsonb;
    gk text;
    k text;
    o record;
    found_occ boolean;
    fail text;
    new_dims text[];
    new_caps bigint[];
    h bigint[];
    cf bigint[];
    bl bigint[];
    ofr bigint[];
    d jsonb;
    idx integer;
    i integer;
    n_new integer;
    admits text[];
    all_admit boolean;
    ver bigint;
BEGIN
    -- Loops walk JSON arrays by index (plain expressions, no SQL statement each), and a
    -- statement runs only when it has something to do: statements are what a call costs.
    FOR ci IN 0 .. jsonb_array_length(batch) - 1 LOOP
        c := batch->ci;
        k := c->>'occ';
        g := c->'guard';
        gk := g->>'k';
        -- The dimensions the commit admits seats to (a list; `true` from a client older than
        -- schema 2's function meant every dimension its deltas touch).
        all_admit := jsonb_typeof(c->'admits') = 'boolean' AND (c->>'admits')::boolean;
        admits := CASE WHEN jsonb_typeof(c->'admits') = 'array'
                       THEN ARRAY(SELECT jsonb_array_elements_text(c->'admits')) ELSE ARRAY[]::text[] END;
        fail := NULL;

        -- 1. The occurrence row (or, for a missing occurrence, its key).
        SELECT * INTO o FROM "{s}".occurrences WHERE occ_key = k FOR NO KEY UPDATE;
        found_occ := FOUND;
        IF NOT found_occ THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('{s}.' || k, 7));
            SELECT * INTO o FROM "{s}".occurrences WHERE occ_key = k FOR NO KEY UPDATE;
            found_occ := FOUND;
        END IF;

        -- 2. Guards: the occurrence.
        IF gk = 'at' OR gk = 'update' THEN
            IF NOT found_occ OR o.config_version <> (g->>'v')::bigint THEN
                fail := '{CODE_OCCURRENCE}:';
            END IF;
        ELSIF gk = 'create' THEN
            IF found_occ THEN
                fail := '{CODE_OCCURRENCE}:';
            END IF;
        ELSIF jsonb_array_length(c->'deltas') > 0 OR cardinality(admits) > 0 OR all_admit
              OR coalesce(jsonb_array_length(c->'unchanged'), 0) > 0
              OR coalesce(jsonb_array_length(c->'at_least'), 0) > 0 THEN
            fail := '{CODE_INVALID}:seat deltas on an unchecked occurrence';
        END IF;

        -- The records, guarded before the counters: a counter going negative once every
        -- record is as read is a bug, not a race. One statement for all of them. No row
        -- locks are needed for the check: every commit of this occurrence holds its row (or
        -- its advisory lock) until it ends, so this statement's fresh snapshot already sees
        -- every earlier commit of the occurrence, and none can start before this one ends.
        IF fail IS NULL THEN
            -- (A lateral lookup that cannot be flattened: one primary-key probe per write,
            -- never a scan of the occurrence's records, however many it has.)
            SELECT '{CODE_RECORD}:' || w.kind || chr(31) || w.key INTO fail
              FROM jsonb_to_recordset(c->'writes') AS w(kind text, key text, expected bigint)
              LEFT JOIN LATERAL (SELECT r.version FROM "{s}".records r
                                  WHERE r.occ_key = k AND r.kind = w.kind AND r.key = w.key LIMIT 1) r ON true
             WHERE r.version IS DISTINCT FROM w.expected
             ORDER BY w.kind COLLATE "C", w.key COLLATE "C"
             LIMIT 1;
        END IF;

        -- The counters, as the commit leaves them.
        IF fail IS NULL AND (gk IN ('create', 'update') OR found_occ) THEN
            IF gk IN ('create', 'update') THEN
                new_dims := ARRAY(SELECT jsonb_array_elements_text(g->'dims'));
                new_caps := ARRAY(SELECT (x.v)::bigint FROM jsonb_array_elements_text(g->'caps') AS x(v));
                n_new := cardinality(new_dims);
                -- Dimensions the new configuration drops stay, past the new ones, until the
                -- deltas are applied: the commit may empty them; then they must count nothing.
                IF found_occ THEN
                    FOR i IN 1..cardinality(o.dims) LOOP
                        IF array_position(new_dims, o.dims[i]) IS NULL THEN
                            new_dims := new_dims || o.dims[i];
                            new_caps := new_caps || NULL::bigint;
                        END IF;
                    END LOOP;
                END IF;
                h := array_fill(0::bigint, ARRAY[cardinality(new_dims)]);
                cf := h; bl := h; ofr := h;
                IF found_occ THEN
                    FOR i IN 1..cardinality(o.dims) LOOP
                        idx := array_position(new_dims, o.dims[i]);
                        h[idx] := o.held[i]; cf[idx] := o.confirmed[i];
                        bl[idx] := o.blocked[i]; ofr[idx] := o.offered[i];
                    END LOOP;
                END IF;
            ELSE
                new_dims := o.dims; new_caps := o.caps;
                n_new := cardinality(new_dims);
                h := o.held; cf := o.confirmed; bl := o.blocked; ofr := o.offered;
            END IF;
            -- The counter guards: listed dimensions count exactly what the decision read
            -- (before this commit's deltas).
            IF fail IS NULL AND jsonb_typeof(c->'unchanged') = 'array' THEN
                FOR ai IN 0 .. jsonb_array_length(c->'unchanged') - 1 LOOP
                    d := c->'unchanged'->ai;
                    idx := array_position(new_dims, d->>0);
                    IF idx IS NULL THEN
                        fail := '{CODE_INVALID}:counter guard on no dimension ' || (d->>0);
                        EXIT;
                    END IF;
                    IF h[idx] <> (d->>1)::bigint OR cf[idx] <> (d->>2)::bigint
                       OR bl[idx] <> (d->>3)::bigint OR ofr[idx] <> (d->>4)::bigint THEN
                        fail := '{CODE_USAGE}:' || (d->>0);
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
            -- The room guards: no seat freed on a listed dimension since it was read.
            IF fail IS NULL AND jsonb_typeof(c->'at_least') = 'array' THEN
                FOR ai IN 0 .. jsonb_array_length(c->'at_least') - 1 LOOP
                    d := c->'at_least'->ai;
                    idx := array_position(new_dims, d->>0);
                    IF idx IS NULL THEN
                        fail := '{CODE_INVALID}:room guard on no dimension ' || (d->>0);
                        EXIT;
                    END IF;
                    IF h[idx] + cf[idx] + bl[idx] + ofr[idx] < (d->>1)::bigint THEN
                        fail := '{CODE_USAGE}:' || (d->>0);
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
            IF fail IS NULL THEN
                FOR di IN 0 .. jsonb_array_length(c->'deltas') - 1 LOOP
                    d := c->'deltas'->di;
                    idx := array_position(new_dims, d->>0);
                    IF idx IS NULL THEN
                        fail := '{CODE_INVALID}:no dimension ' || (d->>0);
                        EXIT;
                    END IF;
                    h[idx] := h[idx] + (d->>1)::bigint;
                    cf[idx] := cf[idx] + (d->>2)::bigint;
                    bl[idx] := bl[idx] + (d->>3)::bigint;
                    ofr[idx] := ofr[idx] + (d->>4)::bigint;
                    IF h[idx] < 0 OR cf[idx] < 0 OR bl[idx] < 0 OR ofr[idx] < 0 THEN
                        fail := '{CODE_INVALID}:counter ' || (d->>0) || ' would go negative';
                        EXIT;
                    END IF;
                    IF all_admit AND new_caps[idx] IS NOT NULL
                       AND h[idx] + cf[idx] + bl[idx] + ofr[idx] > new_caps[idx] THEN
                        fail := '{CODE_CAPACITY}:' || (d->>0);
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
            -- The capacity guard: every dimension the commit admits seats to ends within its
            -- cap, whatever the commit frees on it; the others are never refused.
            IF fail IS NULL THEN
                FOR ai IN 1 .. coalesce(cardinality(admits), 0) LOOP
                    idx := array_position(new_dims, admits[ai]);
                    IF idx IS NULL OR idx > n_new THEN
                        fail := '{CODE_INVALID}:admits to no dimension ' || admits[ai];
                        EXIT;
                    END IF;
                    IF new_caps[idx] IS NOT NULL AND h[idx] + cf[idx] + bl[idx] + ofr[idx] > new_caps[idx] THEN
                        fail := '{CODE_CAPACITY}:' || admits[ai];
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
            IF fail IS NULL AND cardinality(new_dims) > n_new THEN
                FOR i IN (n_new + 1)..cardinality(new_dims) LOOP
                    IF h[i] + cf[i] + bl[i] + ofr[i] > 0 THEN
                        fail := '{CODE_OCCURRENCE}:';
                    END IF;
                END LOOP;
                new_dims := new_dims[1:n_new]; new_caps := new_caps[1:n_new];
                h := h[1:n_new]; cf := cf[1:n_new]; bl := bl[1:n_new]; ofr := ofr[1:n_new];
            END IF;
        END IF;

        IF fail IS NOT NULL THEN
            codes := codes || fail;
            CONTINUE;
        END IF;

        -- 3. Every guard passed: write.
        IF gk = 'create' THEN
            INSERT INTO "{s}".occurrences (occ_key, config, config_version, dims, caps, held, confirmed, blocked, offered)
                 VALUES (k, g->'config', 1, new_dims, new_caps, h, cf, bl, ofr);
        ELSIF gk = 'update' THEN
            UPDATE "{s}".occurrences
               SET config = g->'config', config_version = config_version + 1, dims = new_dims, caps = new_caps,
                   held = h, confirmed = cf, blocked = bl, offered = ofr
             WHERE occ_key = k;
        ELSIF jsonb_array_length(c->'deltas') > 0 THEN
            UPDATE "{s}".occurrences SET held = h, confirmed = cf, blocked = bl, offered = ofr WHERE occ_key = k;
        END IF;
        -- Puts (all at one fresh version, never one a key had before) and deletes, a
        -- statement each.
        ver := 0;
        IF c->'writes' @> '[{{"op": "put"}}]' THEN
        ver := nextval('"{s}".record_version');
        INSERT INTO "{s}".records AS r (occ_key, kind, key, version, body, due_ns)
        SELECT k, w.kind, w.key, ver, w.body, w.due
          FROM jsonb_to_recordset(c->'writes') AS w(op text, kind text, key text, expected bigint, body jsonb, due bigint)
         WHERE w.op = 'put'
        ON CONFLICT (occ_key, kind, key) DO UPDATE
           SET version = EXCLUDED.version, body = EXCLUDED.body, due_ns = EXCLUDED.due_ns,
               sweep_claimed_by = NULL, sweep_claimed_until = NULL;
        END IF;
        IF c->'writes' @> '[{{"op": "delete"}}]' THEN
            DELETE FROM "{s}".records r
             USING jsonb_to_recordset(c->'writes') AS w(op text, kind text, key text)
             WHERE w.op = 'delete' AND r.occ_key = k AND r.kind = w.kind AND r.key = w.key;
        END IF;
        IF jsonb_array_length(c->'events') > 0 THEN
            INSERT INTO "{s}".outbox (occ_key, body)
            SELECT k, e.value FROM jsonb_array_elements(c->'events') WITH ORDINALITY AS e(value, ord) ORDER BY e.ord;
        END IF;
        codes := codes || ('ok:' || ver);
    END LOOP;
    RETURN codes;
END
$fn$;
"#
    )
}

/// The statements the store prepares (once per pooled connection).
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) load: String,
    pub(super) due_of_occ: String,
    pub(super) due_claim: String,
    pub(super) scan: String,
    pub(super) occurrences: String,
    pub(super) apply: String,
    pub(super) pending: String,
    pub(super) ack: String,
}

impl Statements {
    pub(super) fn new(s: &str) -> Self {
        Self {
            // The occurrence (kind '') and the records asked for, in one round trip: one
            // primary-key probe per key (a lateral subquery the planner cannot turn into a
            // hash join over the occurrence's records, which would cost O(records)).
            load: format!(
                r#"SELECT '' AS kind, '' AS key, o.config_version AS version, o.config AS body,
                          o.dims, o.held, o.confirmed, o.blocked, o.offered
                     FROM "{s}".occurrences o WHERE o.occ_key = $1
                   UNION ALL
                   SELECT r.kind, r.key, r.version, r.body, NULL, NULL, NULL, NULL, NULL
                     FROM unnest($2::text[], $3::text[]) AS q(kind, key)
                     CROSS JOIN LATERAL (SELECT r.kind, r.key, r.version, r.body FROM "{s}".records r
                                          WHERE r.occ_key = $1 AND r.kind = q.kind AND r.key = q.key LIMIT 1) r"#
            ),
            due_of_occ: format!(
                r#"SELECT occ_key, kind, key, version, body FROM "{s}".records
                    WHERE occ_key = $1 AND due_ns <= $2
                    ORDER BY due_ns, kind COLLATE "C", key COLLATE "C" LIMIT $3"#
            ),
            // The sweep's claim: a batch nobody else holds a lease on, rows locked by others
            // skipped, leased to this store for a short while. A store sees its own claims
            // again (a retried sweep after an error finds what it had), other stores do not.
            due_claim: format!(
                r#"WITH batch AS (
                       SELECT r.occ_key, r.kind, r.key FROM "{s}".records r
                        WHERE r.due_ns <= $1
                          AND (r.sweep_claimed_until IS NULL OR r.sweep_claimed_until < clock_timestamp()
                               OR r.sweep_claimed_by = $3)
                        ORDER BY r.due_ns
                        LIMIT $2
                        FOR UPDATE SKIP LOCKED)
                   UPDATE "{s}".records r
                      SET sweep_claimed_by = $3,
                          sweep_claimed_until = clock_timestamp() + $4::float8 * interval '1 millisecond'
                     FROM batch
                    WHERE r.occ_key = batch.occ_key AND r.kind = batch.kind AND r.key = batch.key
                RETURNING r.occ_key, r.kind, r.key, r.version, r.body, r.due_ns"#
            ),
            scan: format!(
                r#"SELECT occ_key, kind, key, version, body FROM "{s}".records
                    WHERE occ_key = $1 AND kind = $2 AND ($3::text IS NULL OR key COLLATE "C" > $3)
                    ORDER BY key COLLATE "C" LIMIT $4"#
            ),
            occurrences: format!(
                r#"SELECT occ_key FROM "{s}".occurrences WHERE occ_key COLLATE "C" > $1
                    ORDER BY occ_key COLLATE "C" LIMIT $2"#
            ),
            apply: format!(r#"SELECT "{s}".seathold_apply($1::jsonb)"#),
            pending: format!(r#"SELECT id, body::text FROM "{s}".outbox ORDER BY id LIMIT $1"#),
            ack: format!(r#"DELETE FROM "{s}".outbox WHERE id = ANY($1)"#),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert!(valid_schema_name("seathold"));
        assert!(valid_schema_name("t_1a2b"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name("pg_catalog"));
        assert!(!valid_schema_name("Upper"));
        assert!(!valid_schema_name("a\"b"));
        assert!(!valid_schema_name(&"a".repeat(64)));
    }

    #[test]
    fn migrations_are_numbered_without_gaps_up_to_the_schema_version() {
        for v in 1..=SCHEMA_VERSION {
            assert!(migration("x", v).is_some(), "migration {v} missing");
        }
        assert!(migration("x", SCHEMA_VERSION + 1).is_none());
    }
}
