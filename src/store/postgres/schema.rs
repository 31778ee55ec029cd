//! The schema: numbered migrations, the commit function, and the SQL text of every statement
//! the store sends, all qualified with the store's schema name.
//!
//! Time is stored as `bigint` nanoseconds since the Unix epoch (not `timestamptz`, which keeps
//! microseconds): a hold's expiry must come back exactly as the rules wrote it, or a hold
//! lapsing between two microseconds would be lapsed to the store and live to the rules.
//!
//! # Tables (schema version 5)
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

/// The schema version this code writes; `migrate()` brings a database up to it, and refuses a
/// database whose version is newer.
pub(super) const SCHEMA_VERSION: i32 = 5;

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
        // Version 5 changes no table: the commit rules left the database. Commits are plain
        // statements deciding with the crate's own `check_commit` under the occurrence's row
        // lock, and the PL/pgSQL function that repeated those rules is dropped. The number
        // keeps older code, which refuses a newer schema, from reinstalling and calling it.
        5 => Some(format!(r#"DROP FUNCTION IF EXISTS "{s}".seathold_apply(jsonb);"#)),
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
    pub(super) lock: String,
    pub(super) advisory: String,
    pub(super) versions: String,
    pub(super) write: String,
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
            // A batch's first statement: its occurrences' rows ($1, with the config version
            // the store has parsed for each in $2), locked in key order until the transaction
            // ends, each with its configuration only if not at that version. Rows are locked
            // as they leave the sort, so every batch takes them in the same order.
            lock: format!(
                r#"SELECT o.occ_key, o.config_version,
                          CASE WHEN o.config_version = q.known THEN NULL ELSE o.config END,
                          o.dims, o.held, o.confirmed, o.blocked, o.offered
                     FROM "{s}".occurrences o
                     JOIN unnest($1::text[], $2::bigint[]) AS q(occ_key, known) ON o.occ_key = q.occ_key
                    ORDER BY o.occ_key COLLATE "C"
                      FOR NO KEY UPDATE OF o"#
            ),
            // For an occurrence without a row: its key's lock, so a create and any other
            // commit of a missing occurrence take turns.
            advisory: format!(r#"SELECT pg_advisory_xact_lock(hashtextextended('{s}.' || $1::text, 7))"#),
            // The guarded records' versions by position in the (occurrence, kind, key) triples
            // asked for (one primary-key probe each), and $4 fresh versions from the sequence
            // (position NULL).
            versions: format!(
                r#"SELECT q.i, r.version
                     FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS q(occ_key, kind, key, i)
                     CROSS JOIN LATERAL (SELECT r.version FROM "{s}".records r
                                          WHERE r.occ_key = q.occ_key AND r.kind = q.kind AND r.key = q.key
                                          LIMIT 1) r
                   UNION ALL
                   SELECT NULL, nextval('"{s}".record_version') FROM generate_series(1, $4::bigint)"#
            ),
            // Everything a batch leaves, in one statement: the occurrences ($2 each 'create',
            // 'update' with its configuration, or 'counters' without; dimensions, caps and
            // counters as array literals, as their lengths differ), the puts (each at its
            // version, the expiry index set, the sweep's lease cleared), the deletes, and the
            // events (ids drawn in order).
            write: format!(
                r#"WITH o AS (
                       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                                            $7::text[], $8::text[], $9::text[], $10::text[])
                              AS o(occ_key, op, config, version, dims, caps, held, confirmed, blocked, offered)
                   ), created AS (
                       INSERT INTO "{s}".occurrences
                              (occ_key, config, config_version, dims, caps, held, confirmed, blocked, offered)
                       SELECT occ_key, config::jsonb, version, dims::text[], caps::bigint[], held::bigint[],
                              confirmed::bigint[], blocked::bigint[], offered::bigint[]
                         FROM o WHERE op = 'create'
                   ), updated AS (
                       UPDATE "{s}".occurrences t
                          SET config = coalesce(o.config::jsonb, t.config), config_version = o.version,
                              dims = o.dims::text[], caps = o.caps::bigint[], held = o.held::bigint[],
                              confirmed = o.confirmed::bigint[], blocked = o.blocked::bigint[],
                              offered = o.offered::bigint[]
                         FROM o
                        WHERE t.occ_key = o.occ_key AND o.op IN ('update', 'counters')
                   ), put AS (
                       INSERT INTO "{s}".records AS r (occ_key, kind, key, version, body, due_ns)
                       SELECT w.occ_key, w.kind, w.key, w.version, w.body::jsonb, w.due
                         FROM unnest($11::text[], $12::text[], $13::text[], $14::bigint[], $15::text[], $16::bigint[])
                              AS w(occ_key, kind, key, version, body, due)
                       ON CONFLICT (occ_key, kind, key) DO UPDATE
                          SET version = EXCLUDED.version, body = EXCLUDED.body, due_ns = EXCLUDED.due_ns,
                              sweep_claimed_by = NULL, sweep_claimed_until = NULL
                   ), deleted AS (
                       DELETE FROM "{s}".records r
                        USING unnest($17::text[], $18::text[], $19::text[]) AS d(occ_key, kind, key)
                        WHERE r.occ_key = d.occ_key AND r.kind = d.kind AND r.key = d.key
                   )
                   INSERT INTO "{s}".outbox (occ_key, body)
                   SELECT e.occ_key, e.body::jsonb
                     FROM unnest($20::text[], $21::text[]) WITH ORDINALITY AS e(occ_key, body, ord)
                    ORDER BY e.ord"#
            ),
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
