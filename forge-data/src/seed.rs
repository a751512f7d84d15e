//! Seeds: one random generator per (seed, epoch, cell) for masking, per
//! (seed, epoch, purpose) for the loader's shuffles, and the bit mixer
//! both are derived with (also used by the train/validation split and the
//! synthetic data generator).

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The generator of one cell in one epoch.
pub fn cell_rng(seed: u64, epoch: u64, cell: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(mix(mix(seed) ^ epoch) ^ cell))
}

/// The generator of one of an epoch's shuffles, told apart by `salt`.
pub(crate) fn epoch_rng(seed: u64, epoch: u64, salt: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(mix(seed ^ salt) ^ epoch))
}

/// SplitMix64 finaliser: spreads nearby inputs over the whole range.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
