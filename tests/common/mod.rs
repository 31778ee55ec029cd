//! Helpers shared by the model, stress and fault tests: a tiny seeded RNG, the test clock's
//! start, amount formatting, and [`Ledger`], an independent consumer of the outbox that checks
//! the event-level invariants (3 and 7 of DESIGN.md) as events arrive.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use seathold::contract::{EventKind, NoHoldReason, OutboxEvent};
use time::OffsetDateTime;
use time::macros::datetime;

/// Where every test clock starts (as in the scenario runner).
pub fn start() -> OffsetDateTime {
    datetime!(2026-01-01 00:00:00 UTC)
}

/// SplitMix64: small, seedable, good enough to drive workloads.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// `cents` as a decimal string, written in one of several equivalent ways (`form`): all of
/// them must compare equal as amounts ("25.0" == "25.00").
pub fn fmt_amount(cents: u64, form: u8) -> String {
    let (units, frac) = (cents / 100, cents % 100);
    match form % 6 {
        1 if frac % 10 == 0 => format!("{units}.{}", frac / 10),
        2 if frac == 0 => format!("{units}"),
        3 => format!("{units}.{frac:02}0"),
        4 => format!("{units}.{frac:02}0000000"),
        5 => format!("0{units}.{frac:02}"),
        _ => format!("{units}.{frac:02}"),
    }
}

/// Identity of one accounted payment, as invariant 3 counts it: (occ_key, actor, ref), plus
/// the provider ref for a second, different payment under an already accounted ref (a
/// `duplicate_payment` refund, which is an accounting of its own). `None` for the first
/// payment accounted under (occ_key, actor, ref).
pub type PaidKey = (String, String, String, Option<String>);

/// The key of the first payment accounted under (occ, actor, ref).
pub fn paid_key(occ: &str, actor: &str, r: &str) -> PaidKey {
    (occ.to_owned(), actor.to_owned(), r.to_owned(), None)
}

/// A hold the ledger has seen placed and not yet ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenHold {
    pub hold_ref: String,
    pub quantity: u32,
    pub expires_at: OffsetDateTime,
}

/// An independent outbox consumer for Part 1 occurrences. Feed it every event once, in id
/// order; it fails on: a repeated id, ids not increasing within an occurrence, an event
/// without a ref, a hold placed while the actor's previous one is still open, a terminal
/// event for a hold that is not open (or under another ref or quantity), a second accounting
/// event (`hold_confirmed` / `refund_required`) for one (occ, actor, ref), and a
/// `duplicate_payment` refund that is not a second payment: one whose (occ, actor, ref) has
/// no accounting yet, whose provider ref is missing or is the first payment's, or that
/// repeats an earlier duplicate's provider ref.
#[derive(Debug, Default)]
pub struct Ledger {
    seen: HashSet<u64>,
    last_id: HashMap<String, u64>,
    pub open: HashMap<(String, String), OpenHold>,
    pub accounted: HashMap<PaidKey, &'static str>,
    /// The provider ref of the first accounting of (occ, actor, ref): `Some(p)` when its
    /// event says (a refund carries the result's provider ref, or none), `None` when it does
    /// not (a confirmation).
    first_provider: HashMap<PaidKey, Option<Option<String>>>,
    pub confirmed_seats: HashMap<String, u64>,
    pub placed: u64,
    pub ended: u64,
    pub confirmed_events: u64,
    pub refund_events: u64,
    pub duplicate_refunds: u64,
    pub expired_events: u64,
    pub released_events: u64,
}

impl Ledger {
    pub fn absorb(&mut self, e: &OutboxEvent) -> Result<(), String> {
        let id = e.id.0;
        if !self.seen.insert(id) {
            return Err(format!("event id {id} delivered twice: {e:?}"));
        }
        let occ = e.event.occ_key.as_str().to_owned();
        let actor = e.event.actor.as_str().to_owned();
        let Some(r) = e.event.hold_ref.as_ref().map(|r| r.as_str().to_owned()) else {
            return Err(format!("event {id} has no ref: {e:?}"));
        };
        let last = self.last_id.entry(occ.clone()).or_insert(0);
        if id <= *last {
            return Err(format!("event ids of {occ} not increasing: {id} after {last}"));
        }
        *last = id;
        let key = (occ.clone(), actor.clone());
        let end = |ledger: &mut Self, quantity: u32, what: &str| -> Result<(), String> {
            match ledger.open.remove(&key) {
                Some(h) if h.hold_ref == r && h.quantity == quantity => {
                    ledger.ended += 1;
                    Ok(())
                }
                other => Err(format!("{what} for {key:?} ref {r} qty {quantity}, but the open hold is {other:?}")),
            }
        };
        match &e.event.kind {
            EventKind::HoldPlaced { quantity, expires_at, .. } => {
                if let Some(prev) = self.open.get(&key) {
                    return Err(format!("hold_placed for {key:?} ref {r} while {prev:?} is still open"));
                }
                self.open.insert(key, OpenHold { hold_ref: r, quantity: *quantity, expires_at: *expires_at });
                self.placed += 1;
            }
            EventKind::HoldConfirmed { quantity, revived } => {
                if *revived {
                    return Err(format!(
                        "revived confirmation for {key:?} ref {r} at a late_payment: refund occurrence"
                    ));
                }
                end(self, *quantity, "hold_confirmed")?;
                self.confirmed_events += 1;
                *self.confirmed_seats.entry(occ.clone()).or_insert(0) += u64::from(*quantity);
                self.account(paid_key(&occ, &actor, &r), None, "hold_confirmed")?;
            }
            EventKind::HoldReleased { quantity } => {
                end(self, *quantity, "hold_released")?;
                self.released_events += 1;
            }
            EventKind::HoldExpired { quantity } => {
                end(self, *quantity, "hold_expired")?;
                self.expired_events += 1;
            }
            EventKind::RefundRequired { reason: NoHoldReason::DuplicatePayment, provider_ref, .. } => {
                self.refund_events += 1;
                self.duplicate_refunds += 1;
                let first = paid_key(&occ, &actor, &r);
                let Some(first_provider) = self.first_provider.get(&first) else {
                    return Err(format!("duplicate_payment refund for {first:?}, which has no accounting yet"));
                };
                let Some(p) = provider_ref.as_ref().map(|p| p.as_str().to_owned()) else {
                    return Err(format!("duplicate_payment refund for {first:?} without a provider ref"));
                };
                match first_provider {
                    Some(None) => {
                        return Err(format!(
                            "duplicate_payment refund for {first:?}: its first payment carried no provider ref, so \
                             {p} is its redelivery"
                        ));
                    }
                    Some(Some(f)) if *f == p => {
                        return Err(format!("duplicate_payment refund for {first:?} under the first payment's {p}"));
                    }
                    _ => {}
                }
                self.account((occ, actor, r, Some(p)), None, "duplicate_payment refund")?;
            }
            EventKind::RefundRequired { reason: NoHoldReason::Cancelled, .. } => {
                return Err(format!("unexpected cancellation refund {e:?}"));
            }
            EventKind::RefundRequired { provider_ref, .. } => {
                self.refund_events += 1;
                let p = provider_ref.as_ref().map(|p| p.as_str().to_owned());
                self.account(paid_key(&occ, &actor, &r), Some(p), "refund_required")?;
            }
            other => return Err(format!("unexpected event kind {other:?}")),
        }
        Ok(())
    }

    fn account(&mut self, key: PaidKey, provider: Option<Option<String>>, what: &'static str) -> Result<(), String> {
        if let Some(first) = self.accounted.insert(key.clone(), what) {
            return Err(format!("paid result {key:?} accounted twice: {first} then {what}"));
        }
        if key.3.is_none() {
            self.first_provider.insert(key, provider);
        }
        Ok(())
    }

    pub fn absorb_all(&mut self, events: &[OutboxEvent]) -> Result<(), String> {
        events.iter().try_for_each(|e| self.absorb(e))
    }

    /// Seats in holds still open (placed, no terminal event) that are live at `now`.
    pub fn live_held(&self, occ: &str, now: OffsetDateTime) -> u64 {
        self.open.iter().filter(|((o, _), h)| o == occ && h.expires_at > now).map(|(_, h)| u64::from(h.quantity)).sum()
    }

    pub fn confirmed(&self, occ: &str) -> u64 {
        self.confirmed_seats.get(occ).copied().unwrap_or(0)
    }
}
