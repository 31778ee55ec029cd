//! Compact seat lists: the forms a booking's seats and a row's claims are kept in, because a
//! stadium keeps one of each per hold for as long as the show is on sale.
//!
//! Owns: [`SeatList`] (a hold's seats in ticket order) and `SeatNumbers` (the seat numbers of
//! one claim in a row). Both keep the common case — adjacent seats of one row, ascending, as
//! best available picks them and as buyers name them — as a run of two numbers with no
//! allocation, and anything else as a boxed slice. Their serde forms are the plain lists
//! (`["A-1-3", "A-1-4"]`, `[3, 4]`), so stored and wire values do not depend on the form.
//!
//! May not touch: rows, holds, the map's rules. Pure data.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::SeatId;
use crate::contract::{RowName, SectionName};

/// The seats of a hold, in ticket order (seat `i` is ticket `i`'s). Read it with
/// [`iter`](Self::iter), [`get`](Self::get), [`len`](Self::len); build it from a
/// `Vec<SeatId>`. Serialised as the list of seat ids.
///
/// Adjacent seats of one row in ascending order (a best-available pick, or seats named that
/// way) are kept as one run without an allocation; any other list as a boxed slice.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SeatList(List);

#[derive(Clone, PartialEq, Eq, Hash, Default)]
enum List {
    #[default]
    Empty,
    /// `count` (>= 1) seats of one row, numbered from `first` up.
    Run { section: SectionName, row: RowName, first: u16, count: u16 },
    /// Any other list (two or more seats).
    Many(Box<[SeatId]>),
}

impl SeatList {
    /// No seats (an unseated hold).
    pub fn new() -> Self {
        Self(List::Empty)
    }

    /// How many seats.
    pub fn len(&self) -> usize {
        match &self.0 {
            List::Empty => 0,
            List::Run { count, .. } => usize::from(*count),
            List::Many(s) => s.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        matches!(self.0, List::Empty)
    }

    /// The `i`-th seat (ticket `i`'s).
    pub fn get(&self, i: usize) -> Option<SeatId> {
        match &self.0 {
            List::Empty => None,
            List::Run { section, row, first, count } => {
                let i = u16::try_from(i).ok().filter(|i| i < count)?;
                Some(SeatId { section: section.clone(), row: row.clone(), n: first + i })
            }
            List::Many(s) => s.get(i).cloned(),
        }
    }

    /// The seats, in ticket order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SeatId> + '_ {
        Iter { list: self, at: 0 }
    }

    /// Whether `seat` is one of them.
    pub fn contains(&self, seat: &SeatId) -> bool {
        match &self.0 {
            List::Empty => false,
            List::Run { section, row, first, count } => {
                seat.section == *section
                    && seat.row == *row
                    && (u32::from(*first)..u32::from(*first) + u32::from(*count)).contains(&u32::from(seat.n))
            }
            List::Many(s) => s.contains(seat),
        }
    }

    /// The seats as a vector, in ticket order.
    pub fn to_vec(&self) -> Vec<SeatId> {
        self.iter().collect()
    }
}

struct Iter<'a> {
    list: &'a SeatList,
    at: usize,
}

impl Iterator for Iter<'_> {
    type Item = SeatId;

    fn next(&mut self) -> Option<SeatId> {
        let s = self.list.get(self.at)?;
        self.at += 1;
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.list.len().saturating_sub(self.at);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl From<Vec<SeatId>> for SeatList {
    fn from(seats: Vec<SeatId>) -> Self {
        let Some(head) = seats.first() else { return Self(List::Empty) };
        let run = u16::try_from(seats.len()).ok().filter(|_| {
            seats.iter().enumerate().all(|(i, s)| {
                s.section == head.section
                    && s.row == head.row
                    && u16::try_from(i).ok().and_then(|i| head.n.checked_add(i)) == Some(s.n)
            })
        });
        match run {
            Some(count) => {
                Self(List::Run { section: head.section.clone(), row: head.row.clone(), first: head.n, count })
            }
            None => Self(List::Many(seats.into_boxed_slice())),
        }
    }
}

impl From<&[SeatId]> for SeatList {
    fn from(seats: &[SeatId]) -> Self {
        Self::from(seats.to_vec())
    }
}

impl FromIterator<SeatId> for SeatList {
    fn from_iter<I: IntoIterator<Item = SeatId>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl PartialEq<Vec<SeatId>> for SeatList {
    fn eq(&self, other: &Vec<SeatId>) -> bool {
        self.len() == other.len() && other.iter().enumerate().all(|(i, s)| self.get(i).as_ref() == Some(s))
    }
}

impl PartialEq<[SeatId]> for SeatList {
    fn eq(&self, other: &[SeatId]) -> bool {
        self.len() == other.len() && other.iter().enumerate().all(|(i, s)| self.get(i).as_ref() == Some(s))
    }
}

impl fmt::Debug for SeatList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|s| s.to_string())).finish()
    }
}

impl Serialize for SeatList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for SeatList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<SeatId>::deserialize(d).map(Self::from)
    }
}

/// The seat numbers of one claim in a row, ascending, each once: a run `first..first+count`
/// without an allocation, or a boxed list.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum SeatNumbers {
    Run { first: u16, count: u16 },
    List(Box<[u16]>),
}

impl SeatNumbers {
    /// From ascending, distinct numbers.
    pub(crate) fn from_sorted(v: Vec<u16>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0] < w[1]), "seat numbers not ascending: {v:?}");
        match (v.first(), u16::try_from(v.len())) {
            (None, _) => Self::Run { first: 0, count: 0 },
            (Some(&first), Ok(count)) if v.last().copied() == first.checked_add(count - 1) => {
                Self::Run { first, count }
            }
            _ => Self::List(v.into_boxed_slice()),
        }
    }

    /// One seat.
    pub(crate) fn one(n: u16) -> Self {
        Self::Run { first: n, count: 1 }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Run { count, .. } => usize::from(*count),
            Self::List(v) => v.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn contains(&self, n: u16) -> bool {
        match self {
            Self::Run { first, count } => n >= *first && u32::from(n) < u32::from(*first) + u32::from(*count),
            Self::List(v) => v.binary_search(&n).is_ok(),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        let (run, list) = match self {
            Self::Run { first, count } => (Some(u32::from(*first)..u32::from(*first) + u32::from(*count)), None),
            Self::List(v) => (None, Some(v.iter().copied())),
        };
        run.into_iter().flatten().filter_map(|n| u16::try_from(n).ok()).chain(list.into_iter().flatten())
    }

    pub(crate) fn to_vec(&self) -> Vec<u16> {
        self.iter().collect()
    }

    /// Add `n` (kept ascending).
    pub(crate) fn insert(&mut self, n: u16) {
        if self.contains(n) {
            return;
        }
        match self {
            Self::Run { count: 0, .. } => *self = Self::one(n),
            Self::Run { first, count } if first.checked_add(*count) == Some(n) && *count < u16::MAX => *count += 1,
            _ => {
                let mut v = self.to_vec();
                let at = v.binary_search(&n).unwrap_or_else(|e| e);
                v.insert(at, n);
                *self = Self::from_sorted(v);
            }
        }
    }

    /// Remove `n` if present.
    pub(crate) fn remove(&mut self, n: u16) {
        if !self.contains(n) {
            return;
        }
        let mut v = self.to_vec();
        v.retain(|s| *s != n);
        *self = Self::from_sorted(v);
    }
}

impl fmt::Debug for SeatNumbers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(s: &str) -> SeatId {
        SeatId::parse(s).unwrap()
    }

    #[test]
    fn a_run_of_one_row_is_kept_without_a_list_and_reads_back_in_order() {
        let run = SeatList::from(vec![seat("A-1-3"), seat("A-1-4"), seat("A-1-5")]);
        assert!(matches!(run.0, List::Run { first: 3, count: 3, .. }));
        assert_eq!(run.to_vec(), vec![seat("A-1-3"), seat("A-1-4"), seat("A-1-5")]);
        assert!(run.contains(&seat("A-1-5")) && !run.contains(&seat("A-1-6")) && !run.contains(&seat("A-2-4")));
        assert_eq!(run.get(3), None);
        for other in
            [vec![seat("A-1-4"), seat("A-1-3")], vec![seat("A-1-3"), seat("A-2-4")], vec![seat("A-1-3"), seat("A-1-5")]]
        {
            let l = SeatList::from(other.clone());
            assert!(matches!(l.0, List::Many(_)), "{other:?}");
            assert_eq!(l.to_vec(), other);
        }
        assert!(SeatList::from(Vec::new()).is_empty());
        let edge = SeatList::from(vec![seat("A-1-65535")]);
        assert_eq!(edge.to_vec(), vec![seat("A-1-65535")]);
    }

    #[test]
    fn seat_lists_serialise_as_their_ids() {
        let run = SeatList::from(vec![seat("A-1-3"), seat("A-1-4")]);
        let json = serde_json::to_string(&run).unwrap();
        assert_eq!(json, r#"["A-1-3","A-1-4"]"#);
        assert_eq!(serde_json::from_str::<SeatList>(&json).unwrap(), run);
    }

    #[test]
    fn seat_numbers_stay_ascending_and_collapse_to_runs() {
        let mut s = SeatNumbers::from_sorted(vec![]);
        assert!(s.is_empty());
        for n in [4, 2, 3, 9] {
            s.insert(n);
        }
        assert_eq!(s.to_vec(), vec![2, 3, 4, 9]);
        s.remove(9);
        assert_eq!(s, SeatNumbers::Run { first: 2, count: 3 });
        s.remove(3);
        assert_eq!(s.to_vec(), vec![2, 4]);
        assert!(s.contains(4) && !s.contains(3));
        s.remove(2);
        s.remove(4);
        assert!(s.is_empty());
        let mut top = SeatNumbers::one(u16::MAX);
        top.insert(u16::MAX - 1);
        assert_eq!(top.to_vec(), vec![u16::MAX - 1, u16::MAX]);
        assert!(top.contains(u16::MAX));
    }
}
