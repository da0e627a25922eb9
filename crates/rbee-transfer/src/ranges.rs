//! A set of byte ranges: which parts of a partial file are on disk.

use serde::{Deserialize, Serialize};

/// Sorted, disjoint, non-touching half-open ranges `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds `[start, end)`, merging with neighbours.
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // First range whose end reaches `start` (could merge).
        let i = self.0.partition_point(|&(_, e)| e < start);
        let mut new_start = start;
        let mut new_end = end;
        let mut j = i;
        while j < self.0.len() && self.0[j].0 <= end {
            new_start = new_start.min(self.0[j].0);
            new_end = new_end.max(self.0[j].1);
            j += 1;
        }
        self.0.splice(i..j, [(new_start, new_end)]);
    }

    /// Bytes covered.
    pub(crate) fn len(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// End of the range starting at 0 (0 when byte 0 is missing).
    pub(crate) fn prefix_end(&self) -> u64 {
        match self.0.first() {
            Some(&(0, e)) => e,
            _ => 0,
        }
    }

    /// Whether all of `[0, total)` is covered.
    pub(crate) fn covers(&self, total: u64) -> bool {
        total == 0 || self.prefix_end() >= total
    }

    /// The missing parts of `[0, total)`, in order.
    pub(crate) fn gaps(&self, total: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = 0;
        for &(s, e) in &self.0 {
            if s >= total {
                break;
            }
            if s > pos {
                out.push((pos, s));
            }
            pos = pos.max(e);
        }
        if pos < total {
            out.push((pos, total));
        }
        out
    }

    /// Whether all of `[start, end)` is covered.
    pub(crate) fn contains(&self, start: u64, end: u64) -> bool {
        start >= end || self.covered_from(start) >= end
    }

    /// The end of the covered run that holds `at` (`at` itself when it is not covered).
    pub(crate) fn covered_from(&self, at: u64) -> u64 {
        let i = self.0.partition_point(|&(_, e)| e <= at);
        match self.0.get(i) {
            Some(&(s, e)) if s <= at => e,
            _ => at,
        }
    }

    /// Whether every range lies within `[0, total)`.
    pub(crate) fn fits(&self, total: u64) -> bool {
        self.0.last().is_none_or(|&(_, e)| e <= total)
    }

    pub(crate) fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Rebuilds from untrusted input (a state file), normalising it.
    pub(crate) fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut sorted: Vec<(u64, u64)> = ranges.into_iter().collect();
        // Sorted, each insert merges at the end: linear however many ranges a file lists.
        sorted.sort_unstable();
        let mut set = Self::new();
        for (s, e) in sorted {
            set.insert(s, e);
        }
        set
    }

    /// The bytes covered by both sets.
    pub(crate) fn intersect(&self, other: &RangeSet) -> RangeSet {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (s, e) = (a.0.max(b.0), a.1.min(b.1));
            if s < e {
                out.push((s, e));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_reports_gaps() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        assert_eq!(s.gaps(50), vec![(0, 10), (20, 30), (40, 50)]);
        s.insert(20, 30);
        assert_eq!(s.ranges(), &[(10, 40)]);
        s.insert(0, 5);
        s.insert(5, 10);
        assert_eq!(s.ranges(), &[(0, 40)]);
        assert_eq!(s.prefix_end(), 40);
        assert_eq!(s.len(), 40);
        assert!(!s.covers(41));
        assert!(s.covers(40));
        s.insert(45, 46);
        s.insert(3, 50);
        assert_eq!(s.ranges(), &[(0, 50)]);
        s.insert(7, 7);
        assert_eq!(s.len(), 50);
        assert!(s.fits(50) && !s.fits(49));
        assert_eq!(
            RangeSet::from_ranges([(5, 9), (0, 6), (20, 10)]).ranges(),
            &[(0, 9)]
        );
        assert_eq!(RangeSet::new().gaps(0), vec![]);
    }

    #[test]
    fn intersects() {
        let a = RangeSet::from_ranges([(0, 10), (20, 30), (40, 50)]);
        let b = RangeSet::from_ranges([(5, 25), (28, 45)]);
        assert_eq!(
            a.intersect(&b).ranges(),
            &[(5, 10), (20, 25), (28, 30), (40, 45)]
        );
        assert_eq!(b.intersect(&a), a.intersect(&b));
        assert_eq!(a.intersect(&RangeSet::new()), RangeSet::new());
        assert_eq!(a.intersect(&a), a);
    }

    #[test]
    fn overlapping_inserts_match_a_bitmap() {
        let mut seed = 12345u64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..200 {
            let mut set = RangeSet::new();
            let mut bits = [false; 64];
            for _ in 0..10 {
                let a = next(64);
                let b = next(65);
                set.insert(a, b);
                for bit in bits.iter_mut().take(b as usize).skip(a as usize) {
                    *bit = true;
                }
            }
            assert_eq!(set.len(), bits.iter().filter(|b| **b).count() as u64);
            let gap_bytes: u64 = set.gaps(64).iter().map(|(s, e)| e - s).sum();
            assert_eq!(gap_bytes + set.len(), 64);
            for w in set.ranges().windows(2) {
                assert!(w[0].1 < w[1].0);
            }
        }
    }
}
