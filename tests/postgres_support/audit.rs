//! The SQL audit of one occurrence, over the store's own tables, shared by the race and
//! crash tests: capacity, counters against the records, every paid intent accounted exactly
//! once, no accounting without a payment, one terminal event per hold, no doubled refund.

use std::collections::{BTreeMap, BTreeSet};

use seathold::store::postgres::PostgresStore;

/// What the audit counted.
#[derive(Debug, Default, Clone)]
#[allow(dead_code)] // read through Debug
pub struct AuditReport {
    pub paid_refs: usize,
    pub confirmed_seats: i64,
    pub refunds: usize,
    pub holds_placed: i64,
    pub events: i64,
}

/// A payment a client meant to send (`intent`), or an answer it got: (actor, ref) and, if
/// the client sent one, the provider's payment id (a different one for an accounted ref is
/// a second payment, accounted on its own).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Paid {
    pub actor: String,
    pub r: String,
    pub provider_ref: Option<String>,
}

/// Audit `occ` in `store`'s schema. `intents` are the paid (actor, ref) any client sent;
/// `answers` every answer a client got for them, as `confirmed <replayed>` or
/// `refund:<reason> <replayed>`. Panics on the first violation. `expect_no_held`: after a
/// final sweep, nothing may be held.
pub async fn audit(
    store: &PostgresStore,
    occ: &str,
    intents: &BTreeSet<Paid>,
    answers: &BTreeMap<Paid, Vec<String>>,
    expect_no_held: bool,
) -> AuditReport {
    let s = store.schema();
    let client = store.pool().get().await.expect("an audit connection");
    let q = |sql: &str| sql.replace("{s}", &format!("\"{s}\""));

    // Capacity, and the counters equal the sums over the booking records.
    let row = client
        .query_one(
            &q("SELECT o.caps[array_position(o.dims, 'total')], o.held[array_position(o.dims, 'total')],
                       o.confirmed[array_position(o.dims, 'total')],
                       (SELECT coalesce(sum((r.body->>'quantity')::bigint), 0)::bigint FROM {s}.records r
                         WHERE r.occ_key = o.occ_key AND r.kind = 'booking' AND r.body->>'state' = 'held'),
                       (SELECT coalesce(sum((r.body->>'quantity')::bigint
                                            - coalesce((r.body->>'cancelled_seats')::bigint, 0)), 0)::bigint
                          FROM {s}.records r
                         WHERE r.occ_key = o.occ_key AND r.kind = 'booking' AND r.body->>'state' = 'confirmed')
                  FROM {s}.occurrences o WHERE o.occ_key = $1"),
            &[&occ],
        )
        .await
        .expect("counters");
    let (cap, held, confirmed, held_rows, confirmed_rows): (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert!(held + confirmed <= cap, "oversold: held {held} + confirmed {confirmed} > capacity {cap}");
    assert_eq!((held, confirmed), (held_rows, confirmed_rows), "counters must equal the sums over the bookings");
    if expect_no_held {
        assert_eq!(held, 0, "after the final sweep nothing is held");
    }

    // Every payment any client sent is accounted exactly once: one payment record (the
    // first under (ref, actor), or the second payment's own under its provider ref); a
    // confirmation has its confirmed booking and the ref's one hold_confirmed event; a refund
    // has exactly one refund_required event for that payment.
    let actors: Vec<String> = intents.iter().map(|p| p.actor.clone()).collect();
    let refs: Vec<String> = intents.iter().map(|p| p.r.clone()).collect();
    let prefs: Vec<Option<String>> = intents.iter().map(|p| p.provider_ref.clone()).collect();
    let rows = client
        .query(
            &q("WITH k AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]) AS k(actor, ref, pref)),
                     rec AS (SELECT k.actor, k.ref, k.pref, p.body FROM k JOIN {s}.records p
                               ON p.occ_key = $1 AND p.kind = 'payment'
                              AND ((p.key = k.ref || chr(31) || k.actor
                                    AND (k.pref IS NULL OR p.body->>'provider_ref' IS NULL
                                         OR p.body->>'provider_ref' = k.pref))
                                   OR p.key = k.ref || chr(31) || k.actor || chr(31) || k.pref))
                SELECT k.actor, k.ref, k.pref,
                       (SELECT count(*) FROM rec WHERE rec.actor = k.actor AND rec.ref = k.ref
                           AND rec.pref IS NOT DISTINCT FROM k.pref),
                       (SELECT min(CASE WHEN rec.body->'outcome' ? 'confirmed' THEN 'confirmed' ELSE 'refund' END)
                          FROM rec WHERE rec.actor = k.actor AND rec.ref = k.ref AND rec.pref IS NOT DISTINCT FROM k.pref),
                       EXISTS (SELECT 1 FROM {s}.records b WHERE b.occ_key = $1 AND b.kind = 'booking' AND b.key = k.ref
                                  AND b.body->>'actor' = k.actor AND b.body->>'state' IN ('confirmed', 'cancelled')),
                       (SELECT count(*) FROM {s}.outbox e WHERE e.occ_key = $1 AND e.body->>'actor' = k.actor
                           AND e.body->>'ref' = k.ref AND e.body->>'type' = 'hold_confirmed'),
                       (SELECT count(*) FROM {s}.outbox e WHERE e.occ_key = $1 AND e.body->>'actor' = k.actor
                           AND e.body->>'ref' = k.ref AND e.body->>'type' = 'refund_required'
                           AND e.body->>'reason' <> 'cancelled'
                           AND (k.pref IS NULL OR e.body->>'provider_ref' = k.pref))
                  FROM k"),
            &[&occ, &actors, &refs, &prefs],
        )
        .await
        .expect("accounting");
    let mut outcome: BTreeMap<Paid, String> = BTreeMap::new();
    let mut refunds = 0;
    let mut confirmations = BTreeSet::new();
    for r in &rows {
        let (a, rf, pref, records, kind, booked, nc, nr): (
            String,
            String,
            Option<String>,
            i64,
            Option<String>,
            bool,
            i64,
            i64,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7));
        assert_eq!(records, 1, "{a}/{rf}/{pref:?}: a payment needs exactly one payment record (lost or doubled)");
        match kind.as_deref() {
            Some("confirmed") => {
                assert!(booked, "{a}/{rf}: confirmed by its record, but its booking is not confirmed");
                assert_eq!(nc, 1, "{a}/{rf}: a confirmation has exactly one hold_confirmed");
                assert!(confirmations.insert((a.clone(), rf.clone())), "{a}/{rf}: two payments confirmed one booking");
            }
            _ => {
                assert_eq!(nr, 1, "{a}/{rf}/{pref:?}: a refund has exactly one refund_required");
                refunds += 1;
            }
        }
        outcome.insert(Paid { actor: a, r: rf, provider_ref: pref }, kind.unwrap_or_default());
    }
    // A booking confirmed by a payment has no refund event for that same payment.
    for (a, rf) in &confirmations {
        let confirming: Vec<&Paid> = outcome
            .iter()
            .filter(|(p, k)| &p.actor == a && &p.r == rf && k.as_str() == "confirmed")
            .map(|(p, _)| p)
            .collect();
        assert_eq!(confirming.len(), 1, "{a}/{rf}: one confirming payment");
    }
    // Nothing accounted that nobody paid.
    let r = client
        .query_one(
            &q("SELECT (SELECT count(*) FROM {s}.records WHERE occ_key = $1 AND kind = 'payment'),
                       (SELECT count(*) FROM {s}.records WHERE occ_key = $1 AND kind = 'booking'
                           AND body->>'state' IN ('confirmed', 'cancelled'))"),
            &[&occ],
        )
        .await
        .expect("totals");
    let (payment_records, confirmed_bookings): (i64, i64) = (r.get(0), r.get(1));
    assert_eq!(payment_records as usize, intents.len(), "payment records for payments nobody sent");
    assert_eq!(confirmed_bookings as usize, confirmations.len(), "confirmed bookings nobody paid for");
    let orphans: i64 = client
        .query_one(
            &q("SELECT count(*) FROM {s}.outbox e
                 WHERE e.occ_key = $1 AND (
                       (e.body->>'type' = 'refund_required' AND e.body->>'reason' <> 'cancelled'
                        AND NOT EXISTS (SELECT 1 FROM {s}.records p WHERE p.occ_key = e.occ_key AND p.kind = 'payment'
                             AND p.body->>'actor' = e.body->>'actor' AND p.body->>'ref' = e.body->>'ref'
                             AND p.body->'outcome' ? 'refund'))
                    OR (e.body->>'type' = 'hold_confirmed'
                        AND NOT EXISTS (SELECT 1 FROM {s}.records b WHERE b.occ_key = e.occ_key AND b.kind = 'booking'
                             AND b.key = e.body->>'ref' AND b.body->>'state' IN ('confirmed', 'cancelled'))))"),
            &[&occ],
        )
        .await
        .expect("orphans")
        .get(0);
    assert_eq!(orphans, 0, "payment events without their record");

    // Every placed hold has one hold_placed and at most one terminal event (exactly one once
    // nothing is held); no refund signal given twice.
    let bad: Vec<(String, i64, i64)> = client
        .query(
            &q("SELECT e.body->>'ref',
                       count(*) FILTER (WHERE e.body->>'type' = 'hold_placed'),
                       count(*) FILTER (WHERE e.body->>'type' IN ('hold_confirmed', 'hold_released', 'hold_expired'))
                  FROM {s}.outbox e WHERE e.occ_key = $1 AND e.body->>'type' LIKE 'hold_%'
                 GROUP BY e.body->>'ref'
                HAVING count(*) FILTER (WHERE e.body->>'type' = 'hold_placed') <> 1
                    OR count(*) FILTER (WHERE e.body->>'type' IN ('hold_confirmed', 'hold_released', 'hold_expired')) > 1"),
            &[&occ],
        )
        .await
        .expect("terminal events")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(bad.is_empty(), "holds without exactly one hold_placed, or with two terminal events: {bad:?}");
    if expect_no_held {
        let open: i64 = client
            .query_one(
                &q("SELECT count(*) FROM {s}.records b WHERE b.occ_key = $1 AND b.kind = 'booking'
                     AND NOT EXISTS (SELECT 1 FROM {s}.outbox e WHERE e.occ_key = $1 AND e.body->>'ref' = b.key
                          AND e.body->>'type' IN ('hold_confirmed', 'hold_released', 'hold_expired'))"),
                &[&occ],
            )
            .await
            .expect("open holds")
            .get(0);
        assert_eq!(open, 0, "holds that never ended in a terminal event");
    }
    let dup_refunds: i64 = client
        .query_one(
            &q("SELECT count(*) FROM (SELECT 1 FROM {s}.outbox WHERE occ_key = $1 AND body->>'type' = 'refund_required'
                 GROUP BY body->>'actor', body->>'ref', body->>'provider_ref', body->>'reason' HAVING count(*) > 1) d"),
            &[&occ],
        )
        .await
        .expect("refunds")
        .get(0);
    assert_eq!(dup_refunds, 0, "a refund signal was given twice");
    let (holds_placed, events): (i64, i64) = {
        let r = client
            .query_one(
                &q("SELECT count(*) FILTER (WHERE body->>'type' = 'hold_placed'), count(*) FROM {s}.outbox WHERE occ_key = $1"),
                &[&occ],
            )
            .await
            .expect("events");
        (r.get(0), r.get(1))
    };
    let bookings: i64 = client
        .query_one(&q("SELECT count(*) FROM {s}.records WHERE occ_key = $1 AND kind = 'booking'"), &[&occ])
        .await
        .expect("bookings")
        .get(0);
    assert_eq!(holds_placed, bookings, "every booking record was placed once, with its event");

    // Every answer a client got agrees with the accounting; at most one was not a replay.
    for (key, got) in answers {
        let Some(kind) = outcome.get(key) else { panic!("{key:?}: answered, but never sent") };
        let fresh = got.iter().filter(|a| a.ends_with(" false")).count();
        assert!(fresh <= 1, "{key:?}: answered as new more than once: {got:?}");
        for a in got {
            let status = a.split(' ').next().unwrap_or_default();
            let agrees = if kind == "confirmed" { status == "confirmed" } else { status.starts_with("refund:") };
            assert!(agrees, "{key:?}: answer {a} disagrees with the record ({kind})");
        }
        let statuses: BTreeSet<&str> = got.iter().map(|a| a.split(' ').next().unwrap_or_default()).collect();
        assert_eq!(statuses.len(), 1, "{key:?}: different answers to one payment: {got:?}");
    }
    AuditReport { paid_refs: intents.len(), confirmed_seats: confirmed, refunds, holds_placed, events }
}
