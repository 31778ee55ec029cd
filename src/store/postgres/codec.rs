//! Between Rust values and rows: timestamps as nanoseconds, amounts as their decimal text,
//! and the parameter arrays of `seathold_commit`.

use std::str::FromStr;

use rust_decimal::Decimal;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::schema::{COMMIT_PARAMS, SQLSTATE_HOLD_CHANGED, SQLSTATE_UNKNOWN_OCCURRENCE};
use crate::contract::{
    ActorId, Amount, Currency, DomainEvent, EventId, EventKind, Money, NoHoldReason, OccKey, OutboxEvent, ProviderRef,
    Ref,
};
use crate::holds::{Hold, HoldState, Occurrence, OccurrenceConfig};
use crate::settlement::{PaidOutcome, Refund, SettlementRecord};
use crate::store::{Commit, StoreError, Versioned};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A timestamp as nanoseconds since the Unix epoch (exact; 1677 to 2262).
pub(super) fn to_ns(t: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| corrupt(format!("timestamp {t} is outside what the PostgreSQL store keeps (1677 to 2262)")))
}

pub(super) fn from_ns(ns: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).map_err(|e| corrupt(format!("timestamp {ns}: {e}")))
}

pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| corrupt(format!("column {idx}: {e}")))
}

fn amount(s: &str) -> Result<Amount, StoreError> {
    Decimal::from_str(s).ok().and_then(|d| Amount::from_decimal(d).ok()).ok_or_else(|| corrupt(format!("amount {s:?}")))
}

fn currency(s: &str) -> Result<Currency, StoreError> {
    Currency::parse(s).map_err(corrupt)
}

fn occ_key(s: &str) -> Result<OccKey, StoreError> {
    OccKey::new(s).map_err(|e| corrupt(format!("occ_key {s:?}: {e}")))
}

fn actor(s: &str) -> Result<ActorId, StoreError> {
    ActorId::new(s).map_err(|e| corrupt(format!("actor {s:?}: {e}")))
}

fn hold_ref(s: &str) -> Result<Ref, StoreError> {
    Ref::new(s).map_err(|e| corrupt(format!("ref {s:?}: {e}")))
}

fn provider_ref(s: &str) -> Result<ProviderRef, StoreError> {
    ProviderRef::new(s).map_err(|e| corrupt(format!("provider_ref {s:?}: {e}")))
}

fn reason(s: &str) -> Result<NoHoldReason, StoreError> {
    NoHoldReason::parse(s).ok_or_else(|| corrupt(format!("reason {s:?}")))
}

fn u32_of(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(format!("{what} {v}")))
}

fn u64_of(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(format!("{what} {v}")))
}

/// The occurrence from `capacity, hold_ttl_secs, held, confirmed` at `at`, if the row exists.
pub(super) fn occurrence_from_row(row: &Row, at: usize, key: &OccKey) -> Result<Option<Occurrence>, StoreError> {
    let Some(capacity) = get::<Option<i64>>(row, at)? else {
        return Ok(None);
    };
    let ttl: i64 = get(row, at + 1)?;
    let config = OccurrenceConfig::new(u32_of(capacity, "capacity")?, u64_of(ttl, "hold_ttl_secs")?)
        .map_err(|e| corrupt(format!("occurrence {key}: {e}")))?;
    Ok(Some(Occurrence {
        key: key.clone(),
        config,
        held: u64_of(get(row, at + 2)?, "held")?,
        confirmed: u64_of(get(row, at + 3)?, "confirmed")?,
    }))
}

/// A hold from the columns of [`HOLD_COLS`](super::schema::HOLD_COLS) starting at `at`, if
/// the row exists.
pub(super) fn hold_from_row(row: &Row, at: usize, occ: &OccKey) -> Result<Option<Versioned<Hold>>, StoreError> {
    let Some(actor_s) = get::<Option<&str>>(row, at)? else {
        return Ok(None);
    };
    let state_s: &str = get(row, at + 9)?;
    let hold = Hold {
        occ_key: occ.clone(),
        actor: actor(actor_s)?,
        hold_ref: hold_ref(get(row, at + 2)?)?,
        quantity: u32_of(get(row, at + 3)?, "quantity")?,
        price: Money { amount: amount(get(row, at + 4)?)?, currency: currency(get(row, at + 5)?)? },
        attempt: u32_of(get(row, at + 6)?, "attempt")?,
        placed_at: from_ns(get(row, at + 7)?)?,
        expires_at: from_ns(get(row, at + 8)?)?,
        state: HoldState::parse(state_s).ok_or_else(|| corrupt(format!("hold state {state_s:?}")))?,
        ended_at: get::<Option<i64>>(row, at + 10)?.map(from_ns).transpose()?,
    };
    Ok(Some(Versioned { version: u64_of(get(row, at + 1)?, "version")?, value: hold }))
}

/// A hold from a lapsed-holds row: `occ_key` then the hold columns.
pub(super) fn lapsed_from_row(row: &Row) -> Result<Versioned<Hold>, StoreError> {
    let occ = occ_key(get(row, 0)?)?;
    hold_from_row(row, 1, &occ)?.ok_or_else(|| corrupt("lapsed hold row without a hold"))
}

/// The settlement record from `outcome, reason, amount, currency, provider_ref,
/// refund_occ_key, refund_actor, refund_ref, settled_at_ns` at `at`, if the row exists.
pub(super) fn settlement_from_row(
    row: &Row,
    at: usize,
    occ: &OccKey,
    who: &ActorId,
    r: &Ref,
) -> Result<Option<SettlementRecord>, StoreError> {
    let Some(outcome) = get::<Option<&str>>(row, at)? else {
        return Ok(None);
    };
    let outcome = match outcome {
        "confirmed" => PaidOutcome::Confirmed,
        "refund" => PaidOutcome::Refund(Refund {
            occ_key: get::<Option<&str>>(row, at + 5)?.map(occ_key).transpose()?.unwrap_or_else(|| occ.clone()),
            actor: get::<Option<&str>>(row, at + 6)?.map(actor).transpose()?.unwrap_or_else(|| who.clone()),
            hold_ref: get::<Option<&str>>(row, at + 7)?.map(hold_ref).transpose()?.unwrap_or_else(|| r.clone()),
            reason: reason(get::<Option<&str>>(row, at + 1)?.ok_or_else(|| corrupt("refund without a reason"))?)?,
            amount: get::<Option<&str>>(row, at + 2)?.map(amount).transpose()?,
            currency: get::<Option<&str>>(row, at + 3)?.map(currency).transpose()?,
            provider_ref: get::<Option<&str>>(row, at + 4)?.map(provider_ref).transpose()?,
        }),
        other => return Err(corrupt(format!("settlement outcome {other:?}"))),
    };
    Ok(Some(SettlementRecord {
        occ_key: occ.clone(),
        actor: who.clone(),
        hold_ref: r.clone(),
        outcome,
        settled_at: from_ns(get(row, at + 8)?)?,
    }))
}

/// An outbox event from `id, kind, occ_key, actor, hold_ref, at_ns, quantity, amount,
/// currency, expires_at_ns, reason, provider_ref`.
pub(super) fn event_from_row(row: &Row) -> Result<OutboxEvent, StoreError> {
    let id: i64 = get(row, 0)?;
    let kind_s: &str = get(row, 1)?;
    let quantity = || -> Result<u32, StoreError> {
        u32_of(get::<Option<i64>>(row, 6)?.ok_or_else(|| corrupt("event without a quantity"))?, "quantity")
    };
    let opt_amount = || get::<Option<&str>>(row, 7)?.map(amount).transpose();
    let opt_currency = || get::<Option<&str>>(row, 8)?.map(currency).transpose();
    let kind = match kind_s {
        "hold_placed" => EventKind::HoldPlaced {
            quantity: quantity()?,
            price: Money {
                amount: opt_amount()?.ok_or_else(|| corrupt("hold_placed without an amount"))?,
                currency: opt_currency()?.ok_or_else(|| corrupt("hold_placed without a currency"))?,
            },
            expires_at: from_ns(get::<Option<i64>>(row, 9)?.ok_or_else(|| corrupt("hold_placed without expires_at"))?)?,
        },
        "hold_confirmed" => EventKind::HoldConfirmed { quantity: quantity()? },
        "hold_released" => EventKind::HoldReleased { quantity: quantity()? },
        "hold_expired" => EventKind::HoldExpired { quantity: quantity()? },
        "refund_required" => EventKind::RefundRequired {
            reason: reason(get::<Option<&str>>(row, 10)?.ok_or_else(|| corrupt("refund without a reason"))?)?,
            amount: opt_amount()?,
            currency: opt_currency()?,
            provider_ref: get::<Option<&str>>(row, 11)?.map(provider_ref).transpose()?,
        },
        other => return Err(corrupt(format!("event kind {other:?}"))),
    };
    Ok(OutboxEvent {
        id: EventId(u64_of(id, "event id")?),
        event: DomainEvent {
            occ_key: occ_key(get(row, 2)?)?,
            actor: actor(get(row, 3)?)?,
            hold_ref: hold_ref(get(row, 4)?)?,
            at: from_ns(get(row, 5)?)?,
            kind,
        },
    })
}

/// The parameters of one `seathold_commit` call, owned: a batch of commits, with the holds
/// and events of all of them in flat arrays (each commit names its 1-based range).
#[derive(Debug, Default)]
pub(super) struct CommitParams {
    c_occ: Vec<String>,
    c_capacity: Vec<Option<i64>>,
    c_ttl: Vec<Option<i64>>,
    c_dh: Vec<i64>,
    c_dc: Vec<i64>,
    c_fail: Vec<Option<&'static str>>,
    c_fail_actor: Vec<Option<String>>,
    c_h_from: Vec<i64>,
    c_h_to: Vec<i64>,
    c_e_from: Vec<i64>,
    c_e_to: Vec<i64>,
    s_actor: Vec<Option<String>>,
    s_ref: Vec<Option<String>>,
    s_outcome: Vec<Option<&'static str>>,
    s_reason: Vec<Option<&'static str>>,
    s_amount: Vec<Option<String>>,
    s_currency: Vec<Option<String>>,
    s_provider_ref: Vec<Option<String>>,
    s_refund_occ: Vec<Option<String>>,
    s_refund_actor: Vec<Option<String>>,
    s_refund_ref: Vec<Option<String>>,
    s_settled: Vec<Option<i64>>,
    h_actor: Vec<String>,
    h_expected: Vec<Option<i64>>,
    h_ref: Vec<String>,
    h_qty: Vec<i64>,
    h_amount: Vec<String>,
    h_currency: Vec<String>,
    h_attempt: Vec<i64>,
    h_placed: Vec<i64>,
    h_expires: Vec<i64>,
    h_state: Vec<&'static str>,
    h_ended: Vec<Option<i64>>,
    e_kind: Vec<&'static str>,
    e_occ: Vec<String>,
    e_actor: Vec<String>,
    e_ref: Vec<String>,
    e_at: Vec<i64>,
    e_qty: Vec<Option<i64>>,
    e_amount: Vec<Option<String>>,
    e_currency: Vec<Option<String>>,
    e_expires: Vec<Option<i64>>,
    e_reason: Vec<Option<&'static str>>,
    e_provider_ref: Vec<Option<String>>,
}

fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| corrupt(format!("version {v}")))
}

fn pos(n: usize) -> i64 {
    // Array positions; a batch holds far fewer than i64::MAX entries.
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl CommitParams {
    /// A batch of one commit.
    pub(super) fn new(c: &Commit) -> Result<Self, StoreError> {
        let mut p = CommitParams::default();
        p.push(c)?;
        Ok(p)
    }

    fn push(&mut self, c: &Commit) -> Result<(), StoreError> {
        self.c_occ.push(c.occ_key.as_str().to_owned());
        self.c_capacity.push(c.configure.map(|cfg| i64::from(cfg.capacity())));
        self.c_ttl.push(c.configure.map(|cfg| i64::from(cfg.hold_ttl_secs())));
        self.c_dh.push(c.seats.held);
        self.c_dc.push(c.seats.confirmed);
        let (mut fail, mut fail_actor) = (None, None);
        self.c_h_from.push(pos(self.h_actor.len() + 1));
        for (i, w) in c.holds.iter().enumerate() {
            // Conflicts found without the database, in MemoryStore's order; the holds before
            // it are still checked by the database first.
            if c.holds[..i].iter().any(|o| o.hold.actor == w.hold.actor) {
                fail = Some(SQLSTATE_HOLD_CHANGED);
                fail_actor = Some(w.hold.actor.as_str().to_owned());
                break;
            }
            if w.hold.occ_key != c.occ_key {
                fail = Some(SQLSTATE_UNKNOWN_OCCURRENCE);
                break;
            }
            let h = &w.hold;
            self.h_actor.push(h.actor.as_str().to_owned());
            self.h_expected.push(w.expected.map(version).transpose()?);
            self.h_ref.push(h.hold_ref.as_str().to_owned());
            self.h_qty.push(i64::from(h.quantity));
            self.h_amount.push(h.price.amount.to_string());
            self.h_currency.push(h.price.currency.as_str().to_owned());
            self.h_attempt.push(i64::from(h.attempt));
            self.h_placed.push(to_ns(h.placed_at)?);
            self.h_expires.push(to_ns(h.expires_at)?);
            self.h_state.push(h.state.as_str());
            self.h_ended.push(h.ended_at.map(to_ns).transpose()?);
        }
        self.c_h_to.push(pos(self.h_actor.len()));
        self.c_fail.push(fail);
        self.c_fail_actor.push(fail_actor);

        let mut s: [Option<String>; 8] = Default::default();
        let (mut outcome, mut reason, mut settled) = (None, None, None);
        if let Some(rec) = &c.settlement {
            s[0] = Some(rec.actor.as_str().to_owned());
            s[1] = Some(rec.hold_ref.as_str().to_owned());
            settled = Some(to_ns(rec.settled_at)?);
            match &rec.outcome {
                PaidOutcome::Confirmed => outcome = Some("confirmed"),
                PaidOutcome::Refund(r) => {
                    outcome = Some("refund");
                    reason = Some(r.reason.as_str());
                    s[2] = r.amount.map(|a| a.to_string());
                    s[3] = r.currency.map(|c| c.as_str().to_owned());
                    s[4] = r.provider_ref.as_ref().map(|x| x.as_str().to_owned());
                    s[5] = (r.occ_key != c.occ_key).then(|| r.occ_key.as_str().to_owned());
                    s[6] = (r.actor != rec.actor).then(|| r.actor.as_str().to_owned());
                    s[7] = (r.hold_ref != rec.hold_ref).then(|| r.hold_ref.as_str().to_owned());
                }
            }
        }
        let [actor, r, amount, currency, provider_ref, refund_occ, refund_actor, refund_ref] = s;
        self.s_actor.push(actor);
        self.s_ref.push(r);
        self.s_outcome.push(outcome);
        self.s_reason.push(reason);
        self.s_amount.push(amount);
        self.s_currency.push(currency);
        self.s_provider_ref.push(provider_ref);
        self.s_refund_occ.push(refund_occ);
        self.s_refund_actor.push(refund_actor);
        self.s_refund_ref.push(refund_ref);
        self.s_settled.push(settled);

        self.c_e_from.push(pos(self.e_kind.len() + 1));
        for e in &c.events {
            self.e_kind.push(e.kind.type_str());
            self.e_occ.push(e.occ_key.as_str().to_owned());
            self.e_actor.push(e.actor.as_str().to_owned());
            self.e_ref.push(e.hold_ref.as_str().to_owned());
            self.e_at.push(to_ns(e.at)?);
            let (mut qty, mut amt, mut cur, mut exp, mut why, mut pref) = (None, None, None, None, None, None);
            match &e.kind {
                EventKind::HoldPlaced { quantity, price, expires_at } => {
                    qty = Some(i64::from(*quantity));
                    amt = Some(price.amount.to_string());
                    cur = Some(price.currency.as_str().to_owned());
                    exp = Some(to_ns(*expires_at)?);
                }
                EventKind::HoldConfirmed { quantity }
                | EventKind::HoldReleased { quantity }
                | EventKind::HoldExpired { quantity } => qty = Some(i64::from(*quantity)),
                EventKind::RefundRequired { reason, amount, currency, provider_ref } => {
                    why = Some(reason.as_str());
                    amt = amount.map(|a| a.to_string());
                    cur = currency.map(|c| c.as_str().to_owned());
                    pref = provider_ref.as_ref().map(|x| x.as_str().to_owned());
                }
            }
            self.e_qty.push(qty);
            self.e_amount.push(amt);
            self.e_currency.push(cur);
            self.e_expires.push(exp);
            self.e_reason.push(why);
            self.e_provider_ref.push(pref);
        }
        self.c_e_to.push(pos(self.e_kind.len()));
        Ok(())
    }

    /// Append the commits of `other` (their ranges renumbered).
    pub(super) fn append(&mut self, other: &CommitParams) {
        let (h, e) = (pos(self.h_actor.len()), pos(self.e_kind.len()));
        self.c_h_from.extend(other.c_h_from.iter().map(|x| x + h));
        self.c_h_to.extend(other.c_h_to.iter().map(|x| x + h));
        self.c_e_from.extend(other.c_e_from.iter().map(|x| x + e));
        self.c_e_to.extend(other.c_e_to.iter().map(|x| x + e));
        macro_rules! take {
            ($($f:ident),*) => { $( self.$f.extend_from_slice(&other.$f); )* };
        }
        take!(
            c_occ,
            c_capacity,
            c_ttl,
            c_dh,
            c_dc,
            c_fail,
            c_fail_actor,
            s_actor,
            s_ref,
            s_outcome,
            s_reason,
            s_amount,
            s_currency,
            s_provider_ref,
            s_refund_occ,
            s_refund_actor,
            s_refund_ref,
            s_settled,
            h_actor,
            h_expected,
            h_ref,
            h_qty,
            h_amount,
            h_currency,
            h_attempt,
            h_placed,
            h_expires,
            h_state,
            h_ended,
            e_kind,
            e_occ,
            e_actor,
            e_ref,
            e_at,
            e_qty,
            e_amount,
            e_currency,
            e_expires,
            e_reason,
            e_provider_ref
        );
    }

    /// The parameters in the order `seathold_commit` declares them.
    pub(super) fn as_params(&self) -> [&(dyn ToSql + Sync); COMMIT_PARAMS] {
        [
            &self.c_occ,
            &self.c_capacity,
            &self.c_ttl,
            &self.c_dh,
            &self.c_dc,
            &self.c_fail,
            &self.c_fail_actor,
            &self.c_h_from,
            &self.c_h_to,
            &self.c_e_from,
            &self.c_e_to,
            &self.s_actor,
            &self.s_ref,
            &self.s_outcome,
            &self.s_reason,
            &self.s_amount,
            &self.s_currency,
            &self.s_provider_ref,
            &self.s_refund_occ,
            &self.s_refund_actor,
            &self.s_refund_ref,
            &self.s_settled,
            &self.h_actor,
            &self.h_expected,
            &self.h_ref,
            &self.h_qty,
            &self.h_amount,
            &self.h_currency,
            &self.h_attempt,
            &self.h_placed,
            &self.h_expires,
            &self.h_state,
            &self.h_ended,
            &self.e_kind,
            &self.e_occ,
            &self.e_actor,
            &self.e_ref,
            &self.e_at,
            &self.e_qty,
            &self.e_amount,
            &self.e_currency,
            &self.e_expires,
            &self.e_reason,
            &self.e_provider_ref,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn nanoseconds_round_trip_exactly() {
        for t in [
            datetime!(2026-01-01 00:00:00.000000001 UTC),
            datetime!(2026-01-01 00:00:00.999999999 UTC),
            datetime!(1970-01-01 00:00:00 UTC),
            datetime!(1969-12-31 23:59:59.5 UTC),
            datetime!(2262-04-11 23:47:16.854775807 UTC),
        ] {
            assert_eq!(from_ns(to_ns(t).unwrap()).unwrap(), t);
        }
        assert!(to_ns(datetime!(2263-01-01 00:00:00 UTC)).is_err());
    }

    #[test]
    fn amounts_keep_their_scale() {
        for s in ["25.00", "25.0", "0", "0.000000001", "999999999999999999.999999999"] {
            let a = Amount::parse(s).unwrap();
            assert_eq!(amount(&a.to_string()).unwrap().to_string(), s);
        }
    }
}
