//! The vocabulary of stored state, shared by every lifecycle module and every store.
//!
//! Owns: the [`Occurrence`] (its configuration, a config version, and per-dimension seat
//! [`Counters`]), every kind of [`Record`] with its [`RecordKey`], and the one shape every
//! decision takes — [`Step`], with the [`Change`] it asks to commit — plus [`Loaded`], what
//! a decision may read.
//!
//! May not touch: rules, storage, the clock. The lifecycle modules ([`catalogue`],
//! [`holds`], [`settlement`], [`tickets`], [`waitlist`]) define the record types and decide;
//! stores keep records without interpreting them (beyond [`Record::due`], which feeds the
//! expiry index); the engine turns a [`Change`] into a guarded
//! [`Commit`](crate::store::Commit).
//!
//! Adding a kind of record costs its own module (the type and its [`RecordBody`]: key, due
//! time) plus, here, its entry in the one list of kinds — its stored name and its key's
//! shape —, which generates [`RecordKind`], [`Record`], [`RecordKey`] and every dispatch
//! over them, the key's text form ([`RecordKey::id`] / [`RecordKey::parse`]) included: no
//! new store method, no new SQL parameter.
//!
//! [`catalogue`]: crate::catalogue
//! [`holds`]: crate::holds
//! [`settlement`]: crate::settlement
//! [`tickets`]: crate::tickets
//! [`waitlist`]: crate::waitlist

mod few;
pub use few::Few;

/// The events of one change or commit, in order: one kept inline (most operations emit one),
/// more on the heap.
pub type Events = Few<DomainEvent, 1>;

use std::fmt;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use time::OffsetDateTime;

use crate::catalogue::{Block, Dim, OccurrenceConfig};
use crate::contract::{
    ActorId, BlockName, DomainEvent, OccKey, OpKey, ProviderRef, Ref, RowName, SectionName, TierName,
};
use crate::holds::{ActorRecord, Cancellation, Hold};
use crate::opkeys::OpRecord;
use crate::seating::{SeatRow, SoldOutRows};
use crate::settlement::{PaymentRecord, Rejection};
use crate::waitlist::Waitlist;

/// A record's version, for conditional writes: chosen by the store at each write, at least
/// 1, and never one the key had before, even after a delete (the store contract's clause 7).
pub type Version = u64;

/// A record with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The version read.
    pub version: Version,
    /// The record.
    pub value: T,
}

/// Seats counted against one capacity dimension, by why they are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Seats in holds not yet confirmed (lapsed ones included until something expires them).
    pub held: u64,
    /// Seats sold.
    pub confirmed: u64,
    /// Seats blocked by the organiser.
    pub blocked: u64,
    /// Seats set aside for waiting-list offers (lapsed ones included until passed on).
    pub offered: u64,
}

impl Usage {
    /// Seats taken for any reason.
    pub fn total(&self) -> u64 {
        self.held + self.confirmed + self.blocked + self.offered
    }

    /// `self + d`, or `None` if a part would go negative.
    pub fn plus(&self, d: &UsageDelta) -> Option<Usage> {
        let f = |v: u64, d: i64| u64::try_from(i128::from(v) + i128::from(d)).ok();
        Some(Usage {
            held: f(self.held, d.held)?,
            confirmed: f(self.confirmed, d.confirmed)?,
            blocked: f(self.blocked, d.blocked)?,
            offered: f(self.offered, d.offered)?,
        })
    }
}

/// A change to one dimension's [`Usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct UsageDelta {
    /// Change to held seats.
    pub held: i64,
    /// Change to sold seats.
    pub confirmed: i64,
    /// Change to blocked seats.
    pub blocked: i64,
    /// Change to offered seats.
    pub offered: i64,
}

impl UsageDelta {
    /// The change to seats taken for any reason.
    pub fn net(&self) -> i64 {
        self.held + self.confirmed + self.blocked + self.offered
    }

    /// Whether nothing changes.
    pub fn is_zero(&self) -> bool {
        *self == UsageDelta::default()
    }

    fn add(&mut self, o: &UsageDelta) {
        self.held += o.held;
        self.confirmed += o.confirmed;
        self.blocked += o.blocked;
        self.offered += o.offered;
    }

    /// `n` seats moving into `held`.
    pub fn held(n: u32) -> Self {
        Self { held: i64::from(n), ..Self::default() }
    }

    /// `n` seats moving into `confirmed`.
    pub fn confirmed(n: u32) -> Self {
        Self { confirmed: i64::from(n), ..Self::default() }
    }

    /// `n` seats moving into `blocked`.
    pub fn blocked(n: u32) -> Self {
        Self { blocked: i64::from(n), ..Self::default() }
    }

    /// `n` seats moving into `offered`.
    pub fn offered(n: u32) -> Self {
        Self { offered: i64::from(n), ..Self::default() }
    }

    /// The opposite change.
    pub fn negated(self) -> Self {
        Self { held: -self.held, confirmed: -self.confirmed, blocked: -self.blocked, offered: -self.offered }
    }
}

/// Seat changes per dimension, merged (one entry per dimension, in dimension order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deltas(SmallVec<[(Dim, UsageDelta); 6]>);

impl Deltas {
    /// No change.
    pub fn new() -> Self {
        Self(SmallVec::new())
    }

    /// Add `d` to each of `dims`.
    pub fn add(&mut self, dims: &[Dim], d: UsageDelta) {
        for dim in dims {
            match self.0.binary_search_by(|(k, _)| k.cmp(dim)) {
                Ok(i) => self.0[i].1.add(&d),
                Err(i) => self.0.insert(i, (dim.clone(), d)),
            }
        }
    }

    /// Add every change of `other`.
    pub fn extend(&mut self, other: &Deltas) {
        for (dim, d) in &other.0 {
            self.add(std::slice::from_ref(dim), *d);
        }
    }

    /// The change to `dim`.
    pub fn get(&self, dim: &Dim) -> UsageDelta {
        self.0.binary_search_by(|(k, _)| k.cmp(dim)).map(|i| self.0[i].1).unwrap_or_default()
    }

    /// The changes, in dimension order (zero changes included).
    pub fn iter(&self) -> impl Iterator<Item = &(Dim, UsageDelta)> {
        self.0.iter()
    }

    /// Whether nothing changes.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|(_, d)| d.is_zero())
    }

    /// The changes, zero ones included: a dimension a seat-admitting change touched stays
    /// under the capacity guard even when its net change is zero (a hold replacing a lapsed
    /// one).
    pub fn into_vec(self) -> Vec<(Dim, UsageDelta)> {
        self.0.into_vec()
    }

    /// The changes as a commit carries them (zero ones included, as [`Deltas::into_vec`]),
    /// without an allocation for the usual few.
    pub fn into_few(self) -> Few<(Dim, UsageDelta), 6> {
        Few::from_small(self.0)
    }
}

/// Seat counters of one occurrence, per dimension. Serialized as an object keyed by
/// dimension (`total`, `tier:NAME`, `pool:NAME`). Shared, copied on write: an occurrence's
/// counters copied out of a store for a decision cost one reference count however many
/// dimensions it counts (a tiered occurrence counts one per tier and pool), and a store
/// that adds a commit's deltas to its own copy, no longer shared, does so in place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters(std::sync::Arc<smallvec::SmallVec<[(Dim, Usage); 1]>>);

impl Serialize for Counters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (d, u) in self.0.iter() {
            m.serialize_entry(d, u)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Counters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<Dim, Usage>::deserialize(d)?;
        Ok(Counters::from_vec(m.into_iter().collect()))
    }
}

impl Counters {
    /// Counters from `(dimension, usage)` pairs.
    pub fn from_vec(mut v: Vec<(Dim, Usage)>) -> Self {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        Self(std::sync::Arc::new(v.into_iter().collect()))
    }

    /// The usage of `dim` (zero if never counted).
    pub fn get(&self, dim: &Dim) -> Usage {
        self.0.binary_search_by(|(k, _)| k.cmp(dim)).map(|i| self.0[i].1).unwrap_or_default()
    }

    /// Every counted dimension.
    pub fn iter(&self) -> impl Iterator<Item = &(Dim, Usage)> {
        self.0.iter()
    }

    /// The counters after `deltas`, or the first dimension that would go negative.
    pub fn apply(&self, deltas: &[(Dim, UsageDelta)]) -> Result<Counters, Dim> {
        let mut next = self.clone();
        let v = std::sync::Arc::make_mut(&mut next.0);
        for (dim, d) in deltas {
            let i = match v.binary_search_by(|(k, _)| k.cmp(dim)) {
                Ok(i) => i,
                Err(i) => {
                    v.insert(i, (dim.clone(), Usage::default()));
                    i
                }
            };
            v[i].1 = v[i].1.plus(d).ok_or_else(|| dim.clone())?;
        }
        Ok(next)
    }

    /// Whether `dim` has a counter (counted at least once, or kept by the configuration).
    pub fn has(&self, dim: &Dim) -> bool {
        self.0.binary_search_by(|(k, _)| k.cmp(dim)).is_ok()
    }

    /// Add `deltas` in place, for a store that checked them already (every dimension has a
    /// counter, none goes negative): a delta that would still break that is left out, so the
    /// counters are never wrong by a wrap.
    pub(crate) fn add_checked(&mut self, deltas: &[(Dim, UsageDelta)]) {
        let v = std::sync::Arc::make_mut(&mut self.0);
        for (dim, d) in deltas {
            if let Ok(i) = v.binary_search_by(|(k, _)| k.cmp(dim)) {
                if let Some(next) = v[i].1.plus(d) {
                    v[i].1 = next;
                }
            }
        }
    }

    /// Drop dimensions with nothing counted that `keep` rejects (after a reconfiguration).
    pub fn retain(&mut self, keep: impl Fn(&Dim) -> bool) {
        std::sync::Arc::make_mut(&mut self.0).retain(|(d, u)| keep(d) || u.total() > 0);
    }
}

/// One occurrence as the store holds it: its configuration (versioned) and seat counters.
///
/// Counters count every hold in state `Held`, lapsed ones included until an operation
/// expires them; that is what makes them a safe upper bound, so that "every dimension within
/// its cap by the counters" implies invariant 1 for live holds.
///
/// Its serde form is stable (frozen by a snapshot test): a store may keep it as one JSON
/// document, as the SQLite example store does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    /// The occurrence's key.
    pub key: OccKey,
    /// How it sells.
    pub config: OccurrenceConfig,
    /// Bumped by every configuration change (price changes included).
    pub config_version: Version,
    /// Seats taken, per dimension.
    pub counters: Counters,
}

impl Occurrence {
    /// A new occurrence with nothing counted, at config version 1.
    pub fn new(key: OccKey, config: OccurrenceConfig) -> Self {
        Self { key, config, config_version: 1, counters: Counters::default() }
    }

    /// Seats still free in `dim` after `pending` changes (`None`: unbounded or unknown).
    pub fn room(&self, dim: &Dim, pending: &Deltas) -> Option<i128> {
        let cap = self.config.capacity_of(dim)??;
        let used = i128::from(self.counters.get(dim).total()) + i128::from(pending.get(dim).net());
        Some(i128::from(cap) - used)
    }

    /// The first dimension of `dims` with no room for `pending` (`None`: all fit).
    pub fn first_over(&self, dims: &[Dim], pending: &Deltas) -> Option<Dim> {
        dims.iter().find(|d| self.room(d, pending).is_some_and(|r| r < 0)).cloned()
    }

    /// Whether every dimension `pending` touches is within its cap after it.
    pub fn fits(&self, pending: &Deltas) -> bool {
        pending.iter().all(|(d, _)| self.room(d, pending).is_none_or(|r| r >= 0))
    }
}

/// One kind of stored record, declared by its own module beside its rules: how its key is
/// built from it, and when (if ever) the sweep must look at it. Its stored name and its
/// variant of [`Record`] and of [`RecordKey`] come from the one list of kinds in this
/// module, so adding a kind is its module and its entry in that list.
pub trait RecordBody: Sized {
    /// The record's key.
    fn key(&self) -> RecordKey;
    /// Whether [`RecordBody::key`] is `key`, without building it (the default builds it).
    fn has_key(&self, key: &RecordKey) -> bool {
        self.key() == *key
    }
    /// When it becomes due for the sweep, if ever (the default: never). Stores index records
    /// by it (the expiry index) and must keep the index in step with every write.
    fn due(&self) -> Option<OffsetDateTime> {
        None
    }
}

/// Builds [`RecordKey`] from the kinds' key shapes (a tuple of one part, named parts, or
/// `unit`), in the list's order (the order keys sort in).
macro_rules! key_enum {
    (@acc [$($out:tt)*]) => {
        /// Which record, within one occurrence. Each variant is declared with its record kind
        /// in the one list of kinds (`record_kinds!`), with its text form.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RecordKey { $($out)* }
    };
    (@acc [$($out:tt)*] $(#[$d:meta])* $kind:ident unit, $($rest:tt)*) => {
        key_enum!(@acc [$($out)* $(#[$d])* $kind,] $($rest)*);
    };
    (@acc [$($out:tt)*] $(#[$d:meta])* $kind:ident ($ty:ty), $($rest:tt)*) => {
        key_enum!(@acc [$($out)* $(#[$d])* $kind($ty),] $($rest)*);
    };
    (@acc [$($out:tt)*] $(#[$d:meta])* $kind:ident { $($fields:tt)* }, $($rest:tt)*) => {
        key_enum!(@acc [$($out)* $(#[$d])* $kind { $($fields)* },] $($rest)*);
    };
}

/// Writes one kind's key parts ([`RecordKey::id`]).
macro_rules! key_text {
    ($key:ident, $out:ident, $kind:ident unit) => {{}};
    ($key:ident, $out:ident, $kind:ident ($ty:ty)) => {
        if let RecordKey::$kind(part) = $key {
            KeyPart::write(part, &mut $out);
        }
    };
    ($key:ident, $out:ident, $kind:ident { $( $(#[$fd:meta])* $f:ident : $fty:ty ),* $(,)? }) => {
        if let RecordKey::$kind { $($f),* } = $key {
            $( KeyPart::write($f, &mut $out); )*
        }
    };
}

/// Reads one kind's key parts, in declaration order ([`RecordKey::parse`]).
macro_rules! key_parse {
    ($parts:ident, $kind:ident unit) => {
        RecordKey::$kind
    };
    ($parts:ident, $kind:ident ($ty:ty)) => {
        RecordKey::$kind(<$ty as KeyPart>::read(&mut $parts)?)
    };
    ($parts:ident, $kind:ident { $( $(#[$fd:meta])* $f:ident : $fty:ty ),* $(,)? }) => {
        RecordKey::$kind { $( $f: <$fty as KeyPart>::read(&mut $parts)? ),* }
    };
}

/// A key's text form, as it is written part by part. Every part is non-empty (identifiers
/// are validated so, numbers print a digit), so an empty text means no part yet.
#[derive(Default)]
struct KeyText {
    text: String,
}

impl KeyText {
    fn push(&mut self, part: &str) {
        if !self.text.is_empty() {
            self.text.push(SEP);
        }
        self.text.push_str(part);
    }
}

/// One part of a record key's text form: an identifier, a number, or an optional last part.
trait KeyPart: Sized {
    fn write(&self, out: &mut KeyText);
    /// The next part, parsed (`None`: absent or not valid).
    fn read<'a>(parts: &mut impl Iterator<Item = &'a str>) -> Option<Self>;
}

macro_rules! id_key_parts {
    ($($t:ty),*) => {$(
        impl KeyPart for $t {
            fn write(&self, out: &mut KeyText) {
                out.push(self.as_str());
            }
            fn read<'a>(parts: &mut impl Iterator<Item = &'a str>) -> Option<Self> {
                <$t>::new(parts.next()?).ok()
            }
        }
    )*};
}

id_key_parts!(Ref, ActorId, ProviderRef, BlockName, OpKey, TierName, SectionName, RowName);

impl KeyPart for u32 {
    fn write(&self, out: &mut KeyText) {
        out.push(&self.to_string());
    }
    fn read<'a>(parts: &mut impl Iterator<Item = &'a str>) -> Option<Self> {
        parts.next()?.parse().ok()
    }
}

/// An optional part, last in its key: written only when present; read when there is one.
impl<T: KeyPart> KeyPart for Option<T> {
    fn write(&self, out: &mut KeyText) {
        if let Some(part) = self {
            part.write(out);
        }
    }
    fn read<'a>(parts: &mut impl Iterator<Item = &'a str>) -> Option<Self> {
        match parts.next() {
            None => Some(None),
            Some(part) => T::read(&mut std::iter::once(part)).map(Some),
        }
    }
}

/// The list of record kinds, each declared once: `Variant(Body) = "stored name", key
/// SHAPE;` where the key's shape is `(Part)`, `{ name: Part, … }` or `unit`. Generates
/// [`RecordKind`] (with [`RecordKind::ALL`] and the stored names), [`Record`] and every
/// dispatch over it (key, due time, JSON codec), and [`RecordKey`] with its kind and its
/// text form ([`RecordKey::id`], [`RecordKey::parse`]: the parts in declaration order).
macro_rules! record_kinds {
    ($( $(#[$doc:meta])* $kind:ident($body:ty) = $name:literal, $(#[$kdoc:meta])* key $key:tt; )*) => {
        key_enum!(@acc [] $( $(#[$kdoc])* $kind $key, )*);

        impl RecordKey {
            /// The key's text form within its kind (stable: stores keep it): its parts in
            /// declaration order, separated by `SEP` (an absent optional part, last, is left
            /// out with its separator).
            pub fn id(&self) -> String {
                let mut out = KeyText::default();
                match self.kind() {
                    $( RecordKind::$kind => key_text!(self, out, $kind $key), )*
                }
                out.text
            }

            /// Parse a kind and [`RecordKey::id`]'s form.
            pub fn parse(kind: RecordKind, id: &str) -> Option<Self> {
                let mut parts = (!id.is_empty()).then(|| id.split(SEP)).into_iter().flatten();
                let key = match kind {
                    $( RecordKind::$kind => key_parse!(parts, $kind $key), )*
                };
                parts.next().is_none().then_some(key)
            }
        }

        /// The kinds of [`RecordKey`] / [`Record`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum RecordKind {
            $(
                #[doc = concat!("[`RecordKey::", stringify!($kind), "`], stored as `", $name, "`.")]
                $kind,
            )*
        }

        impl RecordKind {
            /// Every kind.
            pub const ALL: [RecordKind; [$(RecordKind::$kind),*].len()] = [$(RecordKind::$kind),*];

            /// A stable name for storage.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)*
                }
            }
        }

        /// A stored record of one occurrence.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Record {
            $( $(#[$doc])* $kind($body), )*
        }

        impl Record {
            /// The record's kind.
            pub fn kind(&self) -> RecordKind {
                match self {
                    $(Self::$kind(_) => RecordKind::$kind,)*
                }
            }

            /// The record's key.
            pub fn key(&self) -> RecordKey {
                match self {
                    $(Self::$kind(r) => RecordBody::key(r),)*
                }
            }

            /// Whether [`Record::key`] is `key`, without building it.
            pub fn has_key(&self, key: &RecordKey) -> bool {
                match self {
                    $(Self::$kind(r) => RecordBody::has_key(r, key),)*
                }
            }

            /// When this record becomes due for the sweep, if ever: a held hold at its
            /// expiry, a waiting list at its first offer's expiry. Stores index records by it
            /// (the expiry index) and must keep the index in step with every write.
            pub fn due(&self) -> Option<OffsetDateTime> {
                match self {
                    $(Self::$kind(r) => RecordBody::due(r),)*
                }
            }

            /// The record as JSON (how a store that keeps documents stores it).
            ///
            /// # Errors
            /// A time outside 1677 to 2262 (records keep time as `i64` nanoseconds).
            pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $(Self::$kind(r) => serde_json::to_value(r),)*
                }
            }

            /// Read back what [`Record::to_json`] wrote.
            ///
            /// # Errors
            /// The JSON error if it is not a record of `kind`.
            pub fn from_json(kind: RecordKind, v: serde_json::Value) -> Result<Self, serde_json::Error> {
                Ok(match kind {
                    $(RecordKind::$kind => Self::$kind(serde_json::from_value(v)?),)*
                })
            }
        }

        impl RecordKey {
            /// The key's kind.
            pub fn kind(&self) -> RecordKind {
                match self {
                    $(Self::$kind { .. } => RecordKind::$kind,)*
                }
            }
        }
    };
}

record_kinds! {
    /// A hold, which becomes a booking when paid.
    Booking(Hold) = "booking",
        /// A hold / booking, by its ref (refs are single-use per occurrence).
        key (Ref);
    /// An actor's summary at the occurrence.
    Actor(ActorRecord) = "actor",
        /// An actor's summary at the occurrence: its live hold, its current and confirmed
        /// bookings, its seats.
        key (ActorId);
    /// How a `paid` result was accounted.
    Payment(PaymentRecord) = "payment",
        /// The accounting of a `paid` result for (ref, actor); with a provider ref, a second,
        /// different payment for an already accounted ref.
        key {
            /// The ref the payment came under.
            hold_ref: Ref,
            /// Who paid.
            actor: ActorId,
            /// `None` for the first payment accounted under (ref, actor); the provider's id
            /// for each further, different payment.
            provider_ref: Option<ProviderRef>,
        };
    /// A cancellation of (some of) a booking.
    Cancellation(Cancellation) = "cancellation",
        /// The `n`-th cancellation of a booking (from 1).
        key {
            /// The booking.
            hold_ref: Ref,
            /// Which cancellation.
            n: u32,
        };
    /// Seats blocked by the organiser.
    Block(Block) = "block",
        /// A block of seats.
        key (BlockName);
    /// The waiting list.
    Waitlist(Waitlist) = "waitlist",
        /// The occurrence's waiting list (one record).
        key unit;
    /// A `paid` result refused for its money.
    Rejection(Rejection) = "rejection",
        /// A `paid` result refused for its money, by (ref, actor, provider ref): raises its
        /// alarm once.
        key {
            /// The ref the payment came under.
            hold_ref: Ref,
            /// Who paid.
            actor: ActorId,
            /// The provider's payment id, if the result carried one.
            provider_ref: Option<ProviderRef>,
        };
    /// The first answer of a write made under an operation key.
    Op(OpRecord) = "op",
        /// The first answer of a write made under an operation key.
        key (OpKey);
    /// One row of a seat map.
    SeatRow(SeatRow) = "seat_row",
        /// One row of a seat map: which seats are claimed, by whom.
        key {
            /// The section.
            section: SectionName,
            /// The row.
            row: RowName,
        };
    /// Which rows of a seated tier are sold out.
    SoldOutRows(SoldOutRows) = "sold_out_rows",
        /// Which rows of a seated tier are sold out (every seat sold or blocked).
        key (TierName);
}

impl RecordKind {
    /// Parse [`RecordKind::as_str`]'s form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Separates the parts of a key's text form. Identifiers cannot contain control characters,
/// so it never appears inside a part.
const SEP: char = '\u{1f}';

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id().replace(SEP, "/"))
    }
}

/// The keys an operation loads first: a few, kept inline (no allocation per operation).
pub(crate) type Keys = smallvec::SmallVec<[RecordKey; 8]>;

/// What a decision asks to commit: seat changes, records to write, a new configuration and
/// events — one atomic change to one occurrence. The engine adds the guards: every record
/// loaded for the decision is checked at the version it was read at (written ones too), the
/// configuration version likewise, and the capacity guard applies when `admits` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// Seat changes per dimension.
    pub deltas: Deltas,
    /// The dimensions the change admits seats to (it places a hold, confirms a late payment,
    /// blocks, offers): the store refuses it unless each of them ends within its cap. A
    /// dimension it only frees seats on is not listed (lowering a cap revokes nothing).
    pub admits: Few<Dim, 6>,
    /// Counter guards: each listed dimension's counters must still be exactly these when the
    /// change is committed (before its deltas). A decision that concluded from what the
    /// counters did *not* hold (no held seats to lock a price, nothing counted on a tier
    /// whose pools change, too few free seats to offer a waiting entry) guards what it read,
    /// as a record it read is guarded by its version.
    pub unchanged: Vec<(Dim, Usage)>,
    /// Room guards: each listed dimension must still have at least this many seats taken
    /// (all four counters) when the change is committed (before its deltas) — no seat freed
    /// there since the decision read it. What a decision needs that found too little room
    /// for someone (a waiting entry) and must not miss a seat freed meanwhile, without
    /// conflicting with commits that only take seats.
    pub at_least: Vec<(Dim, u64)>,
    /// Records to write (each one loaded, or loaded as absent, for the decision).
    pub puts: Vec<Record>,
    /// Records to delete (each one loaded for the decision).
    pub deletes: Vec<RecordKey>,
    /// A new configuration for the occurrence.
    pub config: Option<OccurrenceConfig>,
    /// Events, in order.
    pub events: Events,
    /// Whether the decision settled the waiting list itself (a decision that takes seats
    /// serves the list first, before the one asking). Otherwise the engine settles it after
    /// the decision whenever the change frees seats: the list's claim is one rule, applied
    /// in one place (`crate::finish`), not remembered by each seat-freeing decision.
    pub(crate) waitlist_settled: bool,
}

impl Change {
    /// Admit seats to `dims` (see [`Change::admits`]).
    pub fn admit(&mut self, dims: &[Dim]) {
        for d in dims {
            if !self.admits.contains(d) {
                self.admits.push(d.clone());
            }
        }
    }

    /// Put `record`, replacing an earlier put of the same key in this change.
    pub fn put(&mut self, record: Record) {
        let key = record.key();
        match self.puts.iter_mut().find(|r| r.has_key(&key)) {
            Some(slot) => *slot = record,
            None => self.puts.push(record),
        }
    }

    /// The record this change puts under `key`, if any.
    pub fn put_of(&self, key: &RecordKey) -> Option<&Record> {
        self.puts.iter().find(|r| r.has_key(key))
    }

    /// Whether the change writes nothing.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_zero()
            && self.puts.is_empty()
            && self.deletes.is_empty()
            && self.config.is_none()
            && self.events.is_empty()
    }
}

/// One step of a decision: answer, ask for more, or write.
// A step lives for one decision and is moved once; boxing the change would cost an
// allocation per write to save a copy.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step<T> {
    /// Answer without writing anything.
    Answer(T),
    /// Commit this change, then answer.
    Write(Change, T),
    /// Load these records (of the same occurrence) and decide again.
    Load(Vec<RecordKey>),
    /// Load up to this many of the occurrence's due records (lapsed holds and offers, oldest
    /// first, from the expiry index) and decide again.
    LoadDue(usize),
}

/// What a decision may read: what the engine loaded for it.
pub trait Loaded {
    /// The occurrence, if it exists.
    fn occurrence(&self) -> Option<&Occurrence>;
    /// The record under `key`: `None` if it is absent *or was not loaded*; see
    /// [`Loaded::is_loaded`].
    fn get(&self, key: &RecordKey) -> Option<&Record>;
    /// Whether `key` was loaded (as present or absent).
    fn is_loaded(&self, key: &RecordKey) -> bool;
    /// The occurrence's due records, if they were loaded ([`Step::LoadDue`]), oldest first,
    /// and whether that is all of them.
    fn due(&self) -> Option<(&[Record], bool)>;
}

/// Typed access to [`Loaded`] records.
pub trait LoadedExt: Loaded {
    /// The booking under `r`.
    fn booking(&self, r: &Ref) -> Option<&Hold> {
        match self.get(&RecordKey::Booking(r.clone())) {
            Some(Record::Booking(h)) => Some(h),
            _ => None,
        }
    }
    /// The actor's summary.
    fn actor(&self, a: &ActorId) -> Option<&ActorRecord> {
        match self.get(&RecordKey::Actor(a.clone())) {
            Some(Record::Actor(r)) => Some(r),
            _ => None,
        }
    }
    /// A payment record.
    fn payment(&self, key: &RecordKey) -> Option<&PaymentRecord> {
        match self.get(key) {
            Some(Record::Payment(p)) => Some(p),
            _ => None,
        }
    }
    /// The waiting list.
    fn waitlist(&self) -> Option<&Waitlist> {
        match self.get(&RecordKey::Waitlist) {
            Some(Record::Waitlist(w)) => Some(w),
            _ => None,
        }
    }
    /// A block.
    fn block(&self, b: &BlockName) -> Option<&Block> {
        match self.get(&RecordKey::Block(b.clone())) {
            Some(Record::Block(x)) => Some(x),
            _ => None,
        }
    }
}

impl<L: Loaded + ?Sized> LoadedExt for L {}

/// Timestamps as `i64` nanoseconds since the Unix epoch, exactly (1677 to 2262): how records
/// keep time, so that a store's idea of "lapsed" is the rules'.
pub mod nanos {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Nanoseconds of `t`, clamped to the `i64` range.
    pub fn of(t: OffsetDateTime) -> i64 {
        let n = t.unix_timestamp_nanos();
        i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
    }

    /// The instant `n` nanoseconds after the epoch.
    pub fn at(n: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Nanoseconds of `t`, or `None` outside 1677 to 2262.
    pub fn exact(t: OffsetDateTime) -> Option<i64> {
        i64::try_from(t.unix_timestamp_nanos()).ok()
    }

    /// Serialize; an instant outside 1677 to 2262 is an error, never clamped.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        match exact(*t) {
            Some(n) => s.serialize_i64(n),
            None => Err(serde::ser::Error::custom(format!("timestamp {t} is outside 1677 to 2262"))),
        }
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        Ok(at(i64::deserialize(d)?))
    }

    /// The same for `Option<OffsetDateTime>`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        /// Serialize.
        pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => match super::exact(*t) {
                    Some(n) => s.serialize_some(&n),
                    None => Err(serde::ser::Error::custom(format!("timestamp {t} is outside 1677 to 2262"))),
                },
                None => s.serialize_none(),
            }
        }

        /// Deserialize.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
            Ok(Option::<i64>::deserialize(d)?.map(super::at))
        }
    }
}

#[cfg(test)]
mod key_text_tests {
    use super::*;

    /// Every kind's key, and the text form stores keep for it: written by the hand-written
    /// `id` these forms come from, so the generated one reads and writes what stores hold.
    fn pinned() -> Vec<(RecordKey, &'static str)> {
        let r = Ref::new("r1").expect("ref");
        let a = ActorId::new("ann").expect("actor");
        let p = ProviderRef::new("pi_1").expect("provider ref");
        vec![
            (RecordKey::Booking(r.clone()), "r1"),
            (RecordKey::Actor(a.clone()), "ann"),
            (RecordKey::Payment { hold_ref: r.clone(), actor: a.clone(), provider_ref: None }, "r1\u{1f}ann"),
            (
                RecordKey::Payment { hold_ref: r.clone(), actor: a.clone(), provider_ref: Some(p.clone()) },
                "r1\u{1f}ann\u{1f}pi_1",
            ),
            (RecordKey::Cancellation { hold_ref: r.clone(), n: 12 }, "r1\u{1f}12"),
            (RecordKey::Block(BlockName::new("press").expect("block")), "press"),
            (RecordKey::Waitlist, ""),
            (RecordKey::Rejection { hold_ref: r.clone(), actor: a.clone(), provider_ref: None }, "r1\u{1f}ann"),
            (RecordKey::Rejection { hold_ref: r, actor: a, provider_ref: Some(p) }, "r1\u{1f}ann\u{1f}pi_1"),
            (RecordKey::Op(OpKey::new("desk-1").expect("op key")), "desk-1"),
            (
                RecordKey::SeatRow {
                    section: SectionName::new("A").expect("section"),
                    row: RowName::new("3").expect("row"),
                },
                "A\u{1f}3",
            ),
            (RecordKey::SoldOutRows(TierName::new("vip").expect("tier")), "vip"),
        ]
    }

    #[test]
    fn every_key_keeps_its_stored_text_form_and_reads_back() {
        let pinned = pinned();
        let mut kinds: Vec<RecordKind> = pinned.iter().map(|(k, _)| k.kind()).collect();
        kinds.dedup();
        assert_eq!(kinds, RecordKind::ALL, "a kind without a pinned key: add it above");
        for (key, text) in pinned {
            assert_eq!(key.id(), text, "{key:?}");
            assert_eq!(RecordKey::parse(key.kind(), text), Some(key.clone()), "{text:?}");
        }
    }

    #[test]
    fn malformed_key_text_is_refused() {
        let refused = [
            (RecordKind::Waitlist, "x"),
            (RecordKind::Booking, ""),
            (RecordKind::Booking, "r1\u{1f}r2"),
            (RecordKind::Payment, "r1"),
            (RecordKind::Payment, "r1\u{1f}ann\u{1f}"),
            (RecordKind::Payment, "r1\u{1f}ann\u{1f}pi_1\u{1f}more"),
            (RecordKind::Cancellation, "r1\u{1f}one"),
            (RecordKind::Cancellation, "r1"),
            (RecordKind::SeatRow, "A"),
            (RecordKind::Actor, "\u{7}"),
        ];
        for (kind, text) in refused {
            assert_eq!(RecordKey::parse(kind, text), None, "{kind} {text:?}");
        }
    }
}

#[cfg(test)]
mod counters_tests {
    use super::*;
    use crate::contract::TierName;

    /// Counters are shared between copies, and a write to one copy never shows in another
    /// (a decision's copy, taken from the store, keeps what it read).
    #[test]
    fn a_copy_of_the_counters_never_sees_a_write_to_another() {
        let vip = Dim::Tier(TierName::new("vip").expect("tier"));
        let stored = Counters::from_vec(vec![(Dim::Total, Usage::default()), (vip.clone(), Usage::default())]);
        let read = stored.clone();
        let mut next = stored.clone();
        next.add_checked(&[(Dim::Total, UsageDelta::held(2)), (vip.clone(), UsageDelta::held(2))]);
        assert_eq!(next.get(&Dim::Total).held, 2);
        assert_eq!(read.get(&Dim::Total).held, 0, "the reader's copy changed under it");
        assert_eq!(stored.get(&vip).held, 0);
        let applied = read.apply(&[(vip.clone(), UsageDelta::held(1))]).expect("applies");
        assert_eq!((applied.get(&vip).held, read.get(&vip).held), (1, 0));
        let mut kept = applied.clone();
        kept.retain(|d| *d == Dim::Total);
        assert!(kept.has(&vip), "a dimension with seats counted is kept");
        assert_eq!(read.apply(&[]).expect("nothing to apply"), read);
    }
}
