//! A probability as Envoy writes it (`FractionalPercent`: a numerator over 100, 10,000 or
//! 1,000,000), normalized to parts per million so every decision is one comparison.

/// Parts per million that a roll hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    per_million: u32,
}

pub const MILLION: u32 = 1_000_000;

impl Fraction {
    pub const ALWAYS: Fraction = Fraction {
        per_million: MILLION,
    };
    pub const NEVER: Fraction = Fraction { per_million: 0 };

    /// `numerator / denominator`, capped at 100 % as Envoy caps it.
    pub fn new(numerator: u32, denominator: u32) -> Fraction {
        let per_million = u64::from(numerator) * u64::from(MILLION) / u64::from(denominator.max(1));
        Fraction {
            per_million: per_million.min(u64::from(MILLION)) as u32,
        }
    }

    pub fn per_million(self) -> u32 {
        self.per_million
    }

    /// Whether a uniform draw in `0..MILLION` falls inside the fraction.
    pub fn hits(self, draw: u32) -> bool {
        draw < self.per_million
    }

    /// A fresh draw; always true at 100 % and never at 0 %, without touching the RNG.
    pub fn roll(self) -> bool {
        match self.per_million {
            0 => false,
            MILLION => true,
            _ => self.hits(rand::random_range(0..MILLION)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denominators_normalize_and_cap() {
        assert_eq!(Fraction::new(50, 100).per_million(), 500_000);
        assert_eq!(Fraction::new(1, 10_000).per_million(), 100);
        assert_eq!(Fraction::new(7, MILLION).per_million(), 7);
        assert_eq!(Fraction::new(250, 100), Fraction::ALWAYS);
        assert!(Fraction::ALWAYS.roll());
        assert!(!Fraction::NEVER.roll());
        assert!(Fraction::new(1, 2).hits(499_999));
        assert!(!Fraction::new(1, 2).hits(500_000));
    }
}
