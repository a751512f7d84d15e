//! Sharding an epoch over the ranks of a distributed job, with the exact
//! semantics of PyTorch's `torch.utils.data.DistributedSampler`.
//!
//! For a dataset of `n` items, `R` replicas (ranks), rank `r`:
//!
//! 1. the epoch's order is `torch.randperm(n)` from a generator seeded with
//!    `seed + epoch` when shuffling, else `0..n`;
//! 2. without `drop_last`, every rank gets `ceil(n / R)` items: the order is
//!    padded to `R * ceil(n / R)` by repeating it from the front (cyclically
//!    when the padding is longer than the order); with `drop_last` (and `n`
//!    not a multiple of `R`) every rank gets `floor(n / R)` items and the
//!    tail of the order is cut;
//! 3. rank `r` takes positions `r, r + R, r + 2R, ...`.
//!
//! The permutation is PyTorch's CPU `randperm` reproduced bit for bit: a
//! 32-bit Mersenne Twister (MT19937, as `at::mt19937`) seeded with the low 32
//! bits of the seed, and a Fisher-Yates pass that swaps position `i` with
//! `i + (draw % (n - i))`. `scripts/make_distributed_sampler_fixture.py`
//! records the indices torch's own sampler gives; the tests compare them
//! exactly. One difference, documented: for `n >= 214_748_364`
//! (`u32::MAX / 20`) torch switches to another draw that forge does not
//! reproduce (checked against torch 2.13: 64-bit draws made of two 32-bit
//! ones, high word first or low word first, do not give torch's order);
//! forge then shuffles with 64-bit draws (high word first), a uniform
//! permutation of its own, the same on every rank, but not torch's.
//!
//! What this module is not: it does not know the process group; the caller
//! says which rank this is and how many there are (see `forge-dist`'s
//! launcher environment).

use super::DataError;

/// Below this many items torch's `randperm` draws 32-bit numbers.
pub const RANDPERM_32BIT_LIMIT: usize = (u32::MAX / 20) as usize;

/// The 32-bit Mersenne Twister of PyTorch's CPU generator.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mt19937(index {})", self.index)
    }
}

impl Mt19937 {
    /// Seeded as `torch.Generator().manual_seed(seed)`: the low 32 bits.
    pub fn new(seed: u64) -> Mt19937 {
        let mut state = [0u32; 624];
        state[0] = seed as u32;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    /// The next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.state[i] = self.state[(i + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

/// `torch.randperm(n, generator=torch.Generator().manual_seed(seed))` on
/// the CPU (exact below [`RANDPERM_32BIT_LIMIT`]; see the module docs).
pub fn torch_randperm(n: usize, seed: u64) -> Vec<usize> {
    fisher_yates(n, seed, n >= RANDPERM_32BIT_LIMIT)
}

/// Fisher-Yates as torch's `randperm`, with 32-bit draws, or 64-bit ones
/// (high word first) when `wide`.
fn fisher_yates(n: usize, seed: u64, wide: bool) -> Vec<usize> {
    let mut rng = Mt19937::new(seed);
    let mut out: Vec<usize> = (0..n).collect();
    for i in 0..n.saturating_sub(1) {
        let left = (n - i) as u64;
        let draw = if wide {
            (u64::from(rng.next_u32()) << 32) | u64::from(rng.next_u32())
        } else {
            u64::from(rng.next_u32())
        };
        out.swap(i, i + (draw % left) as usize);
    }
    out
}

/// PyTorch's `DistributedSampler` over a dataset of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistributedSampler {
    /// Number of ranks.
    pub num_replicas: usize,
    /// This rank, `0..num_replicas`.
    pub rank: usize,
    /// Shuffle each epoch from `seed + epoch`.
    pub shuffle: bool,
    pub seed: u64,
    /// Cut the order to a multiple of `num_replicas` instead of padding it.
    pub drop_last: bool,
}

impl DistributedSampler {
    /// A sampler for `rank` of `num_replicas`; refuses a rank out of range.
    pub fn new(
        num_replicas: usize,
        rank: usize,
        shuffle: bool,
        seed: u64,
        drop_last: bool,
    ) -> Result<DistributedSampler, DataError> {
        if num_replicas == 0 {
            return Err(DataError::setting(
                "num_replicas",
                "must be at least 1, found 0",
            ));
        }
        if rank >= num_replicas {
            return Err(DataError::setting(
                "rank",
                format!("rank {rank} is not below the number of replicas {num_replicas}"),
            ));
        }
        Ok(DistributedSampler {
            num_replicas,
            rank,
            shuffle,
            seed,
            drop_last,
        })
    }

    /// Items each rank gets per epoch from a dataset of `n`.
    pub fn num_samples(&self, n: usize) -> usize {
        if self.drop_last && !n.is_multiple_of(self.num_replicas) {
            n / self.num_replicas
        } else {
            n.div_ceil(self.num_replicas)
        }
    }

    /// Items all ranks together get per epoch (padding included).
    pub fn total_size(&self, n: usize) -> usize {
        self.num_samples(n) * self.num_replicas
    }

    /// This rank's indices into a dataset of `n` for `epoch`.
    pub fn indices(&self, n: usize, epoch: u64) -> Vec<usize> {
        let order = if self.shuffle {
            torch_randperm(n, self.seed.wrapping_add(epoch))
        } else {
            (0..n).collect()
        };
        let total = self.total_size(n);
        (self.rank..total)
            .step_by(self.num_replicas)
            .map(|p| order[p % n])
            .collect()
    }
}

/// A data loader's share of a distributed job: rank `rank` of
/// `world_size` takes its [`DistributedSampler`] indices of each epoch, the
/// loader's `shuffle` and `seed` deciding the order (as Lightning hands its
/// seed to the sampler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world_size: usize,
    /// The sampler's `drop_last`: cut the epoch to a multiple of the world
    /// size instead of padding it (not the loader's last-batch `drop_last`).
    pub drop_last: bool,
}

impl Shard {
    /// The sampler of this shard, refusing a rank out of range.
    pub fn sampler(&self, shuffle: bool, seed: u64) -> Result<DistributedSampler, DataError> {
        DistributedSampler::new(self.world_size, self.rank, shuffle, seed, self.drop_last)
    }

    /// Items this rank gets per epoch from a dataset of `n` (padding
    /// included).
    pub fn share(&self, n: usize) -> usize {
        DistributedSampler {
            num_replicas: self.world_size.max(1),
            rank: 0,
            shuffle: false,
            seed: 0,
            drop_last: self.drop_last,
        }
        .num_samples(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn fixture() -> Value {
        let path = super::super::test_util::fixture("data", "distributed_sampler.json");
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).unwrap()
    }

    fn usizes(v: &Value) -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    }

    #[test]
    fn randperm_is_torchs_bit_for_bit() {
        let fx = fixture();
        let cases = fx["randperm"].as_array().unwrap();
        assert!(cases.len() >= 6);
        for c in cases {
            let (n, seed) = (
                c["n"].as_u64().unwrap() as usize,
                c["seed"].as_u64().unwrap(),
            );
            assert_eq!(
                torch_randperm(n, seed),
                usizes(&c["perm"]),
                "n {n} seed {seed}"
            );
        }
    }

    #[test]
    fn every_rank_matches_torchs_distributed_sampler() {
        let fx = fixture();
        let cases = fx["sampler"].as_array().unwrap();
        assert!(cases.len() >= 100, "{}", cases.len());
        for c in cases {
            let n = c["n"].as_u64().unwrap() as usize;
            let world = c["num_replicas"].as_u64().unwrap() as usize;
            let epoch = c["epoch"].as_u64().unwrap();
            let ranks = c["ranks"].as_array().unwrap();
            assert_eq!(ranks.len(), world);
            for (rank, want) in ranks.iter().enumerate() {
                let s = DistributedSampler::new(
                    world,
                    rank,
                    c["shuffle"].as_bool().unwrap(),
                    c["seed"].as_u64().unwrap(),
                    c["drop_last"].as_bool().unwrap(),
                )
                .unwrap();
                let want = usizes(want);
                assert_eq!(s.indices(n, epoch), want, "{c}, rank {rank}");
                assert_eq!(s.num_samples(n), want.len());
            }
        }
    }

    #[test]
    fn an_epoch_covers_every_item_once_apart_from_padding() {
        for (n, world, drop_last) in [(10, 3, false), (10, 3, true), (3, 8, false), (12, 4, false)]
        {
            let mut all: Vec<usize> = (0..world)
                .flat_map(|r| {
                    DistributedSampler::new(world, r, true, 9, drop_last)
                        .unwrap()
                        .indices(n, 4)
                })
                .collect();
            let s = DistributedSampler::new(world, 0, true, 9, drop_last).unwrap();
            assert_eq!(all.len(), s.total_size(n));
            all.sort_unstable();
            all.dedup();
            if drop_last {
                assert_eq!(all.len(), n - n % world, "n {n} world {world}");
            } else {
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "n {n} world {world}");
            }
        }
    }

    #[test]
    fn bad_ranks_are_refused() {
        let e = DistributedSampler::new(2, 2, true, 0, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            DataError::setting("rank", "rank 2 is not below the number of replicas 2").to_string()
        );
        assert!(DistributedSampler::new(0, 0, true, 0, false).is_err());
    }

    #[test]
    fn the_wide_draws_give_another_permutation() {
        // Past torch's 32-bit limit forge draws 64-bit numbers (not torch's
        // order, see the module docs); tried here on a small n.
        let narrow = fisher_yates(1000, 1, false);
        assert_eq!(narrow, torch_randperm(1000, 1));
        let mut wide = fisher_yates(1000, 1, true);
        assert_ne!(wide, narrow);
        wide.sort_unstable();
        assert_eq!(wide, (0..1000).collect::<Vec<_>>());
    }
}
