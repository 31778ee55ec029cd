//! Assigned seating: seat maps, the record of one row, choosing seats, and
//! the one rule that keeps rows in step with the holds and blocks that claim their seats.
//!
//! Owns: [`SeatMap`] (sections in quality order, each of one tier, with rows of numbered
//! seats), [`SeatId`] (`SECTION-ROW-N`), [`SeatRow`] (one row's claims: which hold or block
//! has which seats, a held claim with its expiry), choosing seats for a request (the ids a
//! buyer named, or the best available block that strands no single seat), the seat-map read,
//! and `reconcile`: after *any* decision, the rows its change touches are rewritten from the
//! holds and blocks it writes. No decision edits a row itself, so a seat is freed by every
//! path that ends a hold (release, expiry, cancellation, a ticket cancelled) without each path
//! remembering to.
//!
//! May not touch: counters, payments, storage, the clock. A seat counts against the total,
//! its tier and its tier's pools through the hold or block that claims it, exactly like an
//! unseated seat; the rows only say *which* seats. Every function is pure: the engine loads
//! the rows asked for and commits the change, each row guarded at the version read, which is
//! what keeps two buyers off one seat under any interleaving.
//!
//! A row that was never written has every seat free and costs nothing to store: a map of
//! 80,000 seats is a few hundred bytes of configuration until seats are sold.
//!
//! Beside the rows, one [`SoldOutRows`] record per seated tier says which of its rows have
//! every seat sold or blocked. `reconcile` keeps it exact (a row changes state only in a
//! commit that writes the row, and that commit writes the index when the row starts or stops
//! being sold out), and best available reads it first, so it skips sold-out rows without
//! reading them. Sold out is a state no clock changes (a held seat may lapse; a sold or
//! blocked one does not), so the index never goes stale between writes.

use crate::kind::{Classify, ErrorKind};
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::contract::{BlockName, Ref, RowName, SectionName, TierName};
use crate::records::{Change, Loaded, Record, RecordKey, nanos};

mod compact;
pub use compact::SeatList;
use compact::SeatNumbers;

/// The most seats one row may have.
pub const MAX_ROW_SEATS: u16 = 1_000;

/// The most rows one seat map may have (over all sections).
pub const MAX_MAP_ROWS: usize = 20_000;

/// The most sections one seat map may have.
pub const MAX_SECTIONS: usize = 1_000;

/// One row of a section: its name and how many seats it has (numbered from 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// The row's name (`1`, `AA`).
    pub row: RowName,
    /// Seats in the row, numbered 1 to `seats`.
    pub seats: u16,
}

/// One section of a seat map: a tier and rows in quality order (better first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The section's name (`A`, `stalls`).
    pub section: SectionName,
    /// The tier of every seat in it (its price and pools).
    pub tier: TierName,
    /// Its rows, better first.
    pub rows: Vec<RowSpec>,
}

/// An occurrence's seat map: sections in quality order (better first). A seat has its
/// section's tier; a seated tier's seats are exactly its places (its cap is its seat count).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatMap {
    /// The sections, better first.
    pub sections: Vec<Section>,
    /// Refuse a chosen-seat request that would strand a single free seat
    /// ([`SingleGap`](crate::holds::RequestOutcome::SingleGap)), and let best available pick
    /// only blocks that strand none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_single_gaps: bool,
}

/// Why a seat map was refused. Nothing was changed; fix the value named.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SeatMapError {
    /// A map needs at least one section, each with at least one row.
    #[error("a seat map needs sections, and each section rows")]
    Empty,
    /// A section or row name contains `-` (seat ids are `SECTION-ROW-N`).
    #[error("section and row names may not contain '-': {0}")]
    BadName(String),
    /// Two sections share a name, or two rows of one section do.
    #[error("{0} is declared twice")]
    Duplicate(String),
    /// A row has no seats, or more than [`MAX_ROW_SEATS`].
    #[error("row {0} must have 1 to {max} seats", max = MAX_ROW_SEATS)]
    BadRow(String),
    /// More than [`MAX_SECTIONS`] sections or [`MAX_MAP_ROWS`] rows.
    #[error("at most {max_sections} sections and {max_rows} rows")]
    TooLarge {
        /// [`MAX_SECTIONS`].
        max_sections: usize,
        /// [`MAX_MAP_ROWS`].
        max_rows: usize,
    },
    /// A section names a tier the occurrence does not declare.
    #[error("section {section} names tier {tier}, which is not declared")]
    UnknownTier {
        /// The section.
        section: SectionName,
        /// The tier it names.
        tier: TierName,
    },
}

impl SeatMap {
    /// Check the map on its own and against the occurrence's tiers (`has_tier`).
    ///
    /// # Errors
    /// The first [`SeatMapError`] found.
    pub fn check(&self, has_tier: impl Fn(&TierName) -> bool) -> Result<(), SeatMapError> {
        if self.sections.is_empty() || self.sections.iter().any(|s| s.rows.is_empty()) {
            return Err(SeatMapError::Empty);
        }
        let rows: usize = self.sections.iter().map(|s| s.rows.len()).sum();
        if self.sections.len() > MAX_SECTIONS || rows > MAX_MAP_ROWS {
            return Err(SeatMapError::TooLarge { max_sections: MAX_SECTIONS, max_rows: MAX_MAP_ROWS });
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.sections {
            if s.section.as_str().contains('-') {
                return Err(SeatMapError::BadName(s.section.to_string()));
            }
            if !names.insert(s.section.as_str()) {
                return Err(SeatMapError::Duplicate(format!("section {}", s.section)));
            }
            if !has_tier(&s.tier) {
                return Err(SeatMapError::UnknownTier { section: s.section.clone(), tier: s.tier.clone() });
            }
            let mut row_names = std::collections::HashSet::new();
            for r in &s.rows {
                if r.row.as_str().contains('-') {
                    return Err(SeatMapError::BadName(r.row.to_string()));
                }
                if !row_names.insert(r.row.as_str()) {
                    return Err(SeatMapError::Duplicate(format!("row {}-{}", s.section, r.row)));
                }
                if !(1..=MAX_ROW_SEATS).contains(&r.seats) {
                    return Err(SeatMapError::BadRow(format!("{}-{}", s.section, r.row)));
                }
            }
        }
        Ok(())
    }

    /// The section named `name`.
    pub fn section(&self, name: &SectionName) -> Option<&Section> {
        self.sections.iter().find(|s| &s.section == name)
    }

    /// Where a row sits in the map (section index, row index) and its seat count.
    fn locate(&self, section: &SectionName, row: &RowName) -> Option<((usize, usize), u16)> {
        let (si, s) = self.sections.iter().enumerate().find(|(_, s)| &s.section == section)?;
        let (ri, r) = s.rows.iter().enumerate().find(|(_, r)| &r.row == row)?;
        Some(((si, ri), r.seats))
    }

    /// The tier of `seat`, if the map has that seat.
    pub fn tier_of(&self, seat: &SeatId) -> Option<&TierName> {
        let s = self.section(&seat.section)?;
        let r = s.rows.iter().find(|r| r.row == seat.row)?;
        (1..=r.seats).contains(&seat.n).then_some(&s.tier)
    }

    /// Whether any section sells `tier`.
    pub fn is_seated(&self, tier: &TierName) -> bool {
        self.sections.iter().any(|s| &s.tier == tier)
    }

    /// Seats of `tier` in the map.
    pub fn seats_of(&self, tier: &TierName) -> u64 {
        self.sections.iter().filter(|s| &s.tier == tier).flat_map(|s| s.rows.iter()).map(|r| u64::from(r.seats)).sum()
    }

    /// Every seat in the map.
    pub fn seat_count(&self) -> u64 {
        self.sections.iter().flat_map(|s| s.rows.iter()).map(|r| u64::from(r.seats)).sum()
    }

    /// The rows of `tier`, in quality order.
    fn rows_of<'a>(&'a self, tier: &'a TierName) -> impl Iterator<Item = (&'a Section, &'a RowSpec)> + 'a {
        self.sections.iter().filter(move |s| &s.tier == tier).flat_map(|s| s.rows.iter().map(move |r| (s, r)))
    }

    /// The tier of a row and the row's place among the tier's rows (map order).
    fn tier_row(&self, section: &SectionName, row: &RowName) -> Option<(&TierName, usize, u16)> {
        let s = self.section(section)?;
        let before: usize = self
            .sections
            .iter()
            .take_while(|x| x.section != *section)
            .filter(|x| x.tier == s.tier)
            .map(|x| x.rows.len())
            .sum();
        let (ri, r) = s.rows.iter().enumerate().find(|(_, r)| &r.row == row)?;
        Some((&s.tier, before + ri, r.seats))
    }

    /// Every row's key, in map order.
    pub fn row_keys(&self) -> Vec<RecordKey> {
        self.sections.iter().flat_map(|s| s.rows.iter().map(|r| row_key(&s.section, &r.row))).collect()
    }
}

/// The record key of a row.
pub fn row_key(section: &SectionName, row: &RowName) -> RecordKey {
    RecordKey::SeatRow { section: section.clone(), row: row.clone() }
}

/// One seat: `SECTION-ROW-N` (`A-1-7`), seats numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatId {
    /// The section.
    pub section: SectionName,
    /// The row.
    pub row: RowName,
    /// The seat's number in its row (from 1).
    pub n: u16,
}

/// A seat id that is not `SECTION-ROW-N`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a seat id is SECTION-ROW-N (N from 1): {0:?}")]
pub struct SeatIdError(pub String);

impl SeatId {
    /// Parse `SECTION-ROW-N`.
    ///
    /// # Errors
    /// [`SeatIdError`] if it has another shape, a name is invalid or `N` is not 1 to 65535.
    pub fn parse(s: &str) -> Result<Self, SeatIdError> {
        let bad = || SeatIdError(s.chars().take(64).collect());
        let mut parts = s.split('-');
        let (Some(sec), Some(row), Some(n), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let n: u16 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
        Ok(Self { section: SectionName::new(sec).map_err(|_| bad())?, row: RowName::new(row).map_err(|_| bad())?, n })
    }
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.section, self.row, self.n)
    }
}

impl Serialize for SeatId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SeatId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Who claims seats of a row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A hold or booking, by its ref.
    Hold(Ref),
    /// A block, by its name.
    Block(BlockName),
}

/// Seats of one row claimed by one owner in one state: the form a row's claims are written
/// in (its serde form, and [`SeatRow::claims`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ClaimRepr", into = "ClaimRepr")]
pub struct Claim {
    /// Who claims them.
    pub owner: Owner,
    /// For a hold not yet paid, when it lapses (then the seats are free again, whether or
    /// not anything expired the hold); `None`: sold, or blocked.
    pub until: Option<OffsetDateTime>,
    /// The seat numbers, ascending.
    pub seats: Vec<u16>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block: Option<BlockName>,
    #[serde(default, with = "nanos::option", skip_serializing_if = "Option::is_none")]
    until: Option<OffsetDateTime>,
    seats: Vec<u16>,
}

impl TryFrom<ClaimRepr> for Claim {
    type Error = String;
    fn try_from(r: ClaimRepr) -> Result<Self, String> {
        let owner = match (r.hold, r.block) {
            (Some(h), None) => Owner::Hold(h),
            (None, Some(b)) => Owner::Block(b),
            _ => return Err("a claim names exactly one of hold, block".into()),
        };
        Ok(Claim { owner, until: r.until, seats: r.seats })
    }
}

impl From<Claim> for ClaimRepr {
    fn from(c: Claim) -> Self {
        let (hold, block) = match c.owner {
            Owner::Hold(h) => (Some(h), None),
            Owner::Block(b) => (None, Some(b)),
        };
        ClaimRepr { hold, block, until: c.until, seats: c.seats }
    }
}

/// A row that cannot be: a claim without seats or with seats out of order, a block with an
/// expiry, or a seat in two claims. Nothing was stored; such a row was not written by
/// seathold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid seat row: {0}")]
pub struct InvalidRow(String);

/// Seats held by a hold not yet paid, until it lapses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    hold: Ref,
    until: OffsetDateTime,
    seats: SeatNumbers,
}

/// Seats sold to a booking, or blocked by a block: no clock frees them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Taken<O> {
    owner: O,
    seats: SeatNumbers,
}

/// One claim of a row, read in place.
#[derive(Clone, Copy)]
enum ClaimRef<'a> {
    Held(&'a Held),
    Sold(&'a Taken<Ref>),
    Blocked(&'a Taken<BlockName>),
}

impl<'a> ClaimRef<'a> {
    fn seats(self) -> &'a SeatNumbers {
        match self {
            Self::Held(h) => &h.seats,
            Self::Sold(t) => &t.seats,
            Self::Blocked(t) => &t.seats,
        }
    }

    fn is(self, owner: &Owner) -> bool {
        match (self, owner) {
            (Self::Held(Held { hold, .. }) | Self::Sold(Taken { owner: hold, .. }), Owner::Hold(o)) => hold == o,
            (Self::Blocked(t), Owner::Block(b)) => t.owner == *b,
            _ => false,
        }
    }

    fn status(self, now: OffsetDateTime) -> SeatStatus {
        match self {
            Self::Blocked(_) => SeatStatus::Blocked,
            Self::Sold(_) => SeatStatus::Sold,
            Self::Held(h) if h.until > now => SeatStatus::Held,
            Self::Held(_) => SeatStatus::Free,
        }
    }

    fn to_claim(self) -> Claim {
        let (owner, until) = match self {
            Self::Held(h) => (Owner::Hold(h.hold.clone()), Some(h.until)),
            Self::Sold(t) => (Owner::Hold(t.owner.clone()), None),
            Self::Blocked(t) => (Owner::Block(t.owner.clone()), None),
        };
        Claim { owner, until, seats: self.seats().to_vec() }
    }
}

/// A seat's state at one instant, as the seat map shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SeatStatus {
    /// Free (never claimed, freed, or held by a hold that lapsed).
    Free,
    /// In a live hold.
    Held,
    /// Sold.
    Sold,
    /// Blocked by the organiser.
    Blocked,
}

impl SeatStatus {
    /// The seat map's character: `.` free, `H` held, `S` sold, `B` blocked.
    pub fn as_char(self) -> char {
        match self {
            Self::Free => '.',
            Self::Held => 'H',
            Self::Sold => 'S',
            Self::Blocked => 'B',
        }
    }
}

/// The stored record of one row: which of its seats are held (and until when), sold or
/// blocked, and by whom. A row never written has no record (every seat free).
///
/// Kept compact, since a stadium keeps one per row for the whole sale: claims grouped by
/// state (a sold claim carries no expiry), each claim's seats a run of two numbers when they
/// are adjacent. Its serde form is the list of its [`Claim`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RowRepr", into = "RowRepr")]
pub struct SeatRow {
    /// The section.
    pub section: SectionName,
    /// The row.
    pub row: RowName,
    held: Vec<Held>,
    sold: Vec<Taken<Ref>>,
    blocked: Vec<Taken<BlockName>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowRepr {
    section: SectionName,
    row: RowName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    claims: Vec<Claim>,
}

impl TryFrom<RowRepr> for SeatRow {
    type Error = InvalidRow;
    fn try_from(r: RowRepr) -> Result<Self, InvalidRow> {
        SeatRow::with_claims(r.section, r.row, r.claims)
    }
}

impl From<SeatRow> for RowRepr {
    fn from(r: SeatRow) -> Self {
        let claims = r.claims();
        RowRepr { section: r.section, row: r.row, claims }
    }
}

impl SeatRow {
    /// A row with nothing claimed.
    pub fn empty(section: SectionName, row: RowName) -> Self {
        Self { section, row, held: Vec::new(), sold: Vec::new(), blocked: Vec::new() }
    }

    /// A row with these claims.
    ///
    /// # Errors
    /// [`InvalidRow`] if a claim has no seats, seats not ascending or numbered 0, a block
    /// claim has an expiry, or a seat is in two claims. Claims of one owner in one state are
    /// merged into one, in any order given.
    pub fn with_claims(section: SectionName, row: RowName, claims: Vec<Claim>) -> Result<Self, InvalidRow> {
        let mut out = Self::empty(section, row);
        // Seats seen so far, a bit each, as many words as the highest seat needs: linear in
        // the row's seats.
        let top = claims.iter().filter_map(|c| c.seats.iter().max()).max().copied().unwrap_or(0);
        let mut seen = vec![0u64; usize::from(top / 64) + 1];
        for c in claims {
            if c.seats.is_empty() || c.seats[0] == 0 || c.seats.windows(2).any(|w| w[0] >= w[1]) {
                return Err(InvalidRow(format!("claim seats {:?} are not ascending numbers from 1", c.seats)));
            }
            if let (Owner::Block(b), Some(_)) = (&c.owner, c.until) {
                return Err(InvalidRow(format!("block {b} has an expiry")));
            }
            for &n in &c.seats {
                let (word, bit) = (usize::from(n / 64), 1u64 << (n % 64));
                if seen[word] & bit != 0 {
                    return Err(InvalidRow(format!("seat {n} is in two claims")));
                }
                seen[word] |= bit;
                // Claims of one owner in one state (and expiry) are merged, as `take` keeps them.
                out.take(n, &c.owner, c.until);
            }
        }
        out.shrink();
        Ok(out)
    }

    /// The claims: held ones first, then sold, then blocked.
    pub fn claims(&self) -> Vec<Claim> {
        self.iter_claims().map(ClaimRef::to_claim).collect()
    }

    /// The record key.
    pub fn key(&self) -> RecordKey {
        row_key(&self.section, &self.row)
    }

    fn iter_claims(&self) -> impl Iterator<Item = ClaimRef<'_>> {
        let held = self.held.iter().map(ClaimRef::Held);
        let sold = self.sold.iter().map(ClaimRef::Sold);
        held.chain(sold).chain(self.blocked.iter().map(ClaimRef::Blocked))
    }

    fn claim_of(&self, n: u16) -> Option<ClaimRef<'_>> {
        self.iter_claims().find(|c| c.seats().contains(n))
    }

    /// Each seat's status at `now` (`seats` long: seat `n` at index `n - 1`).
    pub fn statuses(&self, seats: u16, now: OffsetDateTime) -> Vec<SeatStatus> {
        statuses(Some(self), seats, now)
    }

    /// Seat `n` out of whichever claim has it (only if that claim is `owner`'s, when given).
    fn remove(&mut self, n: u16, owner: Option<&Owner>) {
        fn out<T>(v: &mut Vec<T>, n: u16, seats: impl Fn(&mut T) -> &mut SeatNumbers, mine: impl Fn(&T) -> bool) {
            if let Some(i) = v.iter_mut().position(|c| seats(c).contains(n)).filter(|i| mine(&v[*i])) {
                seats(&mut v[i]).remove(n);
                if seats(&mut v[i]).is_empty() {
                    v.remove(i);
                }
            }
        }
        let hold = |h: &Ref| owner.is_none_or(|o| matches!(o, Owner::Hold(x) if x == h));
        let block = |b: &BlockName| owner.is_none_or(|o| matches!(o, Owner::Block(x) if x == b));
        out(&mut self.held, n, |c| &mut c.seats, |c| hold(&c.hold));
        out(&mut self.sold, n, |c| &mut c.seats, |c| hold(&c.owner));
        out(&mut self.blocked, n, |c| &mut c.seats, |c| block(&c.owner));
    }

    fn release(&mut self, n: u16, owner: &Owner) {
        self.remove(n, Some(owner));
    }

    fn take(&mut self, n: u16, owner: &Owner, until: Option<OffsetDateTime>) {
        self.remove(n, None);
        let seats = match (owner, until) {
            (Owner::Hold(h), Some(t)) => {
                let i = match self.held.iter().position(|c| c.hold == *h && c.until == t) {
                    Some(i) => i,
                    None => {
                        self.held.push(Held { hold: h.clone(), until: t, seats: SeatNumbers::from_sorted(Vec::new()) });
                        self.held.len() - 1
                    }
                };
                &mut self.held[i].seats
            }
            (Owner::Hold(h), None) => taken(&mut self.sold, h),
            (Owner::Block(b), _) => taken(&mut self.blocked, b),
        };
        seats.insert(n);
    }

    /// Give back spare capacity (a row is kept for the whole sale).
    fn shrink(&mut self) {
        self.held.shrink_to_fit();
        self.sold.shrink_to_fit();
        self.blocked.shrink_to_fit();
    }
}

/// The seats of `owner`'s claim in `v`, a new empty claim if it has none.
fn taken<'a, O: PartialEq + Clone>(v: &'a mut Vec<Taken<O>>, owner: &O) -> &'a mut SeatNumbers {
    let i = match v.iter().position(|c| c.owner == *owner) {
        Some(i) => i,
        None => {
            v.push(Taken { owner: owner.clone(), seats: SeatNumbers::from_sorted(Vec::new()) });
            v.len() - 1
        }
    };
    &mut v[i].seats
}

/// Which rows of one seated tier are sold out: every seat sold or blocked. Row `i` is the
/// tier's `i`-th row in map order. No record: none is. Kept by `reconcile` in the commits that
/// change a row's state; read by best available to skip sold-out rows without reading them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoldOutRows {
    /// The tier.
    pub tier: TierName,
    /// Bit `i % 64` of word `i / 64`: the tier's row `i` is sold out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<u64>,
}

impl SoldOutRows {
    /// No row sold out.
    pub fn new(tier: TierName) -> Self {
        Self { tier, rows: Vec::new() }
    }

    /// Whether the tier's row `i` is sold out.
    pub fn contains(&self, i: usize) -> bool {
        self.rows.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize, sold_out: bool) {
        if sold_out {
            if self.rows.len() <= i / 64 {
                self.rows.resize(i / 64 + 1, 0);
            }
            self.rows[i / 64] |= 1 << (i % 64);
        } else if let Some(w) = self.rows.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
            while self.rows.last() == Some(&0) {
                self.rows.pop();
            }
        }
    }
}

/// The key of a tier's [`SoldOutRows`].
pub fn sold_out_key(tier: &TierName) -> RecordKey {
    RecordKey::SoldOutRows(tier.clone())
}

/// Whether every one of a row's `seats` is sold or blocked (a state no clock changes).
pub fn sold_out(row: Option<&SeatRow>, seats: u16) -> bool {
    let taken: usize =
        row.map_or(0, |r| r.sold.iter().map(|c| c.seats.len()).chain(r.blocked.iter().map(|c| c.seats.len())).sum());
    taken >= usize::from(seats)
}

/// Each seat's status at `now` of a row with `seats` seats (`None`: never written, all free).
pub fn statuses(row: Option<&SeatRow>, seats: u16, now: OffsetDateTime) -> Vec<SeatStatus> {
    let mut out = vec![SeatStatus::Free; usize::from(seats)];
    for c in row.into_iter().flat_map(SeatRow::iter_claims) {
        let st = c.status(now);
        for n in c.seats().iter() {
            if let Some(slot) = usize::from(n).checked_sub(1).and_then(|i| out.get_mut(i)) {
                *slot = st;
            }
        }
    }
    out
}

/// What a seated request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeatChoice {
    /// These seats, all or none.
    Chosen(Vec<SeatId>),
    /// `quantity` adjacent seats of `tier`, in one row, picked by the library.
    Best {
        /// The tier.
        tier: TierName,
        /// Seats wanted.
        quantity: u32,
    },
}

/// Why a seated request or block is refused outright. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SeatError {
    /// The occurrence has no seat map: request lines (or a count) instead.
    #[error("this occurrence has no seat map")]
    NotSeated,
    /// A seat id the map does not have: check the map.
    #[error("unknown seat {0}")]
    UnknownSeat(SeatId),
    /// A seat named twice in one request.
    #[error("seat {0} is named twice")]
    DuplicateSeat(SeatId),
    /// No seats named.
    #[error("name at least one seat")]
    NoSeats,
    /// Best available for a tier without seats in the map: request lines for it.
    #[error("tier {0} has no seats in the map")]
    UnseatedTier(TierName),
    /// Lines (or a counted block, or a waiting-list entry) for a tier whose seats are places
    /// in the map: name the seats or ask for the best available.
    #[error("tier {0} is seated: name seats or ask for the best available")]
    SeatedTier(TierName),
}

impl Classify for SeatError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownSeat(_) | Self::DuplicateSeat(_) | Self::NoSeats => ErrorKind::BadRequest,
            _ => ErrorKind::Unprocessable,
        }
    }
}

/// What choosing seats found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chosen {
    /// These seats, in the order the hold lists them.
    Seats(Vec<SeatId>),
    /// Load these rows and choose again.
    Load(Vec<RecordKey>),
    /// This seat is held, sold or blocked.
    Taken(SeatId),
    /// Taking the seats would strand this single free seat (`no_single_gaps`).
    Gap(SeatId),
    /// No adjacent block of the quantity is free in any row of the tier.
    Full(TierName),
}

/// The row under `key` as `view` has it (`None`: never written). `Err`: not loaded.
fn loaded_row<'a>(view: &'a impl Loaded, key: &RecordKey) -> Result<Option<&'a SeatRow>, ()> {
    if !view.is_loaded(key) {
        return Err(());
    }
    Ok(match view.get(key) {
        Some(Record::SeatRow(r)) => Some(r),
        _ => None,
    })
}

/// Choose the seats of a seated request: check the named ones, or find the best block.
///
/// # Errors
/// [`SeatError`] for seats the map does not have, a seat named twice, or best available for
/// a tier without seats.
pub(crate) fn choose(
    view: &impl Loaded,
    map: &SeatMap,
    choice: &SeatChoice,
    now: OffsetDateTime,
) -> Result<Chosen, SeatError> {
    match choice {
        SeatChoice::Chosen(seats) => choose_named(view, map, seats, true, now),
        SeatChoice::Best { tier, quantity } => Ok(best(view, map, tier, *quantity, now)),
    }
}

/// Check named seats: all free (`SeatTaken` names the first that is not, in the order
/// given) and, when `gaps` and the map asks, none stranding a single seat.
///
/// # Errors
/// [`SeatError`] for an empty list, an unknown seat or one named twice.
pub(crate) fn choose_named(
    view: &impl Loaded,
    map: &SeatMap,
    seats: &[SeatId],
    gaps: bool,
    now: OffsetDateTime,
) -> Result<Chosen, SeatError> {
    if seats.is_empty() {
        return Err(SeatError::NoSeats);
    }
    let mut rows: Vec<((usize, usize), u16, RecordKey)> = Vec::new();
    for (i, s) in seats.iter().enumerate() {
        let (at, n) = map.locate(&s.section, &s.row).ok_or_else(|| SeatError::UnknownSeat(s.clone()))?;
        if s.n == 0 || s.n > n {
            return Err(SeatError::UnknownSeat(s.clone()));
        }
        if seats[..i].contains(s) {
            return Err(SeatError::DuplicateSeat(s.clone()));
        }
        if !rows.iter().any(|(a, _, _)| *a == at) {
            rows.push((at, n, row_key(&s.section, &s.row)));
        }
    }
    let missing: Vec<RecordKey> =
        rows.iter().filter(|(_, _, k)| !view.is_loaded(k)).map(|(_, _, k)| k.clone()).collect();
    if !missing.is_empty() {
        return Ok(Chosen::Load(missing));
    }
    rows.sort_by_key(|(at, _, _)| *at);
    let mut before = Vec::with_capacity(rows.len());
    for (_, n, key) in &rows {
        let Ok(row) = loaded_row(view, key) else { return Ok(Chosen::Load(vec![key.clone()])) };
        before.push(statuses(row, *n, now));
    }
    let row_index = |s: &SeatId| {
        rows.iter().position(
            |(_, _, k)| matches!(k, RecordKey::SeatRow { section, row } if *section == s.section && *row == s.row),
        )
    };
    for s in seats {
        let Some(r) = row_index(s) else { continue };
        if before[r][usize::from(s.n) - 1] != SeatStatus::Free {
            return Ok(Chosen::Taken(s.clone()));
        }
    }
    if gaps && map.no_single_gaps {
        for (r, (_, _, key)) in rows.iter().enumerate() {
            let free_before: Vec<bool> = before[r].iter().map(|s| *s == SeatStatus::Free).collect();
            let mut free_after = free_before.clone();
            for s in seats.iter().filter(|s| row_index(s) == Some(r)) {
                free_after[usize::from(s.n) - 1] = false;
            }
            if let Some(i) = first_stranded(&free_before, &free_after) {
                let RecordKey::SeatRow { section, row } = key else { continue };
                let n = u16::try_from(i + 1).unwrap_or(u16::MAX);
                return Ok(Chosen::Gap(SeatId { section: section.clone(), row: row.clone(), n }));
            }
        }
    }
    Ok(Chosen::Seats(seats.to_vec()))
}

/// The first seat (index) free after, with no free neighbour after, that had one before.
fn first_stranded(before: &[bool], after: &[bool]) -> Option<usize> {
    let free_nb = |v: &[bool], i: usize| (i > 0 && v[i - 1]) || v.get(i + 1).copied().unwrap_or(false);
    (0..after.len()).find(|&i| after[i] && !free_nb(after, i) && free_nb(before, i))
}

/// Whether taking `q` seats from index `s` strands a single free seat beside the block.
fn strands(free: &[bool], s: usize, q: usize) -> bool {
    let left = s.checked_sub(1).is_some_and(|l| free[l] && !(l > 0 && free[l - 1]));
    let r = s + q;
    let right = r < free.len() && free[r] && !free.get(r + 1).copied().unwrap_or(false);
    left || right
}

/// The best block of `q` free seats in a row (index of its first seat): the one whose middle
/// is nearest the row's middle, lower numbers on a tie; with `strict`, only blocks that strand
/// no single seat.
fn best_block(free: &[bool], q: usize, strict: bool) -> Option<usize> {
    let n = free.len();
    if q == 0 || q > n {
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    let mut run = 0usize;
    for i in 0..n {
        run = if free[i] { run + 1 } else { 0 };
        if run < q {
            continue;
        }
        let s = i + 1 - q;
        if strict && strands(free, s, q) {
            continue;
        }
        // Twice the distance between the block's middle and the row's, in seats.
        let score = (2 * s + q - 1).abs_diff(n - 1);
        if best.is_none_or(|(b, _)| score < b) {
            best = Some((score, s));
        }
    }
    best.map(|(_, s)| s)
}

/// How many rows best available loads in its first round.
const FIRST_ROWS: usize = 2;

fn best(view: &impl Loaded, map: &SeatMap, tier: &TierName, quantity: u32, now: OffsetDateTime) -> Chosen {
    let q = usize::try_from(quantity).unwrap_or(usize::MAX);
    let index = sold_out_key(tier);
    if !view.is_loaded(&index) {
        // The first round reads the index and the tier's first rows (the usual find).
        let mut keys = vec![index];
        keys.extend(
            map.rows_of(tier)
                .filter(|(_, r)| usize::from(r.seats) >= q)
                .map(|(s, r)| row_key(&s.section, &r.row))
                .filter(|k| !view.is_loaded(k))
                .take(FIRST_ROWS),
        );
        return Chosen::Load(keys);
    }
    let done = match view.get(&index) {
        Some(Record::SoldOutRows(d)) => Some(d),
        _ => None,
    };
    // Sold-out rows are skipped unread: the index is guarded like every record read, so a
    // seat freed in one of them meanwhile sends this request round again.
    let rows: Vec<(&Section, &RowSpec)> = map
        .rows_of(tier)
        .enumerate()
        .filter(|(i, (_, r))| usize::from(r.seats) >= q && !done.is_some_and(|d| d.contains(*i)))
        .map(|(_, sr)| sr)
        .collect();
    let passes: &[bool] = if map.no_single_gaps { &[true] } else { &[true, false] };
    for &strict in passes {
        for (i, (s, r)) in rows.iter().enumerate() {
            let key = row_key(&s.section, &r.row);
            let Ok(row) = loaded_row(view, &key) else {
                // Load the next rows in one round, twice as many as are loaded already.
                let loaded = rows[..i].len();
                let batch = loaded.max(FIRST_ROWS);
                let keys = rows[i..]
                    .iter()
                    .map(|(s, r)| row_key(&s.section, &r.row))
                    .filter(|k| !view.is_loaded(k))
                    .take(batch)
                    .collect();
                return Chosen::Load(keys);
            };
            // A row whose claims leave fewer than `q` seats is skipped without a status pass.
            let claimed: usize = row.map_or(0, |r| {
                r.iter_claims().filter(|c| c.status(now) != SeatStatus::Free).map(|c| c.seats().len()).sum()
            });
            if usize::from(r.seats).saturating_sub(claimed) < q {
                continue;
            }
            let free: Vec<bool> = statuses(row, r.seats, now).iter().map(|s| *s == SeatStatus::Free).collect();
            if let Some(start) = best_block(&free, q, strict) {
                return Chosen::Seats(
                    (start..start + q)
                        .map(|i| SeatId {
                            section: s.section.clone(),
                            row: r.row.clone(),
                            n: u16::try_from(i + 1).unwrap_or(u16::MAX),
                        })
                        .collect(),
                );
            }
        }
    }
    Chosen::Full(tier.clone())
}

/// Whether every seat of `seats` is free at `now` or already claimed by `owner` (a revival
/// onto a hold's own seats). `Err`: load these rows first.
pub(crate) fn all_free_for(
    view: &impl Loaded,
    map: &SeatMap,
    seats: &[SeatId],
    owner: &Owner,
    now: OffsetDateTime,
) -> Result<bool, Vec<RecordKey>> {
    let keys: Vec<RecordKey> = seats.iter().map(|s| row_key(&s.section, &s.row)).collect();
    let missing: Vec<RecordKey> = keys.iter().filter(|k| !view.is_loaded(k)).cloned().collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    for (s, key) in seats.iter().zip(&keys) {
        if map.tier_of(s).is_none() {
            return Ok(false);
        }
        let Ok(Some(row)) = loaded_row(view, key) else { continue };
        if let Some(c) = row.claim_of(s.n) {
            if !c.is(owner) && c.status(now) != SeatStatus::Free {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// What a hold claims of its `i`-th seat: `Some(Some(t))` held until `t`, `Some(None)` sold,
/// `None` nothing (the hold ended, or that seat's ticket was cancelled).
fn hold_claim(h: &crate::holds::Hold, i: usize) -> Option<Option<OffsetDateTime>> {
    use crate::holds::HoldState;
    match h.state {
        HoldState::Held => Some(Some(h.expires_at)),
        HoldState::Confirmed => {
            let cancelled = match h.tickets.get(i) {
                Some(t) => matches!(t, crate::tickets::TicketState::Cancelled { .. }),
                // Without tickets, a partial cancellation frees the last seats.
                None => i >= usize::try_from(h.standing_seats()).unwrap_or(usize::MAX),
            };
            (!cancelled).then_some(None)
        }
        _ => None,
    }
}

/// Why [`reconcile`] could not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreconciled {
    /// Load these rows and decide again.
    Load(Vec<RecordKey>),
    /// The change claims a seat someone else has: a decision did not check it (an engine
    /// bug, never a lost race: the rows it read are guarded).
    Bug(String),
}

/// One seat moving to a new claim (or to none).
struct Move {
    seat: SeatId,
    owner: Owner,
    to: Option<Option<OffsetDateTime>>,
}

/// Rewrite the rows `change` touches from the holds and blocks it writes: each seat of a
/// hold or block whose claim changes (placed, paid, extended, released, expired, cancelled,
/// a ticket cancelled, a block placed or removed) is moved in its row, and the row put in the
/// change. Frees only free a seat still claimed by its owner (another hold may have taken a
/// lapsed hold's seat); takes require the seat free, lapsed, or the owner's.
///
/// The engine runs this on every change of a seated occurrence, after the decision: no
/// decision writes rows. A change that touches no seat costs one check.
pub(crate) fn reconcile(view: &impl Loaded, change: &mut Change, now: OffsetDateTime) -> Result<(), Unreconciled> {
    let Some(map) = view.occurrence().and_then(|o| o.config.seating()) else { return Ok(()) };
    let mut moves: Vec<Move> = Vec::new();
    for rec in &change.puts {
        match rec {
            Record::Booking(h) => {
                let old = match view.get(&RecordKey::Booking(h.hold_ref.clone())) {
                    Some(Record::Booking(o)) => Some(o),
                    _ => None,
                };
                if h.seat_ids.is_empty() {
                    continue;
                }
                for (i, seat) in h.seat_ids.iter().enumerate() {
                    let to = hold_claim(h, i);
                    if old.map(|o| hold_claim(o, i)) != Some(to) || old.is_none() {
                        moves.push(Move { seat, owner: Owner::Hold(h.hold_ref.clone()), to });
                    }
                }
            }
            Record::Block(b) => {
                for seat in &b.seat_ids {
                    moves.push(Move { seat: seat.clone(), owner: Owner::Block(b.block.clone()), to: Some(None) });
                }
            }
            _ => {}
        }
    }
    for key in &change.deletes {
        if let (RecordKey::Block(_), Some(Record::Block(b))) = (key, view.get(key)) {
            for seat in &b.seat_ids {
                moves.push(Move { seat: seat.clone(), owner: Owner::Block(b.block.clone()), to: None });
            }
        }
    }
    if moves.is_empty() {
        return Ok(());
    }
    let mut names: Vec<(&SectionName, &RowName)> = Vec::new();
    for m in &moves {
        let k = (&m.seat.section, &m.seat.row);
        if !names.contains(&k) {
            names.push(k);
        }
    }
    let missing: Vec<RecordKey> = names.iter().map(|(s, r)| row_key(s, r)).filter(|k| !view.is_loaded(k)).collect();
    if !missing.is_empty() {
        return Err(Unreconciled::Load(missing));
    }
    let mut rows: Vec<SeatRow> = names
        .iter()
        .map(|(s, r)| {
            let k = row_key(s, r);
            match (change.put_of(&k), view.get(&k)) {
                (Some(Record::SeatRow(row)), _) | (None, Some(Record::SeatRow(row))) => row.clone(),
                _ => SeatRow::empty((*s).clone(), (*r).clone()),
            }
        })
        .collect();
    let row_of = |rows: &[SeatRow], s: &SeatId| -> usize {
        rows.iter().position(|r| r.section == s.section && r.row == s.row).unwrap_or(0)
    };
    for m in moves.iter().filter(|m| m.to.is_none()) {
        let i = row_of(&rows, &m.seat);
        rows[i].release(m.seat.n, &m.owner);
    }
    for m in &moves {
        let Some(until) = m.to else { continue };
        if map.tier_of(&m.seat).is_none() {
            return Err(Unreconciled::Bug(format!("seat {} is not in the map", m.seat)));
        }
        let i = row_of(&rows, &m.seat);
        let row = &mut rows[i];
        if let Some(c) = row.claim_of(m.seat.n) {
            if !c.is(&m.owner) && c.status(now) != SeatStatus::Free {
                return Err(Unreconciled::Bug(format!("a change claims seat {}, which is taken", m.seat)));
            }
        }
        row.take(m.seat.n, &m.owner, until);
    }
    // The rows that start or stop being sold out, and their tiers' indexes.
    let mut flips: Vec<(&TierName, usize, bool)> = Vec::new();
    for r in &rows {
        let Some((tier, i, seats)) = map.tier_row(&r.section, &r.row) else { continue };
        let before = match view.get(&r.key()) {
            Some(Record::SeatRow(old)) => sold_out(Some(old), seats),
            _ => false,
        };
        let after = sold_out(Some(r), seats);
        if before != after {
            flips.push((tier, i, after));
        }
    }
    let mut missing: Vec<RecordKey> = Vec::new();
    for (tier, _, _) in &flips {
        let k = sold_out_key(tier);
        if !view.is_loaded(&k) && !missing.contains(&k) {
            missing.push(k);
        }
    }
    if !missing.is_empty() {
        return Err(Unreconciled::Load(missing));
    }
    let mut indexes: Vec<SoldOutRows> = Vec::new();
    for (tier, i, sold) in flips {
        let at = match indexes.iter().position(|x| &x.tier == tier) {
            Some(at) => at,
            None => {
                indexes.push(match view.get(&sold_out_key(tier)) {
                    Some(Record::SoldOutRows(d)) => d.clone(),
                    _ => SoldOutRows::new(tier.clone()),
                });
                indexes.len() - 1
            }
        };
        indexes[at].set(i, sold);
    }
    for mut r in rows {
        r.shrink();
        change.put(Record::SeatRow(r));
    }
    for x in indexes {
        change.put(Record::SoldOutRows(x));
    }
    Ok(())
}

/// The seat map as a reader sees it at one instant: per section, per row, one character a
/// seat (`.` free, `H` held, `S` sold, `B` blocked), in map order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatMapView {
    /// Sections in map order, each with its rows in order.
    pub sections: Vec<(SectionName, Vec<(RowName, String)>)>,
}

/// Build the seat map view of `map` from its rows (`get(key)`: the row record, if any).
pub fn seat_map_view<'a>(
    map: &SeatMap,
    get: impl Fn(&RecordKey) -> Option<&'a SeatRow>,
    now: OffsetDateTime,
) -> SeatMapView {
    let sections = map
        .sections
        .iter()
        .map(|s| {
            let rows = s
                .rows
                .iter()
                .map(|r| {
                    let st = statuses(get(&row_key(&s.section, &r.row)), r.seats, now);
                    (r.row.clone(), st.iter().map(|s| s.as_char()).collect())
                })
                .collect();
            (s.section.clone(), rows)
        })
        .collect();
    SeatMapView { sections }
}

/// A seat row is stored under (section, row).
impl crate::records::RecordBody for SeatRow {
    fn key(&self) -> RecordKey {
        SeatRow::key(self)
    }
    fn has_key(&self, key: &RecordKey) -> bool {
        matches!(key, RecordKey::SeatRow { section, row } if *section == self.section && *row == self.row)
    }
}

/// A tier's sold-out index is stored under the tier.
impl crate::records::RecordBody for SoldOutRows {
    fn key(&self) -> RecordKey {
        RecordKey::SoldOutRows(self.tier.clone())
    }
    fn has_key(&self, key: &RecordKey) -> bool {
        matches!(key, RecordKey::SoldOutRows(t) if *t == self.tier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(s: &str) -> Vec<bool> {
        s.chars().map(|c| c == '.').collect()
    }

    #[test]
    fn best_block_prefers_the_middle_then_lower_numbers() {
        assert_eq!(best_block(&free("......"), 2, true), Some(2));
        // Middle blocks of 3 strand seat 1 or 6; the ends do not.
        assert_eq!(best_block(&free("......"), 3, true), Some(0));
        assert_eq!(best_block(&free("......"), 3, false), Some(1));
        assert_eq!(best_block(&free("HH..HH"), 2, true), Some(2));
        assert_eq!(best_block(&free("HH.HHH"), 2, false), None);
    }

    #[test]
    fn stranded_seats_are_found_in_map_order() {
        assert_eq!(first_stranded(&free("......"), &free(".HH...")), Some(0));
        assert_eq!(first_stranded(&free("......"), &free("HH....")), None);
        // A seat alone before is not stranded by a change elsewhere.
        assert_eq!(first_stranded(&free(".H...."), &free(".H..HH")), None);
    }

    #[test]
    fn rows_load_claims_in_any_order_merge_an_owners_and_refuse_impossible_ones() {
        let t = 1_800_000_000_000_000_000i64;
        // As an older writer might have ordered them, one hold's held seats in two claims.
        let json = format!(
            r#"{{"section":"A","row":"1","claims":[{{"block":"desk","seats":[9]}},{{"hold":"r1","until":{t},"seats":[4]}},{{"hold":"r0","seats":[1,7]}},{{"hold":"r1","until":{t},"seats":[3]}}]}}"#
        );
        let row: SeatRow = serde_json::from_str(&json).unwrap();
        let until = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t)).unwrap();
        let claims = row.claims();
        assert_eq!(claims.len(), 3, "{claims:?}");
        assert_eq!(
            claims[0],
            Claim { owner: Owner::Hold(Ref::new("r1").unwrap()), until: Some(until), seats: vec![3, 4] }
        );
        assert_eq!(claims[1], Claim { owner: Owner::Hold(Ref::new("r0").unwrap()), until: None, seats: vec![1, 7] });
        assert_eq!(claims[2].seats, vec![9]);
        let before = until - time::Duration::seconds(1);
        let chars: String = row.statuses(9, before).iter().map(|s| s.as_char()).collect();
        assert_eq!(chars, "S.HH..S.B");
        let after: String = row.statuses(9, until).iter().map(|s| s.as_char()).collect();
        assert_eq!(after, "S.....S.B", "a lapsed hold's seats are free");
        // Written back and read again: the same row.
        let again: SeatRow = serde_json::from_str(&serde_json::to_string(&row).unwrap()).unwrap();
        assert_eq!(again, row);

        let bad = |claims: &str| {
            serde_json::from_str::<SeatRow>(&format!(r#"{{"section":"A","row":"1","claims":{claims}}}"#)).is_err()
        };
        assert!(!bad(r#"[{"hold":"r1","seats":[1]}]"#));
        assert!(bad(r#"[{"hold":"r1","seats":[]}]"#), "no seats");
        assert!(bad(r#"[{"hold":"r1","seats":[2,1]}]"#), "not ascending");
        assert!(bad(r#"[{"hold":"r1","seats":[0]}]"#), "seat 0");
        assert!(bad(r#"[{"hold":"r1","seats":[1]},{"block":"b","seats":[1]}]"#), "a seat in two claims");
        assert!(bad(&format!(r#"[{{"block":"b","until":{t},"seats":[1]}}]"#)), "a block with an expiry");
        assert!(bad(r#"[{"hold":"r1","block":"b","seats":[1]}]"#), "two owners");
    }

    #[test]
    fn seat_ids_round_trip_and_refuse_other_shapes() {
        let s = SeatId::parse("A-12-7").unwrap();
        assert_eq!(s.to_string(), "A-12-7");
        for bad in ["A-1", "A-1-0", "A-1-x", "A-1-2-3", "-1-2", "A-1-70000"] {
            assert!(SeatId::parse(bad).is_err(), "{bad}");
        }
    }
}
