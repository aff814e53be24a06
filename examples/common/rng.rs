//! A tiny deterministic random number generator, so every run of the demo is the same.
//!
//! SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit counter advanced by a fixed odd
//! constant, whose value is scrambled by two multiply-xorshift steps. It is not
//! cryptographic; it is small, fast, and gives the same numbers on every platform.

/// The odd constant the state advances by: 2^64 divided by the golden ratio.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one named purpose under a base seed, such as the shard of
    /// client 3 at selector-1: the same base and label always give the same numbers,
    /// and different labels give unrelated ones.
    pub fn for_label(base: u64, label: &str) -> Self {
        // FNV-1a folds the label into 64 bits; mixing with the base keeps labels that
        // collide under one base apart under another.
        let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
        for byte in label.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
        Self::new(mix(base ^ mix(hash)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// A uniform number in [0, 1), with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform integer in [0, n), for n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        // The high half of a 64×64-bit product maps the bits onto [0, n) with a bias
        // of at most n / 2^64, which is nothing at the sizes used here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A standard normal number (mean 0, variance 1), by the Box–Muller transform.
    pub fn normal(&mut self) -> f64 {
        // 1 - uniform lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Puts `items` in a random order (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The SplitMix64 output function: scrambles 64 bits so that nearby inputs give
/// unrelated outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
