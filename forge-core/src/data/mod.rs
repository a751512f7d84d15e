//! Reading single-cell data from disk.
//!
//! forge consumes the AnnData `.h5ad` format (HDF5) that scModelForge and the
//! Python single-cell ecosystem write. [`h5ad`] opens such a file in pure Rust
//! (no libhdf5), describes it (shape, matrix layout, cell and gene metadata,
//! value statistics) and streams its expression matrix a block of cells at a
//! time as CSR chunks.
//!
//! What this module is not: it does not normalise, tokenise or batch cells
//! (that is preprocessing and tokenisation, built on top of
//! [`h5ad::CellChunk`]), and it never writes `.h5ad` files.

pub mod h5ad;
