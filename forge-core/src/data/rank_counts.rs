//! `rank_value` straight from a stored row of counts: gene mapping,
//! normalisation, log1p and ranking of one cell in two passes over its
//! stored entries, with no intermediate row.
//!
//! The general path ([`Corpus::prepare`], then
//! [`Tokenizer::tokenize_into`]) maps every stored entry to a corpus gene,
//! writes the preprocessed row, then sorts it by value. For the common input
//! (raw UMI counts: whole numbers, column indices ascending, in a file whose
//! columns map to corpus genes in order) most of that work can be skipped.
//! Preprocessing applies one non-decreasing function to every count of a
//! cell, so ordering by value is ordering by count: a counting sort over the
//! counts, stable so that equal counts keep gene order, gives the ranking,
//! and each distinct count's value is computed once.
//!
//! The result is the general path's, bit for bit: the same value function
//! ([`Preprocessing::value`]), the same row total (a sum of whole numbers is
//! exact in any order), the same tie rule. Where the argument would not hold
//! (a value that is not a whole number below [`MAX_COUNT`], columns out of
//! order, a file whose columns map to corpus genes out of order, or two
//! distinct counts of one cell whose values round to the same `f32` and
//! would therefore interleave by gene order), [`CountRanker::rank`] declines
//! and the caller takes the general path.
//!
//! [`Corpus::prepare`]: super::Corpus::prepare
//! [`Tokenizer::tokenize_into`]: super::Tokenizer::tokenize_into

use crate::batch::special;

use super::preprocess::Preprocessing;
use super::tokenize::TokenizedCell;

/// Counts from this value up send the cell down the general path.
pub const MAX_COUNT: u32 = 4096;

/// 2^23: see [`CountRanker::rank`].
const ROUNDER: f32 = 8_388_608.0;

/// No token: the column maps to no corpus gene.
const NO_TOKEN: u32 = u32::MAX;

/// The token id of each column of one file's matrix, for [`CountRanker`].
#[derive(Debug, Clone, Default)]
pub struct ColumnTokens {
    /// Token id of each column, [`NO_TOKEN`] for columns outside the
    /// corpus genes; padded with [`NO_TOKEN`] to a power of two, so
    /// `tokens[c & mask]` needs no bounds check.
    tokens: Vec<u32>,
    /// `tokens.len() - 1`.
    mask: usize,
    /// Whether every column maps to a corpus gene.
    all_mapped: bool,
    /// Whether no column's token is CLS or PAD (so that in a cell ranked
    /// from these columns, only a prepended CLS is not maskable).
    plain: bool,
    /// Whether the mapped columns reach corpus genes in strictly
    /// increasing order (so a row's stored order is its gene order) and
    /// every token id fits in 32 bits.
    usable: bool,
}

impl ColumnTokens {
    /// From `col_gene`, each column's corpus gene (`None` when it has
    /// none), and `gene_ids`, each corpus gene's token id.
    pub fn new(col_gene: impl IntoIterator<Item = Option<u32>>, gene_ids: &[i64]) -> ColumnTokens {
        let mut usable = true;
        let mut last: Option<u32> = None;
        let mut plain = true;
        let mut tokens: Vec<u32> = col_gene
            .into_iter()
            .map(|g| match g {
                Some(g) if (g as usize) < gene_ids.len() => {
                    usable &= last.is_none_or(|l| g > l);
                    last = Some(g);
                    let t = gene_ids[g as usize];
                    plain &= t != special::CLS && t != special::PAD;
                    match u32::try_from(t) {
                        Ok(t) if t != NO_TOKEN => t,
                        _ => {
                            usable = false;
                            NO_TOKEN
                        }
                    }
                }
                _ => NO_TOKEN,
            })
            .collect();
        let all_mapped = !tokens.contains(&NO_TOKEN);
        tokens.resize(tokens.len().next_power_of_two(), NO_TOKEN);
        ColumnTokens {
            mask: tokens.len() - 1,
            tokens,
            all_mapped,
            plain,
            usable,
        }
    }

    /// Whether no column's token is CLS or PAD.
    pub fn plain(&self) -> bool {
        self.plain
    }

    #[inline]
    fn get(&self, col: u32) -> u32 {
        self.tokens[col as usize & self.mask]
    }
}

/// Working memory of [`CountRanker::rank`], one per thread.
#[derive(Debug, Clone)]
pub struct CountRanker {
    /// Columns of the cell's ranked entries of count 1, in order.
    ones: Vec<u32>,
    /// The cell's other ranked entries, `(count << 32) | column`, in order.
    others: Vec<u64>,
    /// Entries of `others` per count; all zero between calls.
    hist: Vec<u32>,
    /// Next output position of each count of `others`.
    next: Vec<u32>,
    /// Preprocessed value of each count of `others`.
    value: Vec<f32>,
}

impl Default for CountRanker {
    fn default() -> Self {
        let m = MAX_COUNT as usize;
        CountRanker {
            ones: Vec::new(),
            others: Vec::new(),
            hist: vec![0; m],
            next: vec![0; m],
            value: vec![0.0; m],
        }
    }
}

/// `next` of a count whose value is not positive: far beyond any output
/// position however many entries follow, so its entries are dropped.
const DROPPED: u32 = 1 << 31;

/// Entries split at a time, into buffers on the stack.
const BLOCK: usize = 256;

/// What one pass over a row learns.
struct Split {
    /// The row holds only whole numbers in `0..MAX_COUNT`, at strictly
    /// ascending columns.
    ok: bool,
    /// Sum of the row.
    total: u64,
}

impl CountRanker {
    /// Appends to `out` the `rank_value` tokens of the stored row
    /// `cols`/`vals` (file columns and stored values) of a file with
    /// `columns`, preprocessed by `pre`, at most `budget` of them; returns
    /// false, leaving `out` as it was, when the row needs the general path
    /// (see the module documentation).
    ///
    /// In UMI data most stored counts are 1 (about 70% of them): one pass
    /// splits the ranked entries, without branching, into those (which keep
    /// gene order and rank last) and the others, which a counting sort by
    /// count orders.
    pub fn rank(
        &mut self,
        cols: &[u32],
        vals: &[f32],
        columns: &ColumnTokens,
        pre: &Preprocessing,
        budget: usize,
        out: &mut TokenizedCell,
    ) -> bool {
        let n = cols.len().min(vals.len());
        if !columns.usable || n >= DROPPED as usize {
            return false;
        }
        let split = if columns.all_mapped {
            self.split::<true>(&cols[..n], &vals[..n], columns)
        } else {
            self.split::<false>(&cols[..n], &vals[..n], columns)
        };
        if !split.ok {
            return false;
        }

        // Counts of the others, largest first: values, and where each
        // count's run of output positions starts; count 1 comes last.
        let hist = &mut self.hist[..];
        let mut top = 1usize;
        for &e in &self.others {
            let count = (e >> 32) as usize;
            hist[count] += 1;
            top = top.max(count);
        }
        let scale = pre.scale(split.total as f64);
        let mut at = 0u32;
        let mut above = f32::INFINITY;
        let mut shared = false;
        for count in (2..=top).rev() {
            let here = hist[count];
            if here == 0 {
                continue;
            }
            hist[count] = 0;
            let v = pre.value(count as f32, scale);
            if !(v > 0.0) {
                self.next[count] = DROPPED;
                continue;
            }
            // Two counts sharing a value would interleave by gene order.
            shared |= !(v < above);
            above = v;
            self.value[count] = v;
            self.next[count] = at;
            at += here;
        }
        let one = pre.value(1.0, scale);
        let ones_kept = if one > 0.0 { self.ones.len() } else { 0 };
        if shared || (ones_kept > 0 && !(one < above)) {
            return false;
        }

        // The others' positions are written in any order, the ones' in
        // sequence after them.
        let keep = (at as usize + ones_kept).min(budget);
        let from = (at as usize).min(keep);
        let base = out.ids.len();
        out.ids.resize(base + from, 0);
        out.values.resize(base + from, 0.0);
        let (ids, values) = (&mut out.ids[base..], &mut out.values[base..]);
        for &e in &self.others {
            let count = (e >> 32) as usize;
            let p = self.next[count];
            if p == DROPPED {
                continue;
            }
            self.next[count] = p + 1;
            if (p as usize) < from {
                ids[p as usize] = i64::from(columns.get(e as u32));
                values[p as usize] = self.value[count];
            }
        }
        let ones = &self.ones[..keep - from];
        out.ids.extend(ones.iter().map(|&c| i64::from(columns.get(c))));
        out.values.resize(base + keep, one);
        true
    }

    /// One pass over a row: checks it, sums it, and splits its ranked
    /// entries (count > 0, column mapped) into `ones` and `others`. Every
    /// entry is written to both block buffers; only the right buffer's
    /// length grows, so there is no branch on the count.
    fn split<const ALL_MAPPED: bool>(
        &mut self,
        cols: &[u32],
        vals: &[f32],
        columns: &ColumnTokens,
    ) -> Split {
        self.ones.clear();
        self.others.clear();
        let mut ones = [0u32; BLOCK];
        let mut others = [0u64; BLOCK];
        let mut counts = [0u32; BLOCK];
        let mut bad = false;
        let mut total = 0u64;
        let mut min_col = 0u32;
        for (cols, vals) in cols.chunks(BLOCK).zip(vals.chunks(BLOCK)) {
            // Checks and counts first, in loops simple enough to vectorise.
            // For 0 <= v < 2^23, v + 2^23 rounds v to a whole number and
            // holds it in its low mantissa bits.
            let mut block_bad = false;
            for (count, &v) in counts.iter_mut().zip(vals) {
                let shifted = v + ROUNDER;
                *count = shifted.to_bits() & 0x007f_ffff;
                block_bad |= !(v >= 0.0) | (shifted - ROUNDER != v) | (*count >= MAX_COUNT);
                total += u64::from(*count);
            }
            let descending = cols.iter().zip(&cols[1..]).fold(false, |d, (a, b)| d | (b <= a));
            bad |= block_bad | descending | (cols[0] < min_col);
            min_col = cols[cols.len() - 1].saturating_add(1);
            let (mut n_ones, mut n_others) = (0usize, 0usize);
            for (&c, &count) in cols.iter().zip(&counts) {
                let ranked = (count != 0) & (ALL_MAPPED || columns.get(c) != NO_TOKEN);
                // n_ones, n_others <= entries seen so far in the block < BLOCK.
                ones[n_ones % BLOCK] = c;
                n_ones += usize::from(ranked & (count == 1));
                others[n_others % BLOCK] = (u64::from(count) << 32) | u64::from(c);
                n_others += usize::from(ranked & (count > 1));
            }
            self.ones.extend_from_slice(&ones[..n_ones.min(BLOCK)]);
            self.others.extend_from_slice(&others[..n_others.min(BLOCK)]);
        }
        Split { ok: !bad, total }
    }
}
