//! A small seedable pseudo-random generator: splitmix64 expands the seed into the state of
//! xoshiro256**. Written here so that a seed means the same workload on every machine and
//! every version of every dependency.

/// xoshiro256** (Blackman and Vigna), seeded through splitmix64.
#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
}

/// One step of splitmix64: advances `seed` and returns the next output.
fn splitmix64(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut splitmix = seed;
        let state = [
            splitmix64(&mut splitmix),
            splitmix64(&mut splitmix),
            splitmix64(&mut splitmix),
            splitmix64(&mut splitmix),
        ];
        // xoshiro cannot leave the all-zero state; splitmix64 never produces it.
        assert!(state.iter().any(|word| *word != 0));
        Rng { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        let state = &mut self.state;
        let result = state[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = state[1] << 17;
        state[2] ^= state[0];
        state[3] ^= state[1];
        state[1] ^= state[2];
        state[0] ^= state[3];
        state[2] ^= shifted;
        state[3] = state[3].rotate_left(45);
        result
    }

    /// Uniform in `0..bound`, without modulo bias (Lemire's multiply-and-reject).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high);
        if low == 0 && high == u64::MAX {
            return self.next_u64();
        }
        low + self.below(high - low + 1)
    }

    /// Uniform in `0..length`, for indexing.
    pub fn index(&mut self, length: usize) -> usize {
        self.below(length as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        assert!(percent <= 100);
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.index(items.len())])
        }
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for position in (1..items.len()).rev() {
            let other = self.index(position + 1);
            items.swap(position, other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro256starstar_matches_the_reference_output() {
        // The reference implementation from state {1, 2, 3, 4}.
        let mut rng = Rng {
            state: [1, 2, 3, 4],
        };
        let outputs: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(outputs, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn splitmix64_matches_the_reference_output() {
        let mut seed = 1234567;
        assert_eq!(splitmix64(&mut seed), 6457827717110365317);
        assert_eq!(splitmix64(&mut seed), 3203168211198807973);
    }

    #[test]
    fn below_stays_in_range_and_reaches_both_ends() {
        let mut rng = Rng::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let value = rng.below(5);
            assert!(value < 5);
            seen[value as usize] = true;
        }
        assert_eq!(seen, [true; 5]);
        assert_eq!(rng.between(9, 9), 9);
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut first = Rng::new(42);
        let mut second = Rng::new(42);
        let mut third = Rng::new(43);
        let a: Vec<u64> = (0..8).map(|_| first.next_u64()).collect();
        let b: Vec<u64> = (0..8).map(|_| second.next_u64()).collect();
        let c: Vec<u64> = (0..8).map(|_| third.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
