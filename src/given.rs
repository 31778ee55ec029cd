//! A pure test seam for decisions: given an occurrence and its records, when a decision at
//! an instant, then its answer and the [`Change`] it makes (seat deltas, records put and
//! deleted, events) — without an engine, a store or a clock (cqrs-es's `TestFramework`,
//! for a state machine whose decisions are the `decide_*` functions of each lifecycle
//! module).
//!
//! Owns: [`Given`] (an occurrence and its records held in memory, every key readable) and
//! [`Then`]. May not touch: the rules (it runs a decision and applies its change as a store
//! would, checking only what a store checks: counters never below zero, admitted
//! dimensions within their caps), storage, the clock.
//!
//! ```
//! use seathold::catalogue::OccurrenceConfig;
//! use seathold::contract::{ActorId, Money, OccKey, PaymentResult, Ref};
//! use seathold::given::Given;
//! use seathold::holds::{decide_request, HoldRequest, RequestOutcome};
//! use seathold::settlement::{decide_settlement, Settlement};
//! use seathold::time::macros::datetime;
//!
//! let now = datetime!(2026-12-01 19:00 UTC);
//! let gig = OccKey::new("gig")?;
//! let mut given = Given::occurrence(gig.clone(), OccurrenceConfig::new(1, 600)?);
//! let req = HoldRequest::new(gig.clone(), ActorId::new("ann")?, Ref::new("r1")?, Money::parse("20.00", "EUR")?);
//! let placed = given.try_when(|v| decide_request(v, &req, now))?;
//! assert_eq!(placed.applied, Ok(()));
//! assert!(matches!(placed.answer, RequestOutcome::AwaitingPayment { .. }));
//! assert_eq!(placed.event_types(), ["hold_placed"]);
//!
//! let paid = PaymentResult::paid(gig, ActorId::new("ann")?, Ref::new("r1")?);
//! let then = given.when(|v| decide_settlement(v, &paid, now))?;
//! assert_eq!(then.answer, Settlement::Confirmed { replayed: false });
//! assert_eq!(then.event_types(), ["hold_confirmed"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::Never;
use crate::catalogue::OccurrenceConfig;
use crate::contract::OccKey;
use crate::operation::Operation;
use crate::records::{Change, Loaded, Occurrence, Record, RecordKey, Step};

/// An occurrence and its records, held in memory: the state a decision reads. Every key is
/// readable (a record not given is absent), so a decision never needs to ask for more.
#[derive(Debug, Clone)]
pub struct Given {
    occ_key: OccKey,
    occurrence: Option<Occurrence>,
    records: BTreeMap<RecordKey, Record>,
    /// The due records a decision asked for ([`Step::LoadDue`]), while it decides.
    due: Option<(Vec<Record>, bool)>,
    /// The instant decisions are run at, if given ([`Given::at`]).
    now: Option<OffsetDateTime>,
}

/// What a decision answered, and the change it made (applied to the [`Given`] already).
#[derive(Debug, Clone)]
#[must_use]
pub struct Then<T> {
    /// The decision's answer.
    pub answer: T,
    /// What it wrote (`None`: it answered without writing).
    pub change: Option<Change>,
    /// Whether a store would have applied the change: `Err` names what it would refuse (a
    /// counter below zero, an admitted dimension over its cap), and then the `Given` is
    /// left as it was.
    pub applied: Result<(), String>,
}

impl<T> Then<T> {
    /// The wire types of the events the change raised, in order (`hold_placed`, …).
    pub fn event_types(&self) -> Vec<&'static str> {
        self.change.iter().flat_map(|c| c.events.iter().map(|e| e.kind.type_str())).collect()
    }
}

impl Given {
    /// An occurrence opened with `config`, with nothing sold.
    pub fn occurrence(occ_key: OccKey, config: OccurrenceConfig) -> Self {
        Self { occurrence: Some(Occurrence::new(occ_key.clone(), config)), ..Self::nothing(occ_key) }
    }

    /// No occurrence under `occ_key` (and no records).
    pub fn nothing(occ_key: OccKey) -> Self {
        Self { occ_key, occurrence: None, records: BTreeMap::new(), due: None, now: None }
    }

    /// The instant the next decisions run at: due records are then only those due by it (as
    /// a store's expiry index hands them), and a seated change's rows are rewritten at it
    /// ([`seating`](crate::seating)). Without it, every record with a due time is handed
    /// over and the decision compares, and no held seat counts as lapsed in the rows.
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.now = Some(now);
        self
    }

    /// With `record` too (replacing one under the same key).
    pub fn with_record(mut self, record: Record) -> Self {
        self.records.insert(record.key(), record);
        self
    }

    /// The occurrence as it stands.
    pub fn current(&self) -> Option<&Occurrence> {
        self.occurrence.as_ref()
    }

    /// The record under `key`, as it stands.
    pub fn record(&self, key: &RecordKey) -> Option<&Record> {
        self.records.get(key)
    }

    /// When `op` at `now` ([`crate::operation`]): run its decision over these records, as
    /// the engine would at that instant, and apply what it writes. The `Given` is at `now`
    /// from then on ([`Given::at`]).
    ///
    /// # Errors
    /// [`WhenError::Refused`] with the operation's refusal (nothing applied),
    /// [`WhenError::OtherOccurrence`] if `op` names another occurrence than this one, or
    /// [`WhenError::KeptAsking`].
    pub fn run<O: Operation>(&mut self, op: &O, now: OffsetDateTime) -> Result<Then<O::Output>, WhenError<O::Refusal>> {
        if op.occ_key() != &self.occ_key {
            return Err(WhenError::OtherOccurrence(op.occ_key().clone()));
        }
        self.now = Some(now);
        self.try_when(|v| op.decide(v, now))
    }

    /// Run a decision that cannot refuse (`decide_settlement`, `decide_expiry`, …), and
    /// apply what it writes.
    ///
    /// # Errors
    /// [`WhenError::KeptAsking`] if the decision asked for due records more than once.
    pub fn when<T>(&mut self, decide: impl Fn(&Given) -> Step<T>) -> Result<Then<T>, WhenError<Never>> {
        self.try_when(|v| Ok(decide(v)))
    }

    /// Run a decision that may refuse (`decide_request`, `decide_cancel`, …), and apply what
    /// it writes.
    ///
    /// # Errors
    /// [`WhenError::Refused`] with the decision's refusal (nothing applied), or
    /// [`WhenError::KeptAsking`].
    pub fn try_when<T, R>(&mut self, decide: impl Fn(&Given) -> Result<Step<T>, R>) -> Result<Then<T>, WhenError<R>> {
        self.due = None;
        // Every key is readable, so a decision asks at most once, for the due records; more
        // asking is a bug in it, and the bound keeps a broken one from spinning.
        for _ in 0..4 {
            match decide(self).map_err(WhenError::Refused)? {
                Step::Answer(answer) => {
                    self.due = None;
                    return Ok(Then { answer, change: None, applied: Ok(()) });
                }
                Step::Write(mut change, answer) => {
                    self.due = None;
                    let now = self.now.unwrap_or(OffsetDateTime::UNIX_EPOCH);
                    if let Err(e) = crate::finish::finish(self, &mut change, now) {
                        let applied = Err(format!("{e:?}"));
                        return Ok(Then { answer, change: Some(change), applied });
                    }
                    let applied = self.apply(&change);
                    return Ok(Then { answer, change: Some(change), applied });
                }
                Step::Load(_) => {}
                Step::LoadDue(limit) => self.due = Some(self.due_records(limit)),
            }
        }
        self.due = None;
        Err(WhenError::KeptAsking)
    }

    /// Records due by the latest instant any of them is due, oldest first: the due records
    /// a decision sees are those lapsed by the instant it was given, so this hands it every
    /// record that has a due time and lets the decision compare.
    fn due_records(&self, limit: usize) -> (Vec<Record>, bool) {
        let by = self.now;
        let mut due: Vec<(OffsetDateTime, &Record)> = self
            .records
            .values()
            .filter_map(|r| r.due().map(|t| (t, r)))
            .filter(|(t, _)| by.is_none_or(|n| *t <= n))
            .collect();
        due.sort_by_key(|(t, r)| (*t, r.key()));
        let complete = due.len() <= limit;
        (due.into_iter().take(limit).map(|(_, r)| r.clone()).collect(), complete)
    }

    /// Apply `change` as a store would, or leave everything as it was and say why not.
    fn apply(&mut self, change: &Change) -> Result<(), String> {
        let mut occ = match (&self.occurrence, &change.config) {
            (Some(o), Some(cfg)) => {
                let mut next = o.clone();
                next.config = cfg.clone();
                next.config_version += 1;
                Some(next)
            }
            (Some(o), None) => Some(o.clone()),
            (None, Some(cfg)) => Some(Occurrence::new(self.occ_key.clone(), cfg.clone())),
            (None, None) if change.deltas.is_zero() => None,
            (None, None) => return Err("seat deltas on an occurrence that does not exist".into()),
        };
        if let Some(o) = &mut occ {
            let deltas: Vec<_> = change.deltas.iter().cloned().collect();
            o.counters = o.counters.apply(&deltas).map_err(|dim| format!("counter {dim} would go negative"))?;
            if let Some(dim) = o.first_over(&change.admits, &crate::records::Deltas::new()) {
                return Err(format!("{dim} over its cap"));
            }
            let config = o.config.clone();
            o.counters.retain(|d| config.capacity_of(d).is_some());
        }
        self.occurrence = occ;
        for key in &change.deletes {
            self.records.remove(key);
        }
        for r in &change.puts {
            self.records.insert(r.key(), r.clone());
        }
        Ok(())
    }
}

/// Why [`Given::try_when`] has no [`Then`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WhenError<R> {
    /// The decision refused: this is its refusal. Nothing was applied.
    #[error("refused: {0}")]
    Refused(R),
    /// The decision kept asking for records though every key was readable: a bug in it.
    #[error("the decision kept asking for records")]
    KeptAsking,
    /// [`Given::run`] was handed an operation on another occurrence (named here): nothing
    /// was decided.
    #[error("the operation is on occurrence {0}, not the one given")]
    OtherOccurrence(OccKey),
}

impl Loaded for Given {
    fn occurrence(&self) -> Option<&Occurrence> {
        self.occurrence.as_ref()
    }
    fn get(&self, key: &RecordKey) -> Option<&Record> {
        self.records.get(key)
    }
    fn is_loaded(&self, _key: &RecordKey) -> bool {
        true
    }
    fn due(&self) -> Option<(&[Record], bool)> {
        self.due.as_ref().map(|(d, complete)| (d.as_slice(), *complete))
    }
}
