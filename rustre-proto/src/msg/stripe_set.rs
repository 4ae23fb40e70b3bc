//! [`StripeSet`]: a set of a file's stripe indices, kept as a fixed bitmap over
//! [`MAX_STRIPE_COUNT`] stripes. A layout records in one which stripes hold written data
//! (`Layout::written`), and a writer's size report carries one (`MdsOp::ReportSize`).

use serde::{Deserialize, Serialize};

use super::MAX_STRIPE_COUNT;

/// 64-bit words of a [`StripeSet`]: one bit for every stripe a file may have.
pub const STRIPE_SET_WORDS: usize = (MAX_STRIPE_COUNT as usize).div_ceil(64);

/// A set of stripe indices below [`MAX_STRIPE_COUNT`]. Its encoding is always
/// [`STRIPE_SET_WORDS`] words (postcard varints: 4 bytes for a set of low stripes, at most
/// 40), so it costs a layout little and a peer cannot make it large.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StripeSet([u64; STRIPE_SET_WORDS]);

impl StripeSet {
    /// Adds `stripe`; a stripe no file can have (at or past [`MAX_STRIPE_COUNT`]) is ignored.
    pub fn insert(&mut self, stripe: u32) {
        if let Some(w) = self.0.get_mut(stripe as usize / 64) {
            *w |= 1 << (stripe % 64);
        }
    }

    pub fn contains(&self, stripe: u32) -> bool {
        self.0
            .get(stripe as usize / 64)
            .is_some_and(|w| w & (1 << (stripe % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// Adds every stripe of `other`; true when one was new.
    pub fn union_with(&mut self, other: &StripeSet) -> bool {
        let before = *self;
        for (w, o) in self.0.iter_mut().zip(other.0) {
            *w |= o;
        }
        *self != before
    }

    /// Removes every stripe of `other`.
    pub fn remove_all(&mut self, other: &StripeSet) {
        for (w, o) in self.0.iter_mut().zip(other.0) {
            *w &= !o;
        }
    }

    /// Keeps only the stripes for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        for s in self.iter().collect::<Vec<_>>() {
            if !keep(s) {
                self.0[s as usize / 64] &= !(1 << (s % 64));
            }
        }
    }

    /// The stripes, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..MAX_STRIPE_COUNT).filter(|s| self.contains(*s))
    }
}

impl FromIterator<u32> for StripeSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> StripeSet {
        let mut set = StripeSet::default();
        for s in iter {
            set.insert(s);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_of_stripes() {
        let mut a: StripeSet = [0, 63, 64, MAX_STRIPE_COUNT - 1].into_iter().collect();
        a.insert(MAX_STRIPE_COUNT);
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 63, 64, 255]);
        assert!(a.contains(64) && !a.contains(1) && !a.contains(MAX_STRIPE_COUNT));
        let b: StripeSet = [1, 64].into_iter().collect();
        assert!(a.union_with(&b), "1 is new");
        assert!(!a.union_with(&b), "nothing new");
        a.remove_all(&[0, 255].into_iter().collect());
        a.retain(|s| s != 63);
        assert_eq!(a.iter().collect::<Vec<_>>(), [1, 64]);
        assert!(StripeSet::default().is_empty() && !a.is_empty());
    }

    #[test]
    fn the_encoding_is_small_and_bounded() {
        let low: StripeSet = [0, 2].into_iter().collect();
        let bytes = crate::codec::encode(&low).unwrap();
        assert_eq!(bytes.len(), STRIPE_SET_WORDS);
        assert_eq!(crate::codec::decode::<StripeSet>(&bytes).unwrap(), low);
        let full: StripeSet = (0..MAX_STRIPE_COUNT).collect();
        assert!(crate::codec::encode(&full).unwrap().len() <= 10 * STRIPE_SET_WORDS);
    }
}
