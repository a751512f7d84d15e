//! Tests of the `.h5ad` reader against files written by Python's anndata.
//!
//! The fixtures under `forge-core/tests/fixtures/h5ad/` and their expected
//! values (`expected.json`) are produced by `scripts/make_h5ad_fixtures.py`;
//! the PBMC facts come from the same script run on
//! `data/pbmc68k_reduced.h5ad` (fetched by `scripts/setup.sh`; the PBMC test
//! is skipped with a note when that file is absent).

use std::path::PathBuf;

use serde_json::Value;

use super::*;

const TOL: f64 = 1e-5;

use crate::test_util::{Scratch, array, f64s, fails, i64s, if_present, pbmc_path, strings};

fn fixture(name: &str) -> PathBuf {
    crate::test_util::fixture("h5ad", name)
}

fn expected() -> Value {
    crate::test_util::expected("h5ad")
}

/// The error opening `path` gives, after checking its message holds each
/// of `needles`.
#[track_caller]
fn refused(path: impl AsRef<std::path::Path>, needles: &[&str]) -> DataError {
    let err = H5ad::open(path).expect_err("the file must not open");
    fails(Err::<(), _>(&err), needles);
    err
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * (1.0 + b.abs())
}

fn assert_close_all(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let both_nan = g.is_nan() && w.is_nan();
        assert!(both_nan || close(*g, *w), "{what}[{i}]: got {g}, want {w}");
    }
}

fn dense_rows(chunk: &CellChunk) -> Vec<Vec<f64>> {
    chunk
        .to_dense()
        .chunks(chunk.n_vars.max(1))
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect()
}

fn check_stats(what: &str, got: &ValueStats, want: &Value) {
    assert!(
        close(got.min.unwrap(), want["min"].as_f64().unwrap()),
        "{what} min"
    );
    assert!(
        close(got.max.unwrap(), want["max"].as_f64().unwrap()),
        "{what} max"
    );
    assert!(
        close(got.mean.unwrap(), want["mean"].as_f64().unwrap()),
        "{what} mean"
    );
    assert!(
        close(got.frac_nonzero(), want["frac_nonzero"].as_f64().unwrap()),
        "{what} frac_nonzero"
    );
    assert_eq!(
        got.all_integer,
        want["all_integer"].as_bool().unwrap(),
        "{what} all_integer"
    );
    assert_eq!(got.nonzero, want["nnz"].as_u64().unwrap(), "{what} nonzero");
}

fn check_column(file: &str, frame: &str, got: &Column, want: &Value) {
    let what = format!("{file} {frame}");
    match (want["kind"].as_str().unwrap(), got) {
        ("categorical", Column::Categorical { codes, categories }) => {
            assert_eq!(
                categories,
                &strings(&want["categories"]),
                "{what} categories"
            );
            let want_codes: Vec<i32> = i64s(&want["codes"]).iter().map(|&c| c as i32).collect();
            assert_eq!(codes, &want_codes, "{what} codes");
        }
        ("str", Column::Str(v)) => assert_eq!(v, &strings(&want["values"]), "{what}"),
        ("f64", Column::F64(v)) => assert_close_all(&what, v, &f64s(&want["values"])),
        ("i64", Column::I64(v)) => assert_eq!(v, &i64s(&want["values"]), "{what}"),
        ("bool", Column::Bool(v)) => {
            assert_eq!(
                v,
                &array(&want["values"], |x| x.as_bool().unwrap()),
                "{what}"
            )
        }
        (kind, got) => panic!("{what}: expected a {kind} column, got {got:?}"),
    }
}

/// Checks everything `expected.json` records about a current-layout fixture.
fn check_current_fixture(name: &str, x_layout: MatrixLayout) {
    let all = expected();
    let want = &all[name];
    let f = H5ad::open(fixture(name)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.layout(), AnnDataLayout::Current, "{name}");
    let n_obs = want["n_obs"].as_u64().unwrap() as usize;
    let n_vars = want["n_vars"].as_u64().unwrap() as usize;
    assert_eq!(f.n_obs(), n_obs, "{name}");
    assert_eq!(f.n_vars(Matrix::X).unwrap(), n_vars, "{name}");
    assert_eq!(
        f.obs_names().unwrap(),
        strings(&want["obs_names"]).as_slice(),
        "{name}"
    );
    assert_eq!(
        f.var_names(Matrix::X).unwrap(),
        strings(&want["var_names"]).as_slice()
    );
    assert_eq!(f.matrix_info(Matrix::X).unwrap().layout, x_layout, "{name}");

    for (frame, cols, infos) in [
        ("obs", &want["obs"], f.obs_columns()),
        ("var", &want["var"], f.var_columns(Matrix::X).unwrap()),
    ] {
        let cols = cols.as_object().unwrap();
        let names: Vec<&str> = infos.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            cols.keys().map(String::as_str).collect::<Vec<_>>(),
            "{name} {frame}"
        );
        for info in &infos {
            let got = match frame {
                "obs" => f.obs_column(&info.name),
                _ => f.var_column(Matrix::X, &info.name),
            }
            .unwrap_or_else(|e| panic!("{e}"));
            check_column(
                name,
                &format!("{frame}/{}", info.name),
                &got,
                &cols[&info.name],
            );
            if let (
                ColumnKind::Categorical { n_categories, .. },
                Column::Categorical { categories, .. },
            ) = (&info.kind, &got)
            {
                assert_eq!(*n_categories, categories.len());
            }
        }
    }

    // Whole matrix at once, and in blocks of 2 cells: same rows.
    let all_rows = f.cell_rows(Matrix::X, 0, n_obs).unwrap();
    let mut sorted = all_rows.clone();
    sorted.sort_indices();
    let want_rows = array(&want["x_rows"], f64s);
    let got_rows = dense_rows(&sorted);
    for (i, (g, w)) in got_rows.iter().zip(&want_rows).enumerate() {
        assert_close_all(&format!("{name} X row {i}"), g, w);
    }
    assert_eq!(got_rows.len(), want_rows.len());
    let mut blocks = Vec::new();
    for start in (0..n_obs).step_by(2) {
        let chunk = f
            .cell_rows(Matrix::X, start, (start + 2).min(n_obs))
            .unwrap();
        assert_eq!(chunk.start, start);
        blocks.extend(dense_rows(&chunk));
    }
    assert_eq!(
        blocks,
        dense_rows(&all_rows),
        "{name}: blocks differ from one read"
    );
    check_stats(
        &format!("{name} X"),
        &f.stats(Matrix::X).unwrap(),
        &want["x_stats"],
    );

    match (&want["raw"], f.has_raw()) {
        (Value::Null, false) => {
            assert!(matches!(
                f.cell_rows(Matrix::Raw, 0, 1),
                Err(DataError::OutOfRange { .. })
            ));
        }
        (raw, true) => {
            assert_eq!(
                f.var_names(Matrix::Raw).unwrap(),
                strings(&raw["var_names"]).as_slice()
            );
            assert_eq!(
                f.n_vars(Matrix::Raw).unwrap(),
                raw["n_vars"].as_u64().unwrap() as usize
            );
            let mut r = f.cell_rows(Matrix::Raw, 0, n_obs).unwrap();
            r.sort_indices();
            for (i, (g, w)) in dense_rows(&r)
                .iter()
                .zip(raw["rows"].as_array().unwrap())
                .enumerate()
            {
                assert_close_all(&format!("{name} raw row {i}"), g, &f64s(w));
            }
            check_stats(
                &format!("{name} raw"),
                &f.stats(Matrix::Raw).unwrap(),
                &raw["stats"],
            );
        }
        (_, has) => panic!("{name}: raw present = {has}, expected the opposite"),
    }
}

#[test]
fn dense_fixture_matches_anndata() {
    check_current_fixture("dense.h5ad", MatrixLayout::Dense);
}

#[test]
fn csr_fixture_with_unsorted_indices_matches_anndata() {
    check_current_fixture("csr_unsorted.h5ad", MatrixLayout::Csr);
    let f = H5ad::open(fixture("csr_unsorted.h5ad")).unwrap();
    let mut chunk = f.cell_rows(Matrix::X, 0, f.n_obs()).unwrap();
    assert!(
        !chunk.has_sorted_indices(),
        "indices were expected in file order"
    );
    let before = chunk.to_dense();
    chunk.sort_indices();
    assert!(chunk.has_sorted_indices());
    assert_eq!(chunk.to_dense(), before);
    // Row 4 is empty.
    assert_eq!(chunk.row(4).0.len(), 0);
}

#[test]
fn gzip_fixture_with_raw_matches_anndata() {
    check_current_fixture("gzip_raw.h5ad", MatrixLayout::Csr);
    let f = H5ad::open(fixture("gzip_raw.h5ad")).unwrap();
    assert!(f.n_vars(Matrix::Raw).unwrap() > f.n_vars(Matrix::X).unwrap());
    // Blocks crossing every boundary agree with single-cell reads.
    for start in 0..f.n_obs() {
        let one = f.cell_rows(Matrix::Raw, start, start + 1).unwrap();
        let block = f.cell_rows(Matrix::Raw, 0, f.n_obs()).unwrap();
        let (bi, bv) = block.row(start);
        assert_eq!(one.row(0), (bi, bv));
    }
    // An empty range is fine.
    assert_eq!(f.cell_rows(Matrix::X, 3, 3).unwrap().n_cells(), 0);
}

#[test]
fn csc_fixture_matches_anndata() {
    check_current_fixture("csc.h5ad", MatrixLayout::Csc);
}

#[test]
fn anndata07_categoricals_are_read_through_their_reference() {
    check_current_fixture("anndata07.h5ad", MatrixLayout::Dense);
}

#[test]
fn summary_describes_the_file() {
    let f = H5ad::open(fixture("gzip_raw.h5ad")).unwrap();
    let s = f.summary().unwrap();
    assert_eq!((s.n_obs, s.n_vars), (12, 8));
    assert_eq!(s.raw.as_ref().unwrap().info.n_cols, 12);
    assert!(s.raw.as_ref().unwrap().stats.looks_like_counts());
    assert!(!s.x.stats.all_integer);
    let text = s.to_string();
    for needle in [
        "gzip_raw.h5ad",
        "12 cells × 8 genes",
        "CSR float32, 12 × 8",
        "raw       CSR float32, 12 × 12",
        "integer counts",
        "cell_type  categorical, 4 categories",
        "var columns (0):",
    ] {
        assert!(text.contains(needle), "summary lacks {needle:?}:\n{text}");
    }
}

#[test]
fn missing_obs_key_lists_columns_and_suggests() {
    let f = H5ad::open(fixture("dense.h5ad")).unwrap();
    let missing = f.obs_column("cell_typ");
    assert!(matches!(missing, Err(DataError::MissingKey { .. })));
    fails(
        missing,
        &[
            "dense.h5ad",
            "no column `cell_typ` in obs",
            "did you mean `cell_type`?",
            "available: cell_type, batch, n_counts, n_genes, is_doublet, condition, cluster, dose",
        ],
    );
    let err = fails(f.var_column(Matrix::X, "zzz"), &["in var"]);
    assert!(!err.contains("did you mean"), "{err}");
}

#[test]
fn out_of_range_cells_are_an_error() {
    let f = H5ad::open(fixture("dense.h5ad")).unwrap();
    fails(f.cell_rows(Matrix::X, 5, 8), &["cells 5..8", "7 cells"]);
    assert!(f.cell_rows(Matrix::X, 3, 2).is_err());
}

#[test]
fn reads_follow_the_open_file_when_its_path_is_replaced() {
    let dir = Scratch::new("replaced");
    let p = dir.path("replaced.h5ad");
    let other = dir.path("other.h5ad");
    crate::synthetic::write_synthetic(&p, 200, 300, 3, 7).unwrap();
    crate::synthetic::write_synthetic(&other, 250, 300, 3, 8).unwrap();
    let f = H5ad::open(&p).unwrap();
    let before = f.cell_rows(Matrix::X, 0, f.n_obs()).unwrap();
    std::fs::rename(&other, &p).unwrap();
    let chunk = f.cell_rows(Matrix::X, 0, f.n_obs()).unwrap();
    for i in 0..before.n_cells() {
        assert_eq!(chunk.row(i), before.row(i), "cell {i}");
    }
}

#[test]
fn a_file_truncated_after_opening_is_an_error_naming_it() {
    let dir = Scratch::new("trunc");
    let p = dir.path("trunc.h5ad");
    crate::synthetic::write_synthetic(&p, 300, 500, 3, 6).unwrap();
    let f = H5ad::open(&p).unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    fails(f.cell_rows(Matrix::X, 0, f.n_obs()), &["trunc.h5ad"]);
}

#[test]
fn a_text_file_is_not_hdf5() {
    let dir = Scratch::new("not-hdf5");
    let p = dir.path("not.h5ad");
    std::fs::write(&p, "cell,gene,count\nA,B,1\n").unwrap();
    let err = refused(&p, &["not.h5ad", "not an HDF5 file"]);
    assert!(matches!(err, DataError::NotHdf5 { .. }), "{err}");
    let p = dir.path("zero.h5ad");
    std::fs::write(&p, b"").unwrap();
    refused(&p, &["empty (0 bytes)"]);
    let missing = dir.path("does-not-exist.h5ad");
    refused(&missing, &["does-not-exist.h5ad", "cannot read"]);
}

#[test]
fn truncated_files_are_reported_not_panicked_on() {
    let dir = Scratch::new("truncated");
    let bytes = std::fs::read(fixture("gzip_raw.h5ad")).unwrap();
    for keep in [100, 2048, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.path(&format!("trunc{keep}.h5ad"));
        std::fs::write(&p, &bytes[..keep]).unwrap();
        let err = refused(&p, &[&format!("trunc{keep}.h5ad")]);
        assert!(
            matches!(err, DataError::Corrupt { .. } | DataError::NotHdf5 { .. }),
            "{err}"
        );
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let dir = Scratch::new("garbled");
    // Overwrite stretches of the file with garbage: opening and reading may
    // fail, but must fail with an error, not a panic.
    let bytes = std::fs::read(fixture("csr_unsorted.h5ad")).unwrap();
    let step = bytes.len() / 23;
    for (k, at) in (0..bytes.len()).step_by(step.max(1)).enumerate() {
        let mut b = bytes.clone();
        for (i, x) in b.iter_mut().skip(at).take(64).enumerate() {
            *x = (i as u8).wrapping_mul(37).wrapping_add(k as u8);
        }
        let p = dir.path(&format!("garbled{k}.h5ad"));
        std::fs::write(&p, &b).unwrap();
        if let Ok(f) = H5ad::open(&p) {
            // Names are read on first use: a garbled index fails then.
            let _ = f.obs_names();
            let _ = f.var_names(Matrix::X);
            let _ = f.summary();
            let _ = f.obs_column("cell_type");
            for start in (0..f.n_obs()).step_by(4) {
                let _ = f.cell_rows(Matrix::X, start, (start + 4).min(f.n_obs()));
            }
            let _ = f.cell_rows(Matrix::X, 0, f.n_obs());
        }
    }
}

#[test]
fn structural_errors_name_the_object() {
    let err = refused(fixture("no_x.h5ad"), &["no_x.h5ad", "`X`", "obs"]);
    assert!(matches!(err, DataError::NoX { .. }), "{err}");
    let err = refused(fixture("empty.h5ad"), &["0 cells"]);
    assert!(matches!(err, DataError::Empty { n_vars: 3, .. }), "{err}");
    let err = refused(fixture("bad_shape.h5ad"), &["`X`", "3 × 3", "5 × 3"]);
    assert!(matches!(err, DataError::ShapeMismatch { .. }), "{err}");
    let needles = ["`X`", "coo_matrix", "csr_matrix"];
    let err = refused(fixture("bad_encoding.h5ad"), &needles);
    assert!(
        matches!(err, DataError::UnsupportedEncoding { .. }),
        "{err}"
    );
}

#[test]
fn pbmc68k_reduced_matches_anndata() {
    let Some(path) = if_present(pbmc_path()) else {
        return;
    };
    let all = expected();
    let want = &all["pbmc68k_reduced"];
    let f = H5ad::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.layout(), AnnDataLayout::Old);
    assert_eq!(f.n_obs(), want["n_obs"].as_u64().unwrap() as usize);
    assert_eq!(f.n_obs(), 700);
    assert_eq!(f.n_vars(Matrix::X).unwrap(), 765);
    assert_eq!(
        f.n_vars(Matrix::Raw).unwrap(),
        want["raw_n_vars"].as_u64().unwrap() as usize
    );
    assert_eq!(
        &f.obs_names().unwrap()[..5],
        strings(&want["obs_names_head"]).as_slice()
    );
    assert_eq!(
        f.obs_names().unwrap()[699],
        want["obs_names_tail"].as_str().unwrap()
    );
    assert_eq!(
        &f.var_names(Matrix::X).unwrap()[..5],
        strings(&want["var_names_head"]).as_slice()
    );
    let raw_var = f.var_names(Matrix::Raw).unwrap();
    assert_eq!(
        &raw_var[..5],
        strings(&want["raw_var_names_head"]).as_slice()
    );
    assert_eq!(
        raw_var.last().unwrap(),
        want["raw_var_names_tail"].as_str().unwrap()
    );
    let obs_cols: Vec<String> = f.obs_columns().into_iter().map(|c| c.name).collect();
    assert_eq!(obs_cols, strings(&want["obs_columns"]));
    let var_cols: Vec<String> = f
        .var_columns(Matrix::X)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(var_cols, strings(&want["var_columns"]));

    // X: dense, scaled (negative values).
    let x = f.matrix_info(Matrix::X).unwrap();
    assert_eq!(
        (x.layout, x.dtype.as_str()),
        (MatrixLayout::Dense, "float32")
    );
    let x_chunk = f.cell_rows(Matrix::X, 0, 700).unwrap();
    let dense = x_chunk.to_dense();
    let row0: Vec<f64> = dense[..5].iter().map(|&v| f64::from(v)).collect();
    assert_close_all("X[0, :5]", &row0, &f64s(&want["x_row0_head"]));
    let row699: Vec<f64> = dense[699 * 765..699 * 765 + 5]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_close_all("X[699, :5]", &row699, &f64s(&want["x_row699_head"]));
    check_stats("pbmc X", &f.stats(Matrix::X).unwrap(), &want["x_stats"]);

    // raw: CSR (old `h5sparse_format`), log-normalised.
    let raw = f.matrix_info(Matrix::Raw).unwrap();
    assert_eq!(raw.layout, MatrixLayout::Csr);
    assert_eq!(raw.object, "raw.X");
    assert_eq!(raw.stored, want["raw_nnz_stored"].as_u64().unwrap());
    let head = f.cell_rows(Matrix::Raw, 0, 5).unwrap();
    assert_close_all(
        "raw row sums",
        &head.row_sums(),
        &f64s(&want["raw_row_sums_head"]),
    );
    let nnz: Vec<i64> = (0..5).map(|i| head.row(i).0.len() as i64).collect();
    assert_eq!(nnz, i64s(&want["raw_row_nnz_head"]));
    check_stats(
        "pbmc raw",
        &f.stats(Matrix::Raw).unwrap(),
        &want["raw_stats"],
    );

    // Categoricals from `uns/<col>_categories`.
    let bulk = f.obs_column("bulk_labels").unwrap();
    let Column::Categorical { categories, .. } = &bulk else {
        panic!("bulk_labels is not categorical: {bulk:?}");
    };
    assert_eq!(categories, &strings(&want["bulk_labels_categories"]));
    assert_eq!(categories.len(), 10);
    let counts: Vec<i64> = (0..categories.len())
        .map(|k| {
            (0..700)
                .filter(|&i| bulk.label(i) == Some(categories[k].as_str()))
                .count() as i64
        })
        .collect();
    assert_eq!(counts, i64s(&want["bulk_labels_counts"]));
    let labels: Vec<&str> = (0..5).map(|i| bulk.label(i).unwrap()).collect();
    assert_eq!(labels, strings(&want["bulk_labels_head"]));
    for col in ["phase", "louvain"] {
        match f.obs_column(col).unwrap() {
            Column::Categorical { categories, .. } => {
                assert_eq!(categories, strings(&want[&format!("{col}_categories")]))
            }
            other => panic!("{col}: {other:?}"),
        }
    }
    match f.obs_column("n_genes").unwrap() {
        Column::I64(v) => assert_eq!(&v[..5], i64s(&want["n_genes_head"])),
        other => panic!("n_genes: {other:?}"),
    }
    match f.obs_column("percent_mito").unwrap() {
        Column::F64(v) => {
            assert_close_all("percent_mito", &v[..5], &f64s(&want["percent_mito_head"]))
        }
        other => panic!("percent_mito: {other:?}"),
    }
    match f.var_column(Matrix::X, "highly_variable").unwrap() {
        Column::Bool(v) => assert_eq!(
            v.iter().filter(|&&b| b).count() as u64,
            want["highly_variable_count"].as_u64().unwrap()
        ),
        other => panic!("highly_variable: {other:?}"),
    }
    fails(f.obs_column("bulk_label"), &["did you mean `bulk_labels`?"]);

    let text = f.summary().unwrap().to_string();
    for needle in [
        "700 cells × 765 genes",
        "old pre-0.7",
        "dense float32, 700 × 765",
        "raw       CSR float32, 700 × 765",
        "bulk_labels   categorical, 10 categories",
        "highly_variable",
    ] {
        assert!(text.contains(needle), "summary lacks {needle:?}:\n{text}");
    }
}

#[test]
fn handles_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<H5ad>();
    send_sync::<CellChunk>();
    send_sync::<DataError>();
    let f = H5ad::open(fixture("gzip_raw.h5ad")).unwrap();
    let sums: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|k| {
                let f = &f;
                s.spawn(move || {
                    f.cell_rows(Matrix::Raw, 4 * k, 4 * k + 4)
                        .unwrap()
                        .row_sums()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let whole = f.cell_rows(Matrix::Raw, 0, 12).unwrap().row_sums();
    assert_eq!(sums, whole);
}
