//! The schema `migrate()` applies, and the SQL text of every statement the store sends, all
//! qualified with the store's schema name.
//!
//! Time is stored as `bigint` nanoseconds since the Unix epoch (not `timestamptz`, which keeps
//! microseconds): a hold's `expires_at` must come back exactly as the rules wrote it, or a
//! hold lapsing between two microseconds would be lapsed to the store and live to the rules.
//! The range is 1677-09-21 to 2262-04-11, the same as [`ManualClock`](crate::ManualClock)'s.
//! Each table has a `*_time` view column for people (see [`schema_sql`]).

/// The SQLSTATEs `seathold_commit` raises when a guard fails (class `SH`, which PostgreSQL
/// leaves to applications). The whole transaction is rolled back.
pub(super) const SQLSTATE_CAPACITY: &str = "SH001";
pub(super) const SQLSTATE_HOLD_CHANGED: &str = "SH002";
pub(super) const SQLSTATE_SETTLEMENT_EXISTS: &str = "SH003";
pub(super) const SQLSTATE_UNKNOWN_OCCURRENCE: &str = "SH004";

/// How many parameters `seathold_commit` takes.
pub(super) const COMMIT_PARAMS: usize = 40;

/// Bumped when the schema changes; `migrate()` records it.
pub(super) const SCHEMA_VERSION: i32 = 1;

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

/// The DDL, idempotent: every object is created if absent, and the commit function is
/// replaced. Run in one transaction by `migrate()`, under an advisory lock so that several
/// service instances migrating at once do not trip over each other.
pub(super) fn schema_sql(s: &str) -> String {
    format!(
        r#"
CREATE SCHEMA IF NOT EXISTS "{s}";

CREATE TABLE IF NOT EXISTS "{s}".seathold_meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    schema_version integer NOT NULL
);

-- One row per occurrence: its configuration and the seat counters. The only row every
-- hold-writing commit of an occurrence locks (first), by the guarded UPDATE itself.
CREATE TABLE IF NOT EXISTS "{s}".occurrences (
    occ_key text PRIMARY KEY,
    capacity bigint NOT NULL CHECK (capacity >= 0),
    hold_ttl_secs bigint NOT NULL CHECK (hold_ttl_secs > 0),
    held bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    confirmed bigint NOT NULL DEFAULT 0 CHECK (confirmed >= 0)
);

-- One row per (occurrence, actor): the actor's current hold. `version` is the
-- compare-and-set guard; the sweep lease (`sweep_*`) is not part of it.
CREATE TABLE IF NOT EXISTS "{s}".holds (
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

-- The expiry index: only held holds are in it, so lapsed ones are found without scanning
-- live or ended ones. The first serves the sweep across occurrences, the second one
-- occurrence's lapsed holds and lapsed seats.
CREATE INDEX IF NOT EXISTS holds_held_expiry ON "{s}".holds (expires_at_ns) WHERE state = 'held';
CREATE INDEX IF NOT EXISTS holds_held_occ_expiry ON "{s}".holds (occ_key, expires_at_ns)
    INCLUDE (quantity) WHERE state = 'held';

-- One row per paid result accounted, insert-if-absent: what answers redeliveries.
CREATE TABLE IF NOT EXISTS "{s}".settlements (
    occ_key text NOT NULL,
    actor text NOT NULL,
    hold_ref text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('confirmed', 'refund')),
    reason text,
    amount text,
    currency text,
    provider_ref text,
    -- The refund's own key, only where it differs from the record's.
    refund_occ_key text,
    refund_actor text,
    refund_ref text,
    settled_at_ns bigint NOT NULL,
    PRIMARY KEY (occ_key, actor, hold_ref)
);

-- The outbox: ids from a sequence, taken while the occurrence row is locked, so within one
-- occurrence they increase in commit order.
CREATE TABLE IF NOT EXISTS "{s}".outbox (
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

-- Nanoseconds to timestamptz, for people reading the tables.
CREATE OR REPLACE FUNCTION "{s}".ns_time(ns bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_timestamp(ns / 1000000000) + make_interval(secs => (ns % 1000000000) / 1e9::float8) $$;

CREATE OR REPLACE VIEW "{s}".holds_readable AS
    SELECT occ_key, actor, version, hold_ref, quantity, amount, currency, attempt, state,
           "{s}".ns_time(placed_at_ns) AS placed_at, "{s}".ns_time(expires_at_ns) AS expires_at,
           "{s}".ns_time(ended_at_ns) AS ended_at, sweep_claimed_by, sweep_claimed_until
    FROM "{s}".holds;

{commit_fn}

INSERT INTO "{s}".seathold_meta (singleton, schema_version) VALUES (true, {SCHEMA_VERSION})
    ON CONFLICT (singleton) DO UPDATE SET schema_version = EXCLUDED.schema_version;
"#,
        commit_fn = commit_function_sql(s),
    )
}

/// `seathold_commit`: one operation's whole commit in one statement, so one round trip.
///
/// Order of work, which is also the lock order (so two commits never deadlock):
/// 1. the occurrence row, by the guarded counter UPDATE (or, for a commit that only
///    configures, an upsert; for one that only appends events, a row lock, so outbox ids of
///    one occurrence follow commit order);
/// 2. the hold rows, in actor order (`COLLATE "C"`), each by a write guarded on its version
///    (UPDATE ... WHERE version = expected, or INSERT ... ON CONFLICT DO NOTHING);
/// 3. the settlement record, insert-if-absent;
/// 4. the events.
///
/// A failed guard RAISEs an `SH00x` SQLSTATE: the statement, and so the whole transaction,
/// rolls back. Guards are checked in the order `MemoryStore` checks them (counters, then
/// holds in commit order, then the settlement record) so both stores name the same conflict.
/// `p_fail`/`p_fail_actor` carry a conflict the caller found without the database (a hold
/// written twice, or for another occurrence); it is raised after the holds before it were
/// checked, again as `MemoryStore` would.
fn commit_function_sql(s: &str) -> String {
    format!(
        r#"
CREATE OR REPLACE FUNCTION "{s}".seathold_commit(
    p_occ text, p_capacity bigint, p_ttl bigint, p_dh bigint, p_dc bigint,
    h_actor text[], h_expected bigint[], h_ref text[], h_qty bigint[], h_amount text[],
    h_currency text[], h_attempt bigint[], h_placed bigint[], h_expires bigint[],
    h_state text[], h_ended bigint[],
    p_fail text, p_fail_actor text,
    s_actor text, s_ref text, s_outcome text, s_reason text, s_amount text, s_currency text,
    s_provider_ref text, s_refund_occ text, s_refund_actor text, s_refund_ref text,
    s_settled bigint,
    e_kind text[], e_occ text[], e_actor text[], e_ref text[], e_at bigint[], e_qty bigint[],
    e_amount text[], e_currency text[], e_expires bigint[], e_reason text[],
    e_provider_ref text[]
) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    n integer := coalesce(cardinality(h_actor), 0);
    i integer;
    fail_idx integer;
BEGIN
    -- 1. The occurrence row.
    IF p_dh <> 0 OR p_dc <> 0 OR n > 0 THEN
        UPDATE "{s}".occurrences
           SET held = held + p_dh,
               confirmed = confirmed + p_dc,
               capacity = coalesce(p_capacity, capacity),
               hold_ttl_secs = coalesce(p_ttl, hold_ttl_secs)
         WHERE occ_key = p_occ
           AND held + p_dh >= 0
           AND confirmed + p_dc >= 0
           AND (p_dh + p_dc <= 0 OR held + confirmed + p_dh + p_dc <= coalesce(p_capacity, capacity));
        IF NOT FOUND THEN
            PERFORM 1 FROM "{s}".occurrences
             WHERE occ_key = p_occ AND held + p_dh >= 0 AND confirmed + p_dc >= 0;
            IF FOUND THEN
                RAISE EXCEPTION USING ERRCODE = '{SQLSTATE_CAPACITY}', MESSAGE = 'capacity guard failed';
            END IF;
            RAISE EXCEPTION USING ERRCODE = '{SQLSTATE_UNKNOWN_OCCURRENCE}',
                MESSAGE = 'occurrence missing or counters inconsistent';
        END IF;
    ELSIF p_capacity IS NOT NULL THEN
        INSERT INTO "{s}".occurrences (occ_key, capacity, hold_ttl_secs)
             VALUES (p_occ, p_capacity, p_ttl)
        ON CONFLICT (occ_key) DO UPDATE
               SET capacity = EXCLUDED.capacity, hold_ttl_secs = EXCLUDED.hold_ttl_secs;
    ELSIF coalesce(cardinality(e_kind), 0) > 0 THEN
        PERFORM 1 FROM "{s}".occurrences WHERE occ_key = p_occ FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            -- No row to lock (a refund signal for an unknown occurrence): serialize the
            -- outbox writes of this one key for this transaction only.
            PERFORM pg_advisory_xact_lock(hashtextextended('{s}.' || p_occ, 7));
        END IF;
    END IF;

    -- 2. The hold rows, in actor order; report the first failure in commit order.
    FOR i IN
        SELECT t.ord FROM unnest(h_actor) WITH ORDINALITY AS t(actor, ord) ORDER BY t.actor COLLATE "C"
    LOOP
        IF h_expected[i] IS NULL THEN
            INSERT INTO "{s}".holds (occ_key, actor, version, hold_ref, quantity, amount, currency,
                                     attempt, placed_at_ns, expires_at_ns, state, ended_at_ns)
                 VALUES (p_occ, h_actor[i], 1, h_ref[i], h_qty[i], h_amount[i], h_currency[i],
                         h_attempt[i], h_placed[i], h_expires[i], h_state[i], h_ended[i])
            ON CONFLICT (occ_key, actor) DO NOTHING;
        ELSE
            UPDATE "{s}".holds
               SET version = version + 1, hold_ref = h_ref[i], quantity = h_qty[i],
                   amount = h_amount[i], currency = h_currency[i], attempt = h_attempt[i],
                   placed_at_ns = h_placed[i], expires_at_ns = h_expires[i], state = h_state[i],
                   ended_at_ns = h_ended[i], sweep_claimed_by = NULL, sweep_claimed_until = NULL
             WHERE occ_key = p_occ AND actor = h_actor[i] AND version = h_expected[i];
        END IF;
        IF NOT FOUND AND (fail_idx IS NULL OR i < fail_idx) THEN
            fail_idx := i;
        END IF;
    END LOOP;
    IF fail_idx IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '{SQLSTATE_HOLD_CHANGED}', MESSAGE = 'hold changed',
            DETAIL = h_actor[fail_idx];
    END IF;
    IF p_fail IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_fail, MESSAGE = 'conflict', DETAIL = coalesce(p_fail_actor, '');
    END IF;

    -- 3. The settlement record, insert-if-absent.
    IF s_actor IS NOT NULL THEN
        INSERT INTO "{s}".settlements (occ_key, actor, hold_ref, outcome, reason, amount, currency,
                                       provider_ref, refund_occ_key, refund_actor, refund_ref,
                                       settled_at_ns)
             VALUES (p_occ, s_actor, s_ref, s_outcome, s_reason, s_amount, s_currency,
                     s_provider_ref, s_refund_occ, s_refund_actor, s_refund_ref, s_settled)
        ON CONFLICT (occ_key, actor, hold_ref) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = '{SQLSTATE_SETTLEMENT_EXISTS}',
                MESSAGE = 'settlement already recorded';
        END IF;
    END IF;

    -- 4. The events, ids in order.
    IF coalesce(cardinality(e_kind), 0) > 0 THEN
        INSERT INTO "{s}".outbox (kind, occ_key, actor, hold_ref, at_ns, quantity, amount, currency,
                                  expires_at_ns, reason, provider_ref)
        SELECT kind, occ, actor, ref, at_ns, qty, amount, currency, expires, reason, provider_ref
          FROM unnest(e_kind, e_occ, e_actor, e_ref, e_at, e_qty, e_amount, e_currency, e_expires,
                      e_reason, e_provider_ref)
               WITH ORDINALITY AS t(kind, occ, actor, ref, at_ns, qty, amount, currency, expires,
                                    reason, provider_ref, ord)
         ORDER BY ord;
    END IF;
END
$fn$;
"#
    )
}

/// Column list of a hold row, in the order `codec::hold_from_row` reads it from `offset`.
pub(super) const HOLD_COLS: &str = "h.actor, h.version, h.hold_ref, h.quantity, h.amount, h.currency, h.attempt, \
     h.placed_at_ns, h.expires_at_ns, h.state, h.ended_at_ns";

/// The statements the store prepares (once per pooled connection).
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) load: String,
    pub(super) lapsed_of_occ: String,
    pub(super) lapsed_claim: String,
    pub(super) lapsed_seats: String,
    pub(super) commit: String,
    pub(super) pending: String,
    pub(super) ack: String,
}

impl Statements {
    pub(super) fn new(s: &str) -> Self {
        let params: Vec<String> = (1..=COMMIT_PARAMS).map(|i| format!("${i}")).collect();
        Self {
            // One row always (the VALUES), whatever exists: settlement records and events can
            // exist for an occurrence that does not (a refund signal for an unknown key).
            load: format!(
                r#"SELECT o.capacity, o.hold_ttl_secs, o.held, o.confirmed, {HOLD_COLS},
                          st.outcome, st.reason, st.amount, st.currency, st.provider_ref,
                          st.refund_occ_key, st.refund_actor, st.refund_ref, st.settled_at_ns
                     FROM (VALUES (1)) AS one(x)
                     LEFT JOIN "{s}".occurrences o ON o.occ_key = $1
                     LEFT JOIN "{s}".holds h ON h.occ_key = $1 AND h.actor = $2
                     LEFT JOIN "{s}".settlements st
                            ON st.occ_key = $1 AND st.actor = $2 AND st.hold_ref = $3"#
            ),
            lapsed_of_occ: format!(
                r#"SELECT h.occ_key, {HOLD_COLS} FROM "{s}".holds h
                    WHERE h.occ_key = $1 AND h.state = 'held' AND h.expires_at_ns <= $2
                    ORDER BY h.expires_at_ns, h.actor COLLATE "C" LIMIT $3"#
            ),
            // The sweep's claim: a batch nobody else holds a lease on, rows locked by others
            // skipped, leased to this store for a short while. A store sees its own claims
            // again (a retried sweep after an error finds what it had), other stores do not.
            lapsed_claim: format!(
                r#"WITH batch AS (
                       SELECT h.occ_key, h.actor FROM "{s}".holds h
                        WHERE h.state = 'held' AND h.expires_at_ns <= $1
                          AND (h.sweep_claimed_until IS NULL OR h.sweep_claimed_until < clock_timestamp()
                               OR h.sweep_claimed_by = $3)
                        ORDER BY h.expires_at_ns
                        LIMIT $2
                        FOR UPDATE SKIP LOCKED)
                   UPDATE "{s}".holds h
                      SET sweep_claimed_by = $3, sweep_claimed_until = clock_timestamp() + $4::float8 * interval '1 millisecond'
                     FROM batch
                    WHERE h.occ_key = batch.occ_key AND h.actor = batch.actor
                RETURNING h.occ_key, {HOLD_COLS}"#
            ),
            lapsed_seats: format!(
                r#"SELECT coalesce(sum(quantity), 0)::bigint FROM "{s}".holds
                    WHERE occ_key = $1 AND state = 'held' AND expires_at_ns <= $2"#
            ),
            commit: format!(r#"SELECT "{s}".seathold_commit({})"#, params.join(", ")),
            pending: format!(
                r#"SELECT id, kind, occ_key, actor, hold_ref, at_ns, quantity, amount, currency,
                          expires_at_ns, reason, provider_ref
                     FROM "{s}".outbox ORDER BY id LIMIT $1"#
            ),
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
    fn commit_statement_passes_every_parameter() {
        let sql = commit_function_sql("x");
        let head = sql.split(") RETURNS").next().unwrap_or_default();
        let declared = head.matches(" text").count() + head.matches(" bigint").count();
        assert_eq!(declared, COMMIT_PARAMS);
        assert!(Statements::new("x").commit.contains(&format!("${COMMIT_PARAMS})")));
    }
}
