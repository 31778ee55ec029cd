//! [`Few`]: a list that keeps its first `N` items inline — what one decision and one commit
//! carry (a dimension or two, an event or two), so the hot path allocates nothing for them.
//!
//! Owns: the list type only. May not touch: anything else (plain data, no rule).

use std::fmt;
use std::ops::{Deref, DerefMut};

use smallvec::SmallVec;

/// A list of `T` that keeps up to `N` items inline and spills to the heap beyond: reads like
/// a slice (it derefs to `[T]`), grows with [`push`](Few::push) or [`extend`](Extend::extend),
/// and converts from a `Vec` or an array (`vec![a, b].into()`).
///
/// Used where a commit or a change carries a few of something per operation (seat deltas,
/// the dimensions admitted to): a `Vec` would cost one allocation per operation for them.
pub struct Few<T, const N: usize>(SmallVec<[T; N]>);

impl<T, const N: usize> Few<T, N> {
    /// An empty list.
    pub fn new() -> Self {
        Self(SmallVec::new())
    }

    /// Append `item`.
    pub fn push(&mut self, item: T) {
        self.0.push(item);
    }

    /// Remove every item.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Keep the items for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.0.retain(|x| keep(x));
    }

    /// The items as a `Vec` (allocates unless empty).
    pub fn into_vec(self) -> Vec<T> {
        self.0.into_vec()
    }

    pub(crate) fn from_small(v: SmallVec<[T; N]>) -> Self {
        Self(v)
    }
}

impl<T, const N: usize> Default for Few<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone, const N: usize> Clone for Few<T, N> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for Few<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl<T: PartialEq, const N: usize> PartialEq for Few<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.0[..] == other.0[..]
    }
}

impl<T: Eq, const N: usize> Eq for Few<T, N> {}

impl<T: PartialEq, const N: usize> PartialEq<Vec<T>> for Few<T, N> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self.0[..] == other[..]
    }
}

impl<T: PartialEq, const N: usize> PartialEq<[T]> for Few<T, N> {
    fn eq(&self, other: &[T]) -> bool {
        self.0[..] == *other
    }
}

impl<T, const N: usize> Deref for Few<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const N: usize> DerefMut for Few<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T, const N: usize> From<Vec<T>> for Few<T, N> {
    fn from(v: Vec<T>) -> Self {
        Self(SmallVec::from_vec(v))
    }
}

impl<T, const N: usize, const M: usize> From<[T; M]> for Few<T, N> {
    fn from(items: [T; M]) -> Self {
        items.into_iter().collect()
    }
}

impl<T, const N: usize> FromIterator<T> for Few<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<T, const N: usize> Extend<T> for Few<T, N> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// The owned items, in order.
pub struct IntoIter<T, const N: usize>(smallvec::IntoIter<[T; N]>);

impl<T, const N: usize> Iterator for IntoIter<T, N> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T, const N: usize> DoubleEndedIterator for IntoIter<T, N> {
    fn next_back(&mut self) -> Option<T> {
        self.0.next_back()
    }
}

impl<T, const N: usize> ExactSizeIterator for IntoIter<T, N> {}

impl<T, const N: usize> IntoIterator for Few<T, N> {
    type Item = T;
    type IntoIter = IntoIter<T, N>;
    fn into_iter(self) -> IntoIter<T, N> {
        IntoIter(self.0.into_iter())
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a Few<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a mut Few<T, N> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::Few;

    #[test]
    fn a_few_items_stay_inline_and_more_spill_in_order() {
        let mut f: Few<u32, 2> = Few::new();
        f.push(1);
        f.push(2);
        assert!(!f.0.spilled());
        f.extend([3, 4]);
        assert!(f.0.spilled());
        assert_eq!(f, vec![1, 2, 3, 4]);
        f.retain(|x| x % 2 == 0);
        assert_eq!(&f[..], &[2, 4]);
        assert_eq!(f.clone().into_iter().rev().collect::<Vec<_>>(), vec![4, 2]);
        f.clear();
        assert!(f.is_empty());
        assert_eq!(Few::<u32, 1>::from([7, 8]).into_vec(), vec![7, 8]);
    }
}
