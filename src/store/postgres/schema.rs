//! The schema `migrate()` applies, and the SQL text of every statement the store sends, all
//! qualified with the store's schema name.
//!
//! Time is stored as `bigint` nanoseconds since the Unix epoch (not `timestamptz`, which keeps
//! microseconds): a hold's `expires_at` must come back exactly as the rules wrote it, or a
//! hold lapsing between two microseconds would be lapsed to the store and live to the rules.
//! The range is 1677-09-21 to 2262-04-11, the same as [`ManualClock`](crate::ManualClock)'s.
//! Each table has a `*_time` view column for people (see [`schema_sql`]).

/// The SQLSTATE-style codes `seathold_commit` answers for a failed guard (class `SH`, which
/// PostgreSQL leaves to applications).
pub(super) const SQLSTATE_CAPACITY: &str = "SH001";
pub(super) const SQLSTATE_HOLD_CHANGED: &str = "SH002";
pub(super) const SQLSTATE_SETTLEMENT_EXISTS: &str = "SH003";
pub(super) const SQLSTATE_UNKNOWN_OCCURRENCE: &str = "SH004";

/// How many parameters `seathold_commit` takes.
pub(super) const COMMIT_PARAMS: usize = 44;

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

/// `seathold_commit`: a batch of commits (one operation's whole commit each) in one
/// statement, so one round trip and one transaction — one WAL flush for all of them.
///
/// Why a batch: every commit of an occurrence writes its counters row, and a row lock is held
/// until the transaction's WAL flush; one commit per transaction would cap a hot occurrence
/// at one commit per flush. The store combines the commits waiting at the same moment into
/// one call (see `PostgresStore::commit`); a lone commit is a batch of one.
///
/// Each commit of the batch is atomic on its own, without subtransactions: all its guards are
/// checked first — on rows it has locked — and only then is anything written. Per commit,
/// the order of work, which is also the lock order (so two batches never deadlock; commits
/// come sorted by `occ_key`, and every lock of an occurrence is taken under its row lock):
/// 1. the occurrence row, `FOR NO KEY UPDATE` (for a commit that only configures, an
///    upsert; for an occurrence that does not exist, a transaction-scoped advisory lock on
///    its key, so its outbox ids and settlement records are still written one at a time);
/// 2. the hold rows, in actor order (`COLLATE "C"`), `FOR UPDATE`;
/// 3. then the guards, in the order `MemoryStore` checks them — counters, holds in commit
///    order, the caller's pure conflict (`c_fail`: a hold written twice, or for another
///    occurrence), the settlement record — and, if all pass, the writes: counters, holds
///    (version + 1), the settlement record, the events (ids in order).
///
/// Returns one code per commit: `''` when applied, else the conflict's SQLSTATE (`SH00x`),
/// followed by `:actor` for a hold conflict. A write that fails although its guard passed
/// (impossible while every writer follows this lock order) RAISEs that SQLSTATE instead,
/// rolling the whole batch back; the store then retries the batch's commits one by one.
fn commit_function_sql(s: &str) -> String {
    format!(
        r#"
CREATE OR REPLACE FUNCTION "{s}".seathold_commit(
    c_occ text[], c_capacity bigint[], c_ttl bigint[], c_dh bigint[], c_dc bigint[],
    c_fail text[], c_fail_actor text[],
    c_h_from bigint[], c_h_to bigint[], c_e_from bigint[], c_e_to bigint[],
    s_actor text[], s_ref text[], s_outcome text[], s_reason text[], s_amount text[], s_currency text[],
    s_provider_ref text[], s_refund_occ text[], s_refund_actor text[], s_refund_ref text[], s_settled bigint[],
    h_actor text[], h_expected bigint[], h_ref text[], h_qty bigint[], h_amount text[],
    h_currency text[], h_attempt bigint[], h_placed bigint[], h_expires bigint[],
    h_state text[], h_ended bigint[],
    e_kind text[], e_occ text[], e_actor text[], e_ref text[], e_at bigint[], e_qty bigint[],
    e_amount text[], e_currency text[], e_expires bigint[], e_reason text[],
    e_provider_ref text[]
) RETURNS text[] LANGUAGE plpgsql AS $fn$
DECLARE
    nc integer := cardinality(c_occ);
    codes text[] := array_fill(''::text, ARRAY[cardinality(c_occ)]);
    c integer;
    i integer;
    k text;
    hf integer;
    ht integer;
    ef integer;
    et integer;
    touch boolean;
    found_occ boolean;
    v_cap bigint;
    v_held bigint;
    v_conf bigint;
    new_cap bigint;
    new_held bigint;
    new_conf bigint;
    cur bigint;
    fail_idx integer;
    fail_code text;
    fail_detail text;
BEGIN
    FOR c IN 1..nc LOOP
        k := c_occ[c];
        hf := c_h_from[c]; ht := c_h_to[c];
        ef := c_e_from[c]; et := c_e_to[c];
        touch := c_dh[c] <> 0 OR c_dc[c] <> 0 OR ht >= hf;
        fail_code := NULL;
        fail_detail := NULL;
        found_occ := false;

        -- 1. The occurrence row (or, for an unknown occurrence, its key).
        SELECT capacity, held, confirmed INTO v_cap, v_held, v_conf
          FROM "{s}".occurrences WHERE occ_key = k FOR NO KEY UPDATE;
        found_occ := FOUND;
        IF touch THEN
            IF NOT found_occ THEN
                fail_code := '{SQLSTATE_UNKNOWN_OCCURRENCE}';
            ELSE
                new_cap := coalesce(c_capacity[c], v_cap);
                new_held := v_held + c_dh[c];
                new_conf := v_conf + c_dc[c];
                IF new_held < 0 OR new_conf < 0 THEN
                    fail_code := '{SQLSTATE_UNKNOWN_OCCURRENCE}';
                -- Commit::admits_seats: a positive net change, or a hold placed (written
                -- 'held'), even when lapsed holds it replaces make the net change <= 0.
                ELSIF (c_dh[c] + c_dc[c] > 0 OR (ht >= hf AND 'held' = ANY (h_state[hf:ht])))
                      AND new_held + new_conf > new_cap THEN
                    fail_code := '{SQLSTATE_CAPACITY}';
                END IF;
            END IF;
        ELSIF NOT found_occ AND c_capacity[c] IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('{s}.' || k, 7));
        END IF;

        -- 2. The hold rows, locked in actor order; the first failure in commit order counts.
        IF fail_code IS NULL AND ht >= hf THEN
            fail_idx := NULL;
            FOR i IN
                SELECT hf - 1 + t.ord FROM unnest(h_actor[hf:ht]) WITH ORDINALITY AS t(actor, ord)
                 ORDER BY t.actor COLLATE "C"
            LOOP
                SELECT version INTO cur FROM "{s}".holds WHERE occ_key = k AND actor = h_actor[i] FOR UPDATE;
                IF NOT FOUND THEN
                    cur := NULL;
                END IF;
                IF cur IS DISTINCT FROM h_expected[i] AND (fail_idx IS NULL OR i < fail_idx) THEN
                    fail_idx := i;
                END IF;
            END LOOP;
            IF fail_idx IS NOT NULL THEN
                fail_code := '{SQLSTATE_HOLD_CHANGED}';
                fail_detail := h_actor[fail_idx];
            END IF;
        END IF;
        IF fail_code IS NULL AND c_fail[c] IS NOT NULL THEN
            fail_code := c_fail[c];
            fail_detail := c_fail_actor[c];
        END IF;

        -- 3. The settlement record must not exist.
        IF fail_code IS NULL AND s_actor[c] IS NOT NULL THEN
            PERFORM 1 FROM "{s}".settlements WHERE occ_key = k AND actor = s_actor[c] AND hold_ref = s_ref[c];
            IF FOUND THEN
                fail_code := '{SQLSTATE_SETTLEMENT_EXISTS}';
            END IF;
        END IF;

        IF fail_code IS NOT NULL THEN
            codes[c] := fail_code || coalesce(':' || fail_detail, '');
            CONTINUE;
        END IF;

        -- Every guard passed: write.
        IF touch THEN
            UPDATE "{s}".occurrences
               SET held = new_held, confirmed = new_conf, capacity = new_cap,
                   hold_ttl_secs = coalesce(c_ttl[c], hold_ttl_secs)
             WHERE occ_key = k;
        ELSIF c_capacity[c] IS NOT NULL THEN
            INSERT INTO "{s}".occurrences (occ_key, capacity, hold_ttl_secs)
                 VALUES (k, c_capacity[c], c_ttl[c])
            ON CONFLICT (occ_key) DO UPDATE
                   SET capacity = EXCLUDED.capacity, hold_ttl_secs = EXCLUDED.hold_ttl_secs;
        END IF;
        FOR i IN hf..ht LOOP
            IF h_expected[i] IS NULL THEN
                INSERT INTO "{s}".holds (occ_key, actor, version, hold_ref, quantity, amount, currency,
                                         attempt, placed_at_ns, expires_at_ns, state, ended_at_ns)
                     VALUES (k, h_actor[i], 1, h_ref[i], h_qty[i], h_amount[i], h_currency[i],
                             h_attempt[i], h_placed[i], h_expires[i], h_state[i], h_ended[i])
                ON CONFLICT (occ_key, actor) DO NOTHING;
            ELSE
                UPDATE "{s}".holds
                   SET version = version + 1, hold_ref = h_ref[i], quantity = h_qty[i],
                       amount = h_amount[i], currency = h_currency[i], attempt = h_attempt[i],
                       placed_at_ns = h_placed[i], expires_at_ns = h_expires[i], state = h_state[i],
                       ended_at_ns = h_ended[i], sweep_claimed_by = NULL, sweep_claimed_until = NULL
                 WHERE occ_key = k AND actor = h_actor[i] AND version = h_expected[i];
            END IF;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = '{SQLSTATE_HOLD_CHANGED}', MESSAGE = 'hold changed',
                    DETAIL = h_actor[i];
            END IF;
        END LOOP;
        IF s_actor[c] IS NOT NULL THEN
            INSERT INTO "{s}".settlements (occ_key, actor, hold_ref, outcome, reason, amount, currency,
                                           provider_ref, refund_occ_key, refund_actor, refund_ref,
                                           settled_at_ns)
                 VALUES (k, s_actor[c], s_ref[c], s_outcome[c], s_reason[c], s_amount[c], s_currency[c],
                         s_provider_ref[c], s_refund_occ[c], s_refund_actor[c], s_refund_ref[c], s_settled[c])
            ON CONFLICT (occ_key, actor, hold_ref) DO NOTHING;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = '{SQLSTATE_SETTLEMENT_EXISTS}',
                    MESSAGE = 'settlement already recorded';
            END IF;
        END IF;
        IF et >= ef THEN
            INSERT INTO "{s}".outbox (kind, occ_key, actor, hold_ref, at_ns, quantity, amount, currency,
                                      expires_at_ns, reason, provider_ref)
            SELECT t.kind, t.occ, t.actor, t.ref, t.at_ns, t.qty, t.amount, t.currency, t.expires, t.reason,
                   t.provider_ref
              FROM unnest(e_kind[ef:et], e_occ[ef:et], e_actor[ef:et], e_ref[ef:et], e_at[ef:et],
                          e_qty[ef:et], e_amount[ef:et], e_currency[ef:et], e_expires[ef:et],
                          e_reason[ef:et], e_provider_ref[ef:et])
                   WITH ORDINALITY AS t(kind, occ, actor, ref, at_ns, qty, amount, currency, expires,
                                        reason, provider_ref, ord)
             ORDER BY t.ord;
        END IF;
    END LOOP;
    RETURN codes;
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
