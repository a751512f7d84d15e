//! `rank_value` straight from a stored row of counts: gene mapping,
//! normalisation, log1p and ranking of one cell in one pass over its stored
//! entries plus a counting sort of the few that are not 1, with no
//! intermediate row.
//!
//! The general path ([`Corpus::prepare`], then
//! [`Tokenizer::tokenize_into`]) maps every stored entry to a corpus gene,
//! writes the preprocessed row, then sorts it by value. For the common input
//! (raw UMI counts: whole numbers, column indices ascending, in a file whose
//! columns map to corpus genes in order) most of that work can be skipped.
//! Preprocessing applies one non-decreasing function to every count of a
//! cell, so ordering by value is ordering by count: a counting sort over the
//! counts, stable so that equal counts keep gene order, gives the ranking,
//! and each distinct count's value is computed once. In UMI data about 70%
//! of stored counts are 1: those rank last, in gene order, and need no
//! sorting at all.
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

/// 2^23: adding it to a value in `0..2^23` rounds it to a whole number held
/// in the low mantissa bits (see `CountRanker::split`).
const ROUNDER: f32 = 8_388_608.0;

/// No token: the column maps to no corpus gene.
const NO_TOKEN: u32 = u32::MAX;

/// The token id of each column of one file's matrix, for [`CountRanker`].
#[derive(Debug, Clone, Default)]
pub struct ColumnTokens {
    /// Token id of each column, [`NO_TOKEN`] for columns outside the
    /// corpus genes; padded with [`NO_TOKEN`] to a power of two, so
    /// masking a column with `len - 1` keeps it in bounds.
    tokens: Vec<u32>,
    /// Whether every column maps to a corpus gene.
    all_mapped: bool,
    /// Whether no column's token is CLS or PAD (so that in a cell ranked
    /// from these columns, only a prepended CLS is not maskable).
    plain: bool,
    /// Whether every token fits in 16 bits (a vocabulary of at most 65,536
    /// ids, as for any one species' genes): ranked cells then keep their
    /// tokens in 16 bits.
    narrow: bool,
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
        let narrow = tokens
            .iter()
            .all(|&t| t == NO_TOKEN || u16::try_from(t).is_ok());
        tokens.resize(tokens.len().next_power_of_two(), NO_TOKEN);
        ColumnTokens {
            tokens,
            all_mapped,
            plain,
            narrow,
            usable,
        }
    }

    /// Whether no column's token is CLS or PAD.
    pub fn plain(&self) -> bool {
        self.plain
    }

    #[inline]
    fn get(&self, col: u32) -> u32 {
        let tokens = &self.tokens[..];
        tokens[col as usize & (tokens.len() - 1)]
    }
}

/// One cell's `rank_value` tokens as [`CountRanker::rank`] leaves them:
/// CLS when prepended, the tokens of counts above 1 in rank order, then the
/// tokens of the count-1 entries kept, which share one value.
///
/// Compact, because thousands of these wait in a shuffle buffer: tokens
/// take 16 bits each when the file's tokens fit ([`ColumnTokens`]'
/// `narrow`, true of any one species' genes), and values are stored once
/// per distinct count, not per token. A typical UMI cell of 1,000 tokens
/// takes about 2 KB instead of 12 KB as ids and values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankedCell {
    /// A CLS token (value 0) comes first.
    pub cls: bool,
    /// The gene tokens in rank order, when they fit in 16 bits; empty
    /// otherwise.
    tokens16: Vec<u16>,
    /// The same, when they do not fit in 16 bits; empty otherwise.
    tokens32: Vec<u32>,
    /// The values of the leading tokens, as runs in rank order: (value,
    /// number of tokens), one per count above 1.
    runs: Vec<(f32, u32)>,
    /// The value of the tokens after the runs (count 1).
    one: f32,
}

impl RankedCell {
    /// Number of tokens, CLS included.
    pub fn len(&self) -> usize {
        usize::from(self.cls) + self.tokens16.len() + self.tokens32.len()
    }

    /// Whether the cell has no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the CPU to start loading the cell's entries, ahead of
    /// [`RankedCell::write`] (a hint: no effect on results).
    pub fn prefetch(&self) {
        prefetch(&self.tokens16);
        prefetch(&self.tokens32);
        prefetch(&self.runs);
    }

    /// Writes the token ids and values into `ids` and `values`, each
    /// [`RankedCell::len`] long (a row of a batch, for instance).
    ///
    /// # Panics
    /// When a slice's length differs from [`RankedCell::len`].
    pub fn write(&self, ids: &mut [i64], values: &mut [f32]) {
        assert!(ids.len() == self.len() && values.len() == self.len());
        let c = usize::from(self.cls);
        if self.cls {
            ids[0] = special::CLS;
            values[0] = 0.0;
        }
        let (ids, values) = (&mut ids[c..], &mut values[c..]);
        // One of the two is empty.
        let (ids16, ids32) = ids.split_at_mut(self.tokens16.len());
        for (id, &t) in ids16.iter_mut().zip(&self.tokens16) {
            *id = i64::from(t);
        }
        for (id, &t) in ids32.iter_mut().zip(&self.tokens32) {
            *id = i64::from(t);
        }
        let mut rest = values;
        for &(value, n) in &self.runs {
            let (run, after) = rest.split_at_mut(n as usize);
            run.fill(value);
            rest = after;
        }
        rest.fill(self.one);
    }

    /// The tokens as a [`TokenizedCell`] (no bins).
    pub fn to_tokens(&self, out: &mut TokenizedCell) {
        out.ids.resize(self.len(), 0);
        out.values.resize(self.len(), 0.0);
        out.bin_ids = None;
        self.write(&mut out.ids, &mut out.values);
    }
}

/// Working memory of [`CountRanker::rank`], one per thread.
#[derive(Debug, Clone)]
pub struct CountRanker {
    /// Tokens of the cell's ranked entries of count 1, in order.
    ones: Vec<u32>,
    /// Tokens of the cell's other ranked entries, in order.
    other_tokens: Vec<u32>,
    /// Counts of the cell's other ranked entries, in order.
    other_counts: Vec<u32>,
    /// Entries of `others` per count; all zero between calls.
    hist: Vec<u32>,
    /// Next output position of each count of `others`.
    next: Vec<u32>,
    /// Preprocessed value of each count of `others`.
    value: Vec<f32>,
    /// (value, number of entries) of each count of `others` kept, in rank
    /// order.
    runs: Vec<(f32, u32)>,
}

impl Default for CountRanker {
    fn default() -> Self {
        let m = MAX_COUNT as usize;
        CountRanker {
            ones: Vec::new(),
            other_tokens: Vec::new(),
            other_counts: Vec::new(),
            hist: vec![0; m],
            next: vec![0; m],
            value: vec![0.0; m],
            runs: Vec::new(),
        }
    }
}

/// Writes a ranked cell's tokens into `dst` (converted by `convert`): the
/// first `from` of the others (`(tokens, counts)`) at the positions
/// `next` gives each count, taken in order, then `ones`.
fn place<T: Copy>(
    dst: &mut Vec<T>,
    (tokens, counts): (&[u32], &[u32]),
    next: &mut [u32],
    from: usize,
    ones: &[u32],
    convert: impl Fn(u32) -> T,
) {
    debug_assert!(dst.is_empty());
    dst.reserve(from + ones.len());
    let head = &mut dst.spare_capacity_mut()[..from];
    for (&token, &count) in tokens.iter().zip(counts) {
        let count = count as usize;
        let p = next[count];
        if p == DROPPED {
            continue;
        }
        next[count] = p + 1;
        if let Some(slot) = head.get_mut(p as usize) {
            slot.write(convert(token));
        }
    }
    // SAFETY: `next` gives the kept counts consecutive runs of positions,
    // one position per kept entry, that together cover `0..at` exactly;
    // `rank` passes `from <= at`, so every position below `from` was
    // written above.
    unsafe { dst.set_len(from) };
    dst.extend(ones.iter().map(|&t| convert(t)));
}

/// `next` of a count whose value is not positive: far beyond any output
/// position however many entries follow, so its entries are dropped.
const DROPPED: u32 = 1 << 31;

/// Entries the scalar split checks and counts at a time, on the stack.
const BLOCK: usize = 256;

/// Entries of one AVX-512 vector (also the slack the split's output
/// buffers keep past their end).
const LANES: usize = 16;

/// What one pass over a row learns.
struct Split {
    /// The row holds only whole numbers in `0..MAX_COUNT`, at strictly
    /// ascending columns.
    ok: bool,
    /// Sum of the row.
    total: u64,
}

impl CountRanker {
    /// Ranks the stored row `cols`/`vals` (file columns and stored values)
    /// of a file with `columns`, preprocessed by `pre`, into `out`'s gene
    /// tokens (at most `budget`; `out.cls` is left as it is); returns false
    /// when the row needs the general path (see the module documentation),
    /// `out` then holding nothing of use.
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
        out: &mut RankedCell,
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
        for &count in &self.other_counts {
            let count = count as usize;
            hist[count] += 1;
            top = top.max(count);
        }
        let scale = pre.scale(split.total as f64);
        self.runs.clear();
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
            if v <= 0.0 || v.is_nan() {
                self.next[count] = DROPPED;
                continue;
            }
            // Two counts sharing a value would interleave by gene order.
            shared |= v >= above;
            above = v;
            self.value[count] = v;
            self.next[count] = at;
            self.runs.push((v, here));
            at += here;
        }
        let one = pre.value(1.0, scale);
        let ones_kept = if one > 0.0 { self.ones.len() } else { 0 };
        if shared || (ones_kept > 0 && one >= above) {
            return false;
        }

        // The others' positions are written in any order, the ones' in
        // sequence after them.
        let keep = (at as usize + ones_kept).min(budget);
        let from = (at as usize).min(keep);
        // The runs of the first `from` positions.
        let mut left = from as u32;
        out.runs.clear();
        for &(value, n) in &self.runs {
            if left == 0 {
                break;
            }
            let taken = n.min(left);
            out.runs.push((value, taken));
            left -= taken;
        }
        let ones = &self.ones[..keep - from];
        let (others, next) = (
            (&self.other_tokens[..], &self.other_counts[..]),
            &mut self.next,
        );
        out.tokens16.clear();
        out.tokens32.clear();
        if columns.narrow {
            // Each fits: `narrow` holds for every token of these columns.
            place(&mut out.tokens16, others, next, from, ones, |t| t as u16);
        } else {
            place(&mut out.tokens32, others, next, from, ones, |t| t);
        }
        out.one = one;
        true
    }

    /// One pass over a row: checks it, sums it, and splits its ranked
    /// entries (count > 0, column mapped) into `ones` and the others, as
    /// tokens. Sixteen entries at a time where the CPU has AVX-512
    /// ([`CountRanker::split_avx512`]), else one at a time; both give the
    /// same result.
    fn split<const ALL_MAPPED: bool>(
        &mut self,
        cols: &[u32],
        vals: &[f32],
        columns: &ColumnTokens,
    ) -> Split {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the one target feature the function
            // enables.
            return unsafe { self.split_avx512::<ALL_MAPPED>(cols, vals, columns) };
        }
        self.split_scalar::<ALL_MAPPED>(cols, vals, columns)
    }

    /// Empties the output buffers and gives them room for a row of `n`
    /// entries plus what is written past the last one kept (uninitialised:
    /// the split writes each element it keeps).
    fn reset(&mut self, n: usize) {
        for buffer in [
            &mut self.ones,
            &mut self.other_tokens,
            &mut self.other_counts,
        ] {
            buffer.clear();
            buffer.reserve(n + LANES);
        }
    }

    /// [`CountRanker::split`] without vector instructions, a block of
    /// entries at a time: the checks and counts in a loop simple enough for
    /// the compiler to vectorise, then the split proper. Every entry is
    /// written to both outputs; only the right one's length grows, so there
    /// is no branch on the count.
    fn split_scalar<const ALL_MAPPED: bool>(
        &mut self,
        cols: &[u32],
        vals: &[f32],
        columns: &ColumnTokens,
    ) -> Split {
        let n = cols.len().min(vals.len());
        self.reset(n);
        let ones = &mut self.ones.spare_capacity_mut()[..n + 1];
        let other_tokens = &mut self.other_tokens.spare_capacity_mut()[..n + 1];
        let other_counts = &mut self.other_counts.spare_capacity_mut()[..n + 1];
        let (mut n_ones, mut n_others) = (0usize, 0usize);
        let mut counts = [0u32; BLOCK];
        let mut bad = false;
        let mut total = 0u64;
        let mut prev: Option<u32> = None;
        for (cols, vals) in cols[..n].chunks(BLOCK).zip(vals[..n].chunks(BLOCK)) {
            // For 0 <= v < 2^23, v + 2^23 rounds v to a whole number and
            // holds it in its low mantissa bits.
            for (count, &v) in counts.iter_mut().zip(vals) {
                let shifted = v + ROUNDER;
                *count = shifted.to_bits() & 0x007f_ffff;
                let in_range = (v >= 0.0) & (v < MAX_COUNT as f32);
                bad |= !in_range | (shifted - ROUNDER != v);
                total += u64::from(*count);
            }
            let descending = cols
                .iter()
                .zip(&cols[1..])
                .fold(false, |d, (a, b)| d | (b <= a));
            bad |= descending | prev.is_some_and(|p| cols[0] <= p);
            prev = cols.last().copied();
            for (&c, &count) in cols.iter().zip(&counts) {
                let token = columns.get(c);
                let ranked = (count != 0) & (ALL_MAPPED || token != NO_TOKEN);
                // SAFETY: n_ones and n_others are at most the number of
                // entries before this one, so below n + 1, the slices'
                // length.
                unsafe {
                    ones.get_unchecked_mut(n_ones).write(token);
                    other_tokens.get_unchecked_mut(n_others).write(token);
                    other_counts.get_unchecked_mut(n_others).write(count);
                }
                n_ones += usize::from(ranked & (count == 1));
                n_others += usize::from(ranked & (count > 1));
            }
        }
        self.finish_split(n_ones, n_others, bad, total)
    }

    /// Sets the outputs' lengths to what the split kept: the first
    /// `n_ones` elements of `ones`, `n_others` of the others, which the
    /// split wrote.
    fn finish_split(&mut self, n_ones: usize, n_others: usize, bad: bool, total: u64) -> Split {
        assert!(n_ones <= self.ones.capacity() && n_others <= self.other_tokens.capacity());
        assert!(n_others <= self.other_counts.capacity());
        // SAFETY: within capacity (checked), and both splits write every
        // position below the final length before moving past it.
        unsafe {
            self.ones.set_len(n_ones);
            self.other_tokens.set_len(n_others);
            self.other_counts.set_len(n_others);
        }
        Split { ok: !bad, total }
    }

    /// [`CountRanker::split`] sixteen entries at a time: the checks as lane
    /// masks, tokens gathered from the table, and each output written as a
    /// full vector of the lanes it keeps, packed to the front (`compress`),
    /// its length then growing by their number.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn split_avx512<const ALL_MAPPED: bool>(
        &mut self,
        cols: &[u32],
        vals: &[f32],
        columns: &ColumnTokens,
    ) -> Split {
        use std::arch::x86_64::*;
        let n = cols.len().min(vals.len());
        self.reset(n);
        let table = columns.tokens.as_ptr().cast::<i32>();
        let index_mask = _mm512_set1_epi32((columns.tokens.len() - 1) as i32);
        let rounder = _mm512_set1_ps(ROUNDER);
        let max_count = _mm512_set1_ps(MAX_COUNT as f32);
        let low_bits = _mm512_set1_epi32(0x007f_ffff);
        let one = _mm512_set1_epi32(1);
        let no_token = _mm512_set1_epi32(NO_TOKEN as i32);
        let (mut n_ones, mut n_others) = (0usize, 0usize);
        let mut bad: __mmask16 = 0;
        let mut total = 0u64;
        // The previous vector of columns (its last lane precedes the next
        // vector's first); lane 0 of the first vector has no predecessor.
        let mut prev_cols = _mm512_setzero_si512();
        let mut has_prev: __mmask16 = 0xfffe;
        let mut at = 0;
        while at < n {
            let lanes: __mmask16 = if n - at >= LANES {
                0xffff
            } else {
                (1u16 << (n - at)) - 1
            };
            // SAFETY (all pointer use below): loads are masked to the
            // entries `at..n` of `cols`/`vals`; gathered indices are masked
            // into the table (a power of two long); each store writes 16
            // lanes at an output position that is at most the number of
            // entries before `at`, so below n, into buffers of n + 16.
            let c = unsafe { _mm512_maskz_loadu_epi32(lanes, cols.as_ptr().add(at).cast()) };
            let v = unsafe { _mm512_maskz_loadu_ps(lanes, vals.as_ptr().add(at)) };
            let shifted = _mm512_add_ps(v, rounder);
            let count = _mm512_and_si512(_mm512_castps_si512(shifted), low_bits);
            let in_range = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, _mm512_setzero_ps())
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, max_count);
            let whole = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_sub_ps(shifted, rounder), v);
            let before = _mm512_alignr_epi32::<15>(c, prev_cols);
            let not_ascending = _mm512_cmple_epu32_mask(c, before) & has_prev;
            bad |= ((!in_range | !whole) | not_ascending) & lanes;
            total += _mm512_reduce_add_epi32(count) as u32 as u64;
            let index = _mm512_and_si512(c, index_mask);
            let token = unsafe { _mm512_mask_i32gather_epi32::<4>(no_token, lanes, index, table) };
            let mut ranked = _mm512_cmpneq_epi32_mask(count, _mm512_setzero_si512()) & lanes;
            if !ALL_MAPPED {
                ranked &= _mm512_cmpneq_epi32_mask(token, no_token);
            }
            let is_one = ranked & _mm512_cmpeq_epi32_mask(count, one);
            let is_other = ranked & _mm512_cmpgt_epu32_mask(count, one);
            unsafe {
                let ones = self.ones.as_mut_ptr().add(n_ones).cast();
                _mm512_storeu_si512(ones, _mm512_maskz_compress_epi32(is_one, token));
                let tokens = self.other_tokens.as_mut_ptr().add(n_others).cast();
                _mm512_storeu_si512(tokens, _mm512_maskz_compress_epi32(is_other, token));
                let counts = self.other_counts.as_mut_ptr().add(n_others).cast();
                _mm512_storeu_si512(counts, _mm512_maskz_compress_epi32(is_other, count));
            }
            n_ones += is_one.count_ones() as usize;
            n_others += is_other.count_ones() as usize;
            prev_cols = c;
            has_prev = 0xffff;
            at += LANES;
        }
        self.finish_split(n_ones, n_others, bad != 0, total)
    }
}

/// Asks the CPU to bring `data` into its caches ahead of use (a hint: no
/// effect on results, none at all off x86-64).
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = std::mem::size_of_val(data);
        let start = data.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64) {
            // SAFETY: a prefetch never faults and reads nothing the program
            // sees; every address is within `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;

    /// The general path, written out naively: map columns, preprocess the
    /// whole row, keep positive values, stable sort by value descending,
    /// truncate.
    fn reference(
        cols: &[u32],
        vals: &[f32],
        tokens: &[Option<i64>],
        pre: &Preprocessing,
        budget: usize,
    ) -> (Vec<i64>, Vec<f32>) {
        let total: f64 = vals.iter().map(|&v| f64::from(v)).sum();
        let mut values: Vec<f32> = vals.to_vec();
        pre.apply(&mut values, total);
        let mut kept: Vec<(i64, f32)> = cols
            .iter()
            .zip(values)
            .filter_map(|(&c, v)| Some((tokens[c as usize]?, v)))
            .filter(|&(_, v)| v > 0.0)
            .collect();
        kept.sort_by(|a, b| b.1.total_cmp(&a.1));
        kept.truncate(budget);
        kept.into_iter().unzip()
    }

    fn columns(tokens: &[Option<i64>]) -> ColumnTokens {
        let col_gene = tokens
            .iter()
            .scan(0u32, |g, t| Some(t.map(|_| (*g, *g += 1).0)));
        let gene_ids: Vec<i64> = tokens.iter().flatten().copied().collect();
        ColumnTokens::new(col_gene, &gene_ids)
    }

    fn rank(
        cols: &[u32],
        vals: &[f32],
        tokens: &[Option<i64>],
        pre: &Preprocessing,
        budget: usize,
    ) -> Option<(Vec<i64>, Vec<f32>)> {
        let mut out = RankedCell::default();
        let ok = CountRanker::default().rank(cols, vals, &columns(tokens), pre, budget, &mut out);
        ok.then(|| {
            let mut t = TokenizedCell::default();
            out.to_tokens(&mut t);
            (t.ids, t.values)
        })
    }

    fn normalise_log1p() -> Preprocessing {
        Preprocessing {
            target_sum: Some(1e4),
            log1p: true,
        }
    }

    #[test]
    fn random_count_rows_rank_like_the_general_path() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let pres = [
            normalise_log1p(),
            Preprocessing::identity(),
            Preprocessing {
                target_sum: Some(50.0),
                log1p: false,
            },
            Preprocessing {
                target_sum: None,
                log1p: true,
            },
        ];
        let mut ranker = CountRanker::default();
        for case in 0..400 {
            let n_cols = rng.gen_range(1..300usize);
            // Some columns outside the corpus genes, some genes unknown
            // to the vocabulary (UNK).
            let tokens: Vec<Option<i64>> = (0..n_cols)
                .map(|c| match rng.gen_range(0..10) {
                    0 => None,
                    1 => Some(special::UNK),
                    // Every other case, ids beyond 16 bits.
                    _ => Some(4 + c as i64 + 70_000 * (case % 2) as i64),
                })
                .collect();
            let cols: Vec<u32> = (0..n_cols as u32).filter(|_| rng.gen_bool(0.3)).collect();
            let vals: Vec<f32> = cols
                .iter()
                .map(|_| match rng.gen_range(0..10) {
                    0..=5 => 1.0,
                    6 => 0.0,
                    7 => rng.gen_range(2..6) as f32,
                    _ => rng.gen_range(2..MAX_COUNT) as f32,
                })
                .collect();
            let pre = &pres[case % pres.len()];
            let budget = [0, 1, 5, 40, 2048][case % 5];
            let cols_tok = columns(&tokens);
            let mut ranked = RankedCell::default();
            assert!(
                ranker.rank(&cols, &vals, &cols_tok, pre, budget, &mut ranked),
                "case {case}"
            );
            let mut out = TokenizedCell::default();
            ranked.to_tokens(&mut out);
            let (ids, values) = reference(&cols, &vals, &tokens, pre, budget);
            assert_eq!(out.ids, ids, "case {case}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out.values), bits(&values), "case {case}");
            // The working memory is clean for the next cell.
            assert!(ranker.hist.iter().all(|&h| h == 0));
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_and_scalar_splits_agree() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this CPU: the scalar split alone is used");
            return;
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let tokens: Vec<Option<i64>> = (0..2000)
            .map(|c| (c % 7 != 3).then_some(4 + c as i64))
            .collect();
        let (partial, full) = (columns(&tokens), columns(&vec![Some(9); 2000]));
        let (mut a, mut b) = (CountRanker::default(), CountRanker::default());
        for case in 0..3000 {
            // Every length around the vector width, some beyond the scalar
            // block; some rows broken.
            let n = if case % 10 == 9 {
                240 + case % 600
            } else {
                case % 70
            };
            let mut cols: Vec<u32> = (0..2000u32).filter(|_| rng.gen_bool(0.5)).take(n).collect();
            let mut vals: Vec<f32> = (0..cols.len())
                .map(|_| match rng.gen_range(0..10) {
                    0..=5 => 1.0,
                    6 => 0.0,
                    _ => rng.gen_range(2..300) as f32,
                })
                .collect();
            if cols.len() > BLOCK && case % 20 == 9 {
                // A repeated column right at the scalar split's block edge.
                cols[BLOCK] = cols[BLOCK - 1];
            } else if !cols.is_empty() && case % 5 == 0 {
                let i = rng.gen_range(0..cols.len());
                match case % 4 {
                    0 => vals[i] = [0.5, -1.0, f32::NAN, MAX_COUNT as f32][case % 3],
                    1 => vals[i] = f32::INFINITY,
                    2 => cols[i] = cols[i.saturating_sub(1)],
                    _ => {
                        let last = cols.len() - 1;
                        cols.swap(i, last);
                    }
                }
            }
            for table in [&partial, &full] {
                let (x, y) = if table.all_mapped {
                    (a.split_scalar::<true>(&cols, &vals, table), unsafe {
                        b.split_avx512::<true>(&cols, &vals, table)
                    })
                } else {
                    (a.split_scalar::<false>(&cols, &vals, table), unsafe {
                        b.split_avx512::<false>(&cols, &vals, table)
                    })
                };
                assert_eq!(x.ok, y.ok, "case {case}: {cols:?} {vals:?}");
                if x.ok {
                    assert_eq!(x.total, y.total, "case {case}");
                    assert_eq!(a.ones, b.ones, "case {case}");
                    assert_eq!(a.other_tokens, b.other_tokens, "case {case}");
                    assert_eq!(a.other_counts, b.other_counts, "case {case}");
                }
            }
        }
    }

    #[test]
    fn rows_the_counting_argument_does_not_cover_are_declined() {
        let tokens: Vec<Option<i64>> = (0..8).map(|c| Some(4 + c)).collect();
        let pre = normalise_log1p();
        let cols = [0u32, 2, 5];
        for vals in [
            [1.0, 2.5, 1.0],
            [1.0, -1.0, 1.0],
            [1.0, f32::NAN, 1.0],
            [1.0, MAX_COUNT as f32, 1.0],
            [1.0, f32::INFINITY, 1.0],
        ] {
            assert_eq!(rank(&cols, &vals, &tokens, &pre, 10), None, "{vals:?}");
        }
        // Columns out of order, or repeated (anndata allows both).
        assert_eq!(rank(&[2, 0, 5], &[1.0; 3], &tokens, &pre, 10), None);
        assert_eq!(rank(&[2, 2, 5], &[1.0; 3], &tokens, &pre, 10), None);
        // Two counts whose values are equal (both infinite here: the scale
        // overflows f32) tie and would interleave by gene order.
        let huge = Preprocessing {
            target_sum: Some(1e300),
            log1p: false,
        };
        assert_eq!(rank(&cols, &[1.0, 2.0, 3.0], &tokens, &huge, 10), None);
        // Columns reaching corpus genes out of order.
        let swapped = ColumnTokens::new([Some(1), Some(0)], &[4, 5]);
        let mut out = RankedCell::default();
        let mut r = CountRanker::default();
        assert!(!r.rank(&[0, 1], &[1.0, 2.0], &swapped, &pre, 10, &mut out));
        assert!(r.hist.iter().all(|&h| h == 0));
    }

    #[test]
    fn values_that_are_not_positive_are_dropped_as_in_the_general_path() {
        let tokens: Vec<Option<i64>> = (0..6).map(|c| Some(4 + c)).collect();
        let zero = Preprocessing {
            target_sum: Some(0.0),
            log1p: true,
        };
        let cols = [0u32, 1, 3, 4];
        let vals = [1.0, 3.0, 0.0, 2.0];
        let got = rank(&cols, &vals, &tokens, &zero, 10).unwrap();
        assert_eq!(got, (vec![], vec![]));
        assert_eq!(got, reference(&cols, &vals, &tokens, &zero, 10));
        let empty = rank(&[], &[], &tokens, &normalise_log1p(), 10).unwrap();
        assert_eq!(empty, (vec![], vec![]));
    }

    #[test]
    fn plain_columns_have_no_special_token() {
        assert!(columns(&[Some(4), Some(special::UNK), None]).plain());
        assert!(!columns(&[Some(4), Some(special::CLS)]).plain());
        assert!(!columns(&[Some(special::PAD), Some(5)]).plain());
    }
}
