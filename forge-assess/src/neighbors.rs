//! The k-nearest-neighbour graph of an embedding (exact, brute force) and
//! scIB's graph connectivity on it.
//!
//! scIB reads connectivity off scanpy's neighbour graph (`n_neighbors=15`,
//! which counts the cell itself, so 14 others), taken as undirected. Here the
//! graph is the exact Euclidean kNN graph with the same edges; only which
//! cells are joined matters, not the UMAP edge weights.

use ndarray::ArrayView2;

use super::distance::{centered, map_distance_rows};
use super::labels::Labels;
use super::{AssessError, Result, check_embedding};

/// For each cell, the indices of its `k` nearest other cells (Euclidean,
/// nearest first, ties broken by index). `k` is capped at `n_cells - 1`.
pub fn knn_graph(emb: ArrayView2<'_, f32>, k: usize) -> Result<Vec<Vec<usize>>> {
    check_embedding(emb, "kNN graph")?;
    if k == 0 {
        return Err(AssessError::InvalidParameter {
            name: "k",
            message: "the kNN graph needs k >= 1 neighbours".into(),
        });
    }
    let n = emb.nrows();
    let k = k.min(n - 1);
    if k == 0 {
        return Ok(vec![Vec::new(); n]);
    }
    let x = centered(emb);
    // Squared distances rank the same; keep the k best in a sorted list
    // (a strict `<` keeps the lower index on ties).
    Ok(map_distance_rows(x.view(), true, |i, d| {
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        for (j, &v) in d.iter().enumerate() {
            if j == i || (best.len() == k && v >= best[k - 1].0) {
                continue;
            }
            let at = best.partition_point(|&(b, _)| b <= v);
            best.insert(at, (v, j));
            best.truncate(k);
        }
        best.into_iter().map(|(_, j)| j).collect()
    }))
}

/// Disjoint-set forest with path halving and union by size.
struct Dsu {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl Dsu {
    fn new(n: usize) -> Self {
        Dsu {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

/// Graph connectivity on dense codes (see [`graph_connectivity`]).
pub(crate) fn graph_connectivity_codes(
    neighbors: &[Vec<usize>],
    codes: &[usize],
    n_types: usize,
) -> f64 {
    // Components of each type's induced subgraph = components of the graph
    // keeping only edges whose two ends share a type.
    let mut dsu = Dsu::new(codes.len());
    for (i, nbrs) in neighbors.iter().enumerate() {
        for &j in nbrs {
            if codes[i] == codes[j] {
                dsu.union(i, j);
            }
        }
    }
    let mut per_type: Vec<std::collections::HashMap<usize, usize>> =
        vec![Default::default(); n_types];
    for (i, &c) in codes.iter().enumerate() {
        let root = dsu.find(i);
        *per_type[c].entry(root).or_default() += 1;
    }
    let fractions: Vec<f64> = per_type
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| {
            let total: usize = m.values().sum();
            *m.values().max().unwrap_or(&0) as f64 / total as f64
        })
        .collect();
    fractions.iter().sum::<f64>() / fractions.len().max(1) as f64
}

/// scIB's graph connectivity: for each cell type, the fraction of its cells
/// in the largest connected component of the kNN graph restricted to that
/// type (edges undirected); the mean over cell types. 1 = every type is one
/// connected piece. `neighbors` is the output of [`knn_graph`].
pub fn graph_connectivity<S: AsRef<str>>(neighbors: &[Vec<usize>], labels: &[S]) -> Result<f64> {
    let n = neighbors.len();
    let labels = Labels::for_cells(labels, n, "labels")?;
    if let Some(bad) = neighbors.iter().flatten().find(|&&j| j >= n) {
        return Err(AssessError::InvalidParameter {
            name: "neighbors",
            message: format!("neighbour index {bad} is out of range for {n} cells"),
        });
    }
    if n == 0 {
        return Err(AssessError::TooFewCells {
            what: "graph connectivity",
            need: 1,
            got: 0,
        });
    }
    Ok(graph_connectivity_codes(
        neighbors,
        labels.codes(),
        labels.n_classes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn knn_finds_nearest_others() {
        let x = array![[0.0f32], [1.0], [3.0], [10.0]];
        let g = knn_graph(x.view(), 2).unwrap();
        assert_eq!(g, vec![vec![1, 2], vec![0, 2], vec![1, 0], vec![2, 1]]);
        // k is capped at n - 1.
        assert_eq!(knn_graph(x.view(), 10).unwrap()[0], vec![1, 2, 3]);
        assert_eq!(
            knn_graph(x.slice(ndarray::s![..1, ..]), 3).unwrap(),
            vec![Vec::<usize>::new()]
        );
        // Ties keep the lower index.
        let tie = array![[0.0f32], [1.0], [-1.0], [2.0]];
        assert_eq!(knn_graph(tie.view(), 2).unwrap()[0], vec![1, 2]);
        assert!(knn_graph(x.view(), 0).is_err());
    }

    #[test]
    fn connectivity_counts_largest_component_per_type() {
        // Type a: cells 0,1 joined, 2 alone -> 2/3. Type b: 3,4 joined -> 1.
        let nbrs = vec![vec![1], vec![0], vec![3], vec![4], vec![3]];
        let labels = ["a", "a", "a", "b", "b"];
        let gc = graph_connectivity(&nbrs, &labels).unwrap();
        assert!((gc - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12, "{gc}");
        // An edge to another type does not join a type's cells.
        assert!(graph_connectivity(&[vec![9]], &["a"]).is_err());
    }

    #[test]
    fn separated_types_are_connected_and_split_types_are_not() {
        let (emb, labels) = crate::test_support::clusters(3, 50, 5, 10.0, 1);
        let g = knn_graph(emb.view(), 14).unwrap();
        assert!((graph_connectivity(&g, &labels).unwrap() - 1.0).abs() < 1e-12);
        // Each type split into two far-apart halves: about half its cells in
        // the largest piece.
        let mut split = emb.clone();
        for i in 0..150 {
            if (i / 3) % 2 == 0 {
                split[[i, 4]] += 100.0;
            }
        }
        let g = knn_graph(split.view(), 14).unwrap();
        let gc = graph_connectivity(&g, &labels).unwrap();
        assert!(gc < 0.6, "{gc}");
    }
}
