//! The tests' one seeded generator: `rand`'s `StdRng`, seeded so a run replays from its
//! seed. The test binary's root (`tests/suite.rs`) and the PostgreSQL worker
//! examples include it as `crate::rng`, so every test and worker draws from the same code.

#![allow(dead_code, unreachable_pub)]

/// `rand`'s `StdRng`, seeded.
#[derive(Debug, Clone)]
pub struct Rng(rand::rngs::StdRng);

impl Rng {
    /// Seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(rand::SeedableRng::seed_from_u64(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        rand::Rng::random_range(&mut self.0, 0..n)
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
