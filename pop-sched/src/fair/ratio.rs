//! [`Ratio`]: an exact non-negative rational, the virtual-time tag of a customer.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;

/// A non-negative rational `num / den` (`den ≥ 1`), stored as `[num, den]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ratio {
    pub(crate) num: u64,
    pub(crate) den: u64,
}

impl Default for Ratio {
    fn default() -> Self {
        Self::ZERO
    }
}

impl Ratio {
    pub(crate) const ZERO: Ratio = Ratio { num: 0, den: 1 };

    #[inline]
    pub(crate) fn cmp_to(&self, other: &Ratio) -> Ordering {
        (u128::from(self.num) * u128::from(other.den)).cmp(&(u128::from(other.num) * u128::from(self.den)))
    }

    /// `ceil(self * w)`, saturating.
    #[inline]
    pub(crate) fn scaled_ceil(&self, w: u64) -> u64 {
        if self.den == w {
            return self.num;
        }
        let n = u128::from(self.num) * u128::from(w);
        let d = u128::from(self.den.max(1));
        n.div_ceil(d).min(u128::from(u64::MAX)) as u64
    }

    #[inline]
    pub(crate) fn max(self, other: Ratio) -> Ratio {
        if other.cmp_to(&self) == Ordering::Greater { other } else { self }
    }
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.num, self.den).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (num, den) = <(u64, u64)>::deserialize(deserializer)?;
        if den == 0 {
            return Err(D::Error::custom(format!(
                "[{num}, 0]: the denominator of a [numerator, denominator] is at least 1"
            )));
        }
        Ok(Ratio { num, den })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_compare_exactly_and_round_up() {
        let third = Ratio { num: 1, den: 3 };
        let two_sixths = Ratio { num: 2, den: 6 };
        assert_eq!(third.cmp_to(&two_sixths), Ordering::Equal);
        assert_eq!(third.scaled_ceil(3), 1);
        assert_eq!(third.scaled_ceil(4), 2);
        assert_eq!(Ratio { num: u64::MAX, den: 1 }.scaled_ceil(u64::MAX), u64::MAX);
        assert_eq!(third.max(two_sixths), third);
        assert_eq!(third.max(Ratio { num: 1, den: 2 }), Ratio { num: 1, den: 2 });
    }

    #[test]
    fn ratios_are_stored_as_pairs_with_a_positive_denominator() {
        assert_eq!(serde_json::to_string(&Ratio { num: 3, den: 2 }).ok().as_deref(), Some("[3,2]"));
        assert_eq!(serde_json::from_str::<Ratio>("[3,2]").ok(), Some(Ratio { num: 3, den: 2 }));
        let err = serde_json::from_str::<Ratio>("[3,0]").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("denominator") && err.contains("at least 1"), "{err}");
        assert!(serde_json::from_str::<Ratio>("[3]").is_err());
        assert!(serde_json::from_str::<Ratio>("[-1,2]").is_err());
    }
}
