//! `forge preprocess`: one `.h5ad` in, one preprocessed `.h5ad` out, as
//! scModelForge's `preprocess` command makes it (`normalize_total` to
//! `target_sum`, `log1p`, then `highly_variable_genes(n_top_genes=N)` with
//! scanpy's default `seurat` flavor on the log-normalised values, and the
//! genes subset to the highly variable ones).
//!
//! - Cells are read as training reads them ([`Corpus`] with the `data`
//!   settings: `use_raw`, `gene_key`, `preprocessing.normalize`,
//!   `target_sum`, `log1p`); the highly variable genes are chosen by
//!   [`super::hvg`].
//! - The output is a copy of the input with `X` replaced by the
//!   preprocessed values (float32 CSR) over the kept genes, and `var`
//!   replaced by those genes (index = the gene names forge read) with
//!   scanpy's columns `means`, `dispersions`, `dispersions_norm` when HVG
//!   selection ran. `obs`, `obsm`, `obsp`, `uns` and `raw` are kept;
//!   `layers`, `varm` and `varp` (gene-aligned, no longer matching) are
//!   dropped.
//! - The file is written beside the target and renamed into place only
//!   when complete.
//!
//! Differences from scanpy: genes with the same name are one gene (their
//! values summed), as everywhere in forge; `X` is written sparse even when
//! the input was dense.

use std::path::{Path, PathBuf};

use hdf5_pure::{AttrValue, File};

use super::corpus::{Corpus, CorpusOptions};
use super::h5ad::write::{tag, vstr};
use super::hvg::{HvgStats, HvgTable};
use super::{DataError, H5ad};
use forge_core::config::DataConfig;

/// What `preprocess` did.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessSummary {
    /// Cells written.
    pub n_cells: usize,
    /// Genes read.
    pub n_genes_in: usize,
    /// Genes written.
    pub n_genes_out: usize,
    /// Stored non-zero values written.
    pub nnz: usize,
    /// The output file.
    pub output: PathBuf,
}

/// Preprocesses `input` into `output` as `data` says (normalisation,
/// log1p) and keeps the `hvg` most variable genes (`None`: all genes).
pub fn preprocess_h5ad(
    input: &Path,
    output: &Path,
    data: &DataConfig,
    hvg: Option<usize>,
) -> Result<PreprocessSummary, DataError> {
    if hvg == Some(0) {
        return Err(DataError::setting(
            "data.preprocessing.hvg_selection",
            "must be a positive number of genes or null, found 0",
        ));
    }
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        return Err(DataError::setting(
            "--out",
            format!(
                "{} is the input file; write the preprocessed cells to a new file",
                output.display()
            ),
        ));
    }
    let corpus = Corpus::open(&[input], &CorpusOptions::from_config(data))?;
    let n_genes = corpus.genes().len();
    let mut stats = HvgStats::new(n_genes);
    let (mut indptr, mut indices, mut values) = (vec![0i64], Vec::new(), Vec::new());
    corpus.for_each_cell(4096, |_, row| {
        stats.add(&row.genes, &row.values);
        for (&g, &v) in row.genes.iter().zip(&row.values) {
            if v != 0.0 {
                indices.push(g);
                values.push(v);
            }
        }
        indptr.push(indices.len() as i64);
        Ok(())
    })?;
    let table = hvg.map(|n| stats.seurat(n));
    let keep: Vec<usize> = match &table {
        Some(t) => t.selected(),
        None => (0..n_genes).collect(),
    };
    // Remap columns onto the kept genes.
    let mut new_col = vec![u32::MAX; n_genes];
    for (i, &g) in keep.iter().enumerate() {
        new_col[g] = i as u32;
    }
    let (mut out_ptr, mut out_idx, mut out_val) = (vec![0i64], Vec::new(), Vec::new());
    for cell in 0..indptr.len() - 1 {
        for k in indptr[cell] as usize..indptr[cell + 1] as usize {
            let c = new_col[indices[k] as usize];
            if c != u32::MAX {
                out_idx.push(c as i32);
                out_val.push(values[k]);
            }
        }
        out_ptr.push(out_idx.len() as i64);
    }
    drop((indptr, indices, values));
    let names: Vec<String> = keep.iter().map(|&g| corpus.genes()[g].clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let n_cells = corpus.n_cells();
    drop(corpus);
    let x = Csr {
        n_rows: n_cells,
        n_cols: keep.len(),
        indptr: &out_ptr,
        indices: &out_idx,
        data: &out_val,
    };
    forge_core::atomic::write_file_with(
        output,
        |tmp| {
            std::fs::copy(input, tmp).map_err(|e| DataError::io(tmp, e))?;
            rewrite(
                tmp,
                output,
                &x,
                &names,
                table.as_ref().map(|t| (t, &keep[..])),
            )
        },
        |p, e| DataError::io(p, e),
    )?;
    // Read it back: a file forge cannot open is not written successfully.
    let check = H5ad::open(output)?;
    if check.n_obs() != n_cells {
        return Err(DataError::Write {
            path: output.to_path_buf(),
            detail: format!("reads back {} cells, wrote {n_cells}", check.n_obs()),
        });
    }
    Ok(PreprocessSummary {
        n_cells,
        n_genes_in: n_genes,
        n_genes_out: keep.len(),
        nnz: out_val.len(),
        output: output.to_path_buf(),
    })
}

struct Csr<'a> {
    n_rows: usize,
    n_cols: usize,
    indptr: &'a [i64],
    indices: &'a [i32],
    data: &'a [f32],
}

fn rewrite(
    tmp: &Path,
    output: &Path,
    x: &Csr<'_>,
    names: &[&str],
    hvg: Option<(&HvgTable, &[usize])>,
) -> Result<(), DataError> {
    let err = |what: &str, e: hdf5_pure::Error| DataError::Write {
        path: output.to_path_buf(),
        detail: format!("{what}: {e}"),
    };
    let f = File::open_rw(tmp).map_err(|e| err("cannot open the copy", e))?;
    let root = f.root();
    for name in ["X", "var", "layers", "varm", "varp"] {
        if f.group(name).is_ok() || f.dataset(name).is_ok() {
            root.delete(name)
                .map_err(|e| err(&format!("cannot replace {name}"), e))?;
        }
    }
    root.create_group_with("X", |g| {
        tag!(g, "csr_matrix", "0.1.0");
        g.set_attr(
            "shape",
            AttrValue::I64Array(vec![x.n_rows as i64, x.n_cols as i64]),
        );
    })
    .map_err(|e| err("X", e))?;
    root.create_dataset("X/data", |b| {
        b.with_f32_data(x.data);
    })
    .map_err(|e| err("X/data", e))?;
    root.create_dataset("X/indices", |b| {
        b.with_i32_data(x.indices);
    })
    .map_err(|e| err("X/indices", e))?;
    root.create_dataset("X/indptr", |b| {
        b.with_i64_data(x.indptr);
    })
    .map_err(|e| err("X/indptr", e))?;

    let columns: Vec<(&str, Vec<f64>)> = match hvg {
        Some((t, keep)) => {
            let pick = |v: &[f64]| keep.iter().map(|&g| v[g]).collect::<Vec<f64>>();
            vec![
                ("means", pick(&t.means)),
                ("dispersions", pick(&t.dispersions)),
                ("dispersions_norm", pick(&t.dispersions_norm)),
            ]
        }
        None => Vec::new(),
    };
    root.create_group_with("var", |g| {
        tag!(g, "dataframe", "0.2.0");
        g.set_attr("_index", vstr("_index"));
        g.set_attr(
            "column-order",
            AttrValue::VarLenStringArray(columns.iter().map(|(c, _)| c.to_string()).collect()),
        );
    })
    .map_err(|e| err("var", e))?;
    root.create_dataset("var/_index", |b| {
        b.with_vlen_strings(names);
        tag!(b, "string-array", "0.2.0");
    })
    .map_err(|e| err("var/_index", e))?;
    for (name, values) in &columns {
        root.create_dataset(&format!("var/{name}"), |b| {
            b.with_f64_data(values);
            tag!(b, "array", "0.2.0");
        })
        .map_err(|e| err(&format!("var/{name}"), e))?;
    }
    for name in ["layers", "varm", "varp"] {
        root.create_group_with(name, |g| {
            tag!(g, "dict", "0.1.0");
        })
        .map_err(|e| err(name, e))?;
    }
    f.commit().map_err(|e| err("cannot commit", e))?;
    Ok(())
}
