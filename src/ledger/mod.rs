//! The ledger: every accounted payment and every refund signal of an occurrence, for
//! reconciling against a payment provider's report.
//!
//! Owns: [`LedgerEntry`] and [`Ledger`], read off the records that already account for the
//! money — each [`PaymentRecord`] (money received; and, for a refund signal, money to give
//! back) and each [`Cancellation`] (money to give back). They are written in the same
//! commit as what they record, so the ledger is never ahead of or behind the bookings.
//!
//! May not touch: anything but reading those records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::contract::{ActorId, Amount, Currency, NoHoldReason, ProviderRef, Ref};
use crate::holds::Cancellation;
use crate::records::Record;
use crate::settlement::{PaidOutcome, PaymentRecord};

/// Whether money came in or must go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A `paid` result accounted: the provider took this money.
    Payment,
    /// A refund signal: this money must go back.
    Refund,
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Payment or refund.
    pub kind: EntryKind,
    /// The booking ref (the payment's ref).
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// Who paid.
    pub actor: ActorId,
    /// The provider's payment id, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,
    /// How much (unknown only for a payment that named nothing and carried no amount).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    /// In what currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// For a refund, why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<NoHoldReason>,
    /// Whether a payment confirmed a booking (false: it is refunded by the next entry).
    pub confirmed: bool,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An occurrence's ledger: its entries in time order, and totals per currency.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// Entries, oldest first.
    pub entries: Vec<LedgerEntry>,
    /// Money received, per currency (entries of unknown amount left out).
    pub received: BTreeMap<Currency, Amount>,
    /// Money to give back, per currency.
    pub refunded: BTreeMap<Currency, Amount>,
}

impl Ledger {
    /// Build the ledger from an occurrence's payment and cancellation records (others are
    /// ignored).
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut entries = Vec::new();
        for r in records {
            match r {
                Record::Payment(p) => entries.extend(payment_entries(p)),
                Record::Cancellation(c) => entries.push(cancellation_entry(c)),
                _ => {}
            }
        }
        entries.sort_by(|a, b| (a.at, &a.hold_ref, a.kind).cmp(&(b.at, &b.hold_ref, b.kind)));
        let mut ledger = Ledger { entries, ..Ledger::default() };
        for e in &ledger.entries {
            let (Some(a), Some(c)) = (e.amount, e.currency) else { continue };
            let total = match e.kind {
                EntryKind::Payment => ledger.received.entry(c).or_insert(Amount::ZERO),
                EntryKind::Refund => ledger.refunded.entry(c).or_insert(Amount::ZERO),
            };
            *total = total.checked_add(a).unwrap_or(*total);
        }
        ledger
    }

    /// Money kept in `currency`: received minus refunded (`None` if more was refunded than
    /// received, which a consistent store never shows).
    pub fn net(&self, currency: Currency) -> Option<Amount> {
        let received = self.received.get(&currency).copied().unwrap_or(Amount::ZERO);
        received.checked_sub(self.refunded.get(&currency).copied().unwrap_or(Amount::ZERO))
    }
}

fn payment_entries(p: &PaymentRecord) -> Vec<LedgerEntry> {
    let payment = LedgerEntry {
        kind: EntryKind::Payment,
        hold_ref: p.hold_ref.clone(),
        actor: p.actor.clone(),
        provider_ref: p.provider_ref.clone(),
        amount: p.amount,
        currency: p.currency,
        reason: None,
        confirmed: matches!(p.outcome, PaidOutcome::Confirmed { .. }),
        at: p.settled_at,
    };
    match &p.outcome {
        PaidOutcome::Confirmed { .. } => vec![payment],
        PaidOutcome::Refund(r) => {
            let refund = LedgerEntry {
                kind: EntryKind::Refund,
                amount: r.amount,
                currency: r.currency,
                reason: Some(r.reason),
                confirmed: false,
                ..payment.clone()
            };
            vec![payment, refund]
        }
    }
}

fn cancellation_entry(c: &Cancellation) -> LedgerEntry {
    LedgerEntry {
        kind: EntryKind::Refund,
        hold_ref: c.hold_ref.clone(),
        actor: c.actor.clone(),
        provider_ref: c.provider_ref.clone(),
        amount: Some(c.refund.amount),
        currency: Some(c.refund.currency),
        reason: Some(NoHoldReason::Cancelled),
        confirmed: false,
        at: c.at,
    }
}
