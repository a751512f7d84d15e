//! All-pairs Euclidean distances, one row at a time, without holding the
//! `n x n` matrix: rows are taken in blocks, each block's distances come
//! from one matrix product (`|x|^2 + |y|^2 - 2 x.y`), blocks run in parallel.
//! Used by the silhouette and the kNN graph; not a general-purpose API.

use linfa::Float;
use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

/// Rows per block: a block's distance rows are `BLOCK x n` values.
const BLOCK: usize = 256;

/// `x` minus its column means (distances do not change, rounding improves).
pub(crate) fn centered<A: Float>(x: ArrayView2<'_, A>) -> Array2<A> {
    match x.mean_axis(Axis(0)) {
        Some(mean) => &x - &mean,
        None => x.to_owned(),
    }
}

/// For each row `i` of `x`, calls `per_row(i, d)` where `d[j]` is the
/// Euclidean distance from row `i` to row `j` of `x` (squared when
/// `squared`; `d[i] == 0`), and returns the results in row order. `x` should
/// be centred (see [`centered`]) for best rounding.
pub(crate) fn map_distance_rows<A, T, F>(x: ArrayView2<'_, A>, squared: bool, per_row: F) -> Vec<T>
where
    A: Float + Send + Sync,
    T: Send,
    F: Fn(usize, &[A]) -> T + Sync,
{
    let n = x.nrows();
    let norms: Vec<A> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
    let n_blocks = n.div_ceil(BLOCK);
    let blocks: Vec<Vec<T>> = (0..n_blocks)
        .into_par_iter()
        .map(|b| {
            let r0 = b * BLOCK;
            let r1 = (r0 + BLOCK).min(n);
            let gram = x.slice(s![r0..r1, ..]).dot(&x.t());
            let mut row = vec![A::zero(); n];
            (r0..r1)
                .map(|i| {
                    let ni = norms[i];
                    for ((d, &g), &nj) in row.iter_mut().zip(gram.row(i - r0)).zip(&norms) {
                        let sq = ni + nj - (g + g);
                        *d = if sq > A::zero() { sq } else { A::zero() };
                    }
                    if !squared {
                        row.iter_mut().for_each(|d| *d = d.sqrt());
                    }
                    row[i] = A::zero();
                    per_row(i, &row)
                })
                .collect()
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn matches_direct_distances() {
        let x = array![[0.0f64, 0.0], [3.0, 4.0], [1.0, 1.0], [-2.0, 5.0]];
        let xc = centered(x.view());
        let rows = map_distance_rows(xc.view(), false, |_, d| d.to_vec());
        for (i, row) in rows.iter().enumerate() {
            for (j, got) in row.iter().enumerate() {
                let want = (&x.row(i) - &x.row(j)).mapv(|v| v * v).sum().sqrt();
                assert!((got - want).abs() < 1e-12, "{i},{j}");
            }
        }
    }

    #[test]
    fn many_blocks_keep_row_order() {
        let n = BLOCK * 2 + 17;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| (i * 3 + j) as f32 * 0.01);
        let firsts = map_distance_rows(x.view(), true, |i, d| (i, d.len()));
        assert_eq!(firsts.len(), n);
        assert!(
            firsts
                .iter()
                .enumerate()
                .all(|(k, &(i, len))| k == i && len == n)
        );
    }
}
