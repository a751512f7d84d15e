//! From `.h5ad` files to a stream of padded [`Batch`]es: the data pipeline,
//! datasets (train/validation splits) and the multi-threaded loader.
//!
//! - [`DataPipeline`] ties a [`Corpus`] (files, shared genes,
//!   preprocessing), a [`GeneVocab`], a [`Tokenizer`], the [`Masking`]
//!   settings and, for fine-tuning, [`TaskLabels`] together.
//!   [`DataPipeline::from_config`] builds all of it from a config; when the
//!   vocabulary is given (`data.gene_vocab`/`tokenizer.gene_vocab`), each
//!   file's gene coverage is measured and checked (see [`super::genes`]).
//! - [`CellDataset`] is a selection of the corpus's cells:
//!   [`DataPipeline::split`] assigns each cell to validation with probability
//!   `val_split`, decided by a hash of (seed, cell index) alone, so the split
//!   is reproducible, needs no pass over the data, and a cell keeps its side
//!   when files are appended to `data.paths`.
//! - [`DataLoader`] yields one epoch of batches at a time. Batches are built
//!   (tokenised, masked, collated) on `num_workers` threads and handed over
//!   through bounded channels (`prefetch` batches per worker), in a fixed
//!   order, so the consumer rarely waits and results do not depend on
//!   thread scheduling. Masking draws from one generator per (seed, epoch,
//!   cell) ([`super::masking::cell_rng`]).
//!
//! Two reading modes:
//! - in memory (default): the dataset's cells are read and preprocessed
//!   once when the loader is created (memory: 8 bytes per stored entry);
//!   each epoch shuffles them with a seeded permutation;
//! - streaming (`data.streaming`): nothing is held but a shuffle buffer.
//!   Each epoch reads blocks of `streaming_chunk_size` consecutive cells, in
//!   a shuffled block order, and passes cells through a buffer of
//!   `streaming_shuffle_buffer` cells from which a random one leaves each
//!   time a new one enters. Memory is bounded by buffer + a few read
//!   windows per thread + prefetched batches, whatever the file size. The
//!   shuffle is local (cells from nearby blocks mix), as with any
//!   streaming loader. The loader's threads share the reading as well as
//!   the batching (see the `stream` module), and the batches do not depend
//!   on how many there are.
//!   Under `rank_value`, a stored row of whole counts is tokenized straight
//!   from the file's values ([`super::rank_counts`]): the same tokens as
//!   preparing the row then tokenizing it, at a fraction of the cost.
//!
//! Length bucketing ([`LoaderOptions::bucket_window`], off by default to
//! match scModelForge): cells are taken `window` batches at a time, sorted by
//! their number of stored genes, cut into batches and the batches of the
//! window shuffled, so cells of similar length share a batch and padding
//! shrinks. It changes which cells meet in a batch, not which cells are
//! seen.
//!
//! What this module is not: it does not train or move batches to a device.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::batch::Batch;
use crate::config::ForgeConfig;

use super::corpus::{Corpus, PreparedRow, TaskLabels};
use super::genes::{Coverage, GeneMatchOptions};
use super::masking::{Masking, mix};
use super::rank_counts::ColumnTokens;
use super::stream;
use super::tokenize::{TokenizedCell, Tokenizer};
use super::worker::{Ctx, Slot, Worker};
use super::{DataError, GeneVocab};

/// Cells sampled to fit quantile bin edges.
const QUANTILE_FIT_CELLS: usize = 10_000;

/// What a pipeline's datasets, loaders and their threads share.
pub(super) struct Inner {
    pub corpus: Corpus,
    pub vocab: GeneVocab,
    pub gene_ids: Vec<i64>,
    pub tokenizer: Tokenizer,
    pub masking: Option<Masking>,
    pub labels: Option<TaskLabels>,
    pub coverage: Vec<Coverage>,
    /// Token id of each column of each file (the streaming fast path).
    pub columns: Vec<ColumnTokens>,
}

/// Files, vocabulary, tokenizer and masking: everything needed to turn
/// cells into batches.
#[derive(Clone)]
pub struct DataPipeline {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DataPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPipeline")
            .field("files", &self.inner.corpus.paths())
            .field("cells", &self.inner.corpus.n_cells())
            .field("genes", &self.inner.corpus.genes().len())
            .field("vocab_size", &self.inner.vocab.len())
            .finish()
    }
}

impl DataPipeline {
    /// Assembles a pipeline. With `vocab` given, every file's coverage is
    /// measured and checked against `matching.min_coverage`, and genes the
    /// vocabulary lacks are dropped from cells (as scModelForge aligns a
    /// file to a vocabulary); without, the vocabulary is built from the
    /// corpus genes.
    pub fn new(
        mut corpus: Corpus,
        vocab: Option<GeneVocab>,
        tokenizer: Tokenizer,
        masking: Option<Masking>,
        matching: &GeneMatchOptions,
    ) -> Result<DataPipeline, DataError> {
        let mut coverage = Vec::new();
        let vocab = match vocab {
            Some(v) => {
                for i in 0..corpus.n_files() {
                    let f = corpus.file(i);
                    let names = super::genes::gene_names(f, corpus.matrix(), corpus.gene_key())?;
                    let cov = Coverage::measure(
                        f,
                        corpus.matrix(),
                        &names,
                        corpus.gene_key(),
                        &v,
                        matching.case_insensitive,
                    )?;
                    cov.check(matching.min_coverage)?;
                    coverage.push(cov);
                }
                corpus.retain_known(&v);
                v
            }
            None => GeneVocab::from_genes(corpus.genes()),
        };
        let gene_ids = corpus.gene_ids(&vocab);
        let columns = (0..corpus.n_files())
            .map(|f| corpus.column_tokens(f, &gene_ids))
            .collect();
        let masking = masking.map(|m| Masking {
            vocab_size: vocab.len() as i64,
            ..m
        });
        Ok(DataPipeline {
            inner: Arc::new(Inner {
                corpus,
                vocab,
                gene_ids,
                tokenizer,
                masking,
                labels: None,
                coverage,
                columns,
            }),
        })
    }

    /// Builds the pipeline of a config: `data` (files, preprocessing, genes),
    /// `tokenizer` (strategy, masking), the vocabulary from the file named by
    /// `tokenizer.gene_vocab` or `data.gene_vocab` when one is a path (see
    /// [`ForgeConfig::gene_vocab_file`]; a name builds it from the data),
    /// matched and
    /// coverage-checked per `data.min_gene_coverage` and
    /// `data.case_insensitive_genes`.
    pub fn from_config(cfg: &ForgeConfig) -> Result<DataPipeline, DataError> {
        let corpus = Corpus::from_config(&cfg.data)?;
        let vocab = match cfg.gene_vocab_file() {
            Some(p) => Some(GeneVocab::load(PathBuf::from(p))?),
            None => None,
        };
        let tokenizer =
            Tokenizer::from_config(&cfg.tokenizer, || corpus.sample_values(QUANTILE_FIT_CELLS))?;
        let masking = Masking::from_config(&cfg.tokenizer.masking, 0)?;
        DataPipeline::new(
            corpus,
            vocab,
            tokenizer,
            Some(masking),
            &GeneMatchOptions::from_config(&cfg.data),
        )
    }

    /// Adds fine-tuning labels from the obs column `key` (see
    /// [`Corpus::task_labels`]). Must be called before datasets are made.
    pub fn with_task_labels(mut self, key: &str) -> Result<DataPipeline, DataError> {
        let labels = self.inner.corpus.task_labels(key)?;
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| DataError::Loader("add task labels before creating datasets".into()))?;
        inner.labels = Some(labels);
        Ok(self)
    }

    /// The corpus.
    pub fn corpus(&self) -> &Corpus {
        &self.inner.corpus
    }

    /// The vocabulary (`vocab.len()` is the model's `vocab_size`).
    pub fn vocab(&self) -> &GeneVocab {
        &self.inner.vocab
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// The masking settings.
    pub fn masking(&self) -> Option<&Masking> {
        self.inner.masking.as_ref()
    }

    /// Fine-tuning labels, when added.
    pub fn task_labels(&self) -> Option<&TaskLabels> {
        self.inner.labels.as_ref()
    }

    /// Gene coverage of each file, when the vocabulary was given.
    pub fn coverage(&self) -> &[Coverage] {
        &self.inner.coverage
    }

    /// Vocabulary id of each corpus gene.
    pub fn gene_ids(&self) -> &[i64] {
        &self.inner.gene_ids
    }

    /// Every cell.
    pub fn all(&self) -> CellDataset {
        CellDataset::new(self.inner.clone(), Selection::All)
    }

    /// Train and validation datasets: each cell goes to validation with
    /// probability `val_split` (in [0, 1)), decided by (seed, cell index).
    pub fn split(
        &self,
        val_split: f64,
        seed: u64,
    ) -> Result<(CellDataset, CellDataset), DataError> {
        if !(0.0..1.0).contains(&val_split) {
            return Err(DataError::setting(
                "training.val_split",
                format!("must be within [0, 1), found {val_split}"),
            ));
        }
        let sel = |val| Selection::Split {
            seed,
            val_split,
            val,
        };
        Ok((
            CellDataset::new(self.inner.clone(), sel(false)),
            CellDataset::new(self.inner.clone(), sel(true)),
        ))
    }

    /// The dataset of exactly the corpus cells `cells` (any order,
    /// duplicates ignored; they are visited in ascending order). For splits
    /// decided elsewhere, e.g. fine-tuning's stratified split.
    pub fn subset(&self, cells: &[usize]) -> Result<CellDataset, DataError> {
        let n = self.inner.corpus.n_cells();
        let mut member = vec![false; n];
        for &c in cells {
            if c >= n {
                return Err(DataError::setting(
                    "cells",
                    format!("cell {c} is out of range; the corpus has {n} cells"),
                ));
            }
            member[c] = true;
        }
        Ok(CellDataset::new(
            self.inner.clone(),
            Selection::Cells(Arc::new(member)),
        ))
    }

    /// Tokenizes one corpus cell (no masking): for inspection and tests.
    pub fn tokenize_cell(&self, cell: usize) -> Result<TokenizedCell, DataError> {
        let c = &self.inner.corpus;
        if cell >= c.n_cells() {
            return Err(DataError::setting(
                "cell",
                format!(
                    "{cell} is out of range; the corpus has {} cells",
                    c.n_cells()
                ),
            ));
        }
        let (file, local) = c.locate(cell);
        let chunk = c.read_chunk(file, local, local + 1)?;
        let (cols, vals) = chunk.row(0);
        let mut row = PreparedRow::default();
        c.prepare(file, cols, vals, &mut row);
        Ok(self
            .inner
            .tokenizer
            .tokenize(&row.genes, &row.values, &self.inner.gene_ids))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Selection {
    All,
    /// An explicit set of cells (`member[cell]`).
    Cells(Arc<Vec<bool>>),
    Split {
        seed: u64,
        val_split: f64,
        val: bool,
    },
}

impl Selection {
    fn contains(&self, cell: usize) -> bool {
        match *self {
            Selection::All => true,
            Selection::Cells(ref member) => member.get(cell).copied().unwrap_or(false),
            Selection::Split {
                seed,
                val_split,
                val,
            } => {
                let h = mix(mix(seed ^ 0x5b1d_5b1d) ^ cell as u64);
                let u = (h >> 11) as f64 / (1u64 << 53) as f64;
                (u < val_split) == val
            }
        }
    }
}

/// A selection of the corpus's cells.
#[derive(Clone)]
pub struct CellDataset {
    inner: Arc<Inner>,
    selection: Selection,
    len: usize,
}

impl std::fmt::Debug for CellDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellDataset")
            .field("cells", &self.len)
            .field("selection", &self.selection)
            .finish()
    }
}

impl CellDataset {
    fn new(inner: Arc<Inner>, selection: Selection) -> CellDataset {
        let len = (0..inner.corpus.n_cells())
            .filter(|&c| selection.contains(c))
            .count();
        CellDataset {
            inner,
            selection,
            len,
        }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the dataset has no cell.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Corpus indices of the cells, ascending.
    pub fn cells(&self) -> Vec<usize> {
        (0..self.inner.corpus.n_cells())
            .filter(|&c| self.selection.contains(c))
            .collect()
    }

    /// Whether corpus cell `cell` belongs to the dataset.
    pub fn contains(&self, cell: usize) -> bool {
        cell < self.inner.corpus.n_cells() && self.selection.contains(cell)
    }

    /// A loader over the dataset (reads the cells now unless streaming).
    pub fn loader(&self, opts: LoaderOptions) -> Result<DataLoader, DataError> {
        DataLoader::new(self.clone(), opts)
    }
}

/// Streaming settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamingOptions {
    /// Consecutive cells read per block (`data.streaming_chunk_size`).
    pub chunk_size: usize,
    /// Cells held for shuffling (`data.streaming_shuffle_buffer`).
    pub shuffle_buffer: usize,
}

/// How a [`DataLoader`] batches.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderOptions {
    /// Cells per batch.
    pub batch_size: usize,
    /// Shuffle each epoch (seeded by `seed` and the epoch).
    pub shuffle: bool,
    /// Drop a last, incomplete batch.
    pub drop_last: bool,
    /// Threads building batches (0 counts as 1).
    pub num_workers: usize,
    /// Finished batches each worker may hold ahead of the consumer.
    pub prefetch: usize,
    /// Seed of shuffling and masking.
    pub seed: u64,
    /// Mask cells (pretraining): adds `labels` and `masked_positions`.
    pub mask: bool,
    /// Stream from disk instead of loading the dataset.
    pub streaming: Option<StreamingOptions>,
    /// Length bucketing over windows of this many batches; `None` (default)
    /// for none.
    pub bucket_window: Option<usize>,
    /// Weighted draws of each epoch's cells (`training.sampling`); `None`
    /// (default): the order `shuffle` says. Not with streaming.
    pub sampler: Option<super::sampling::WeightedSampler>,
    /// Batch-level gene selection (`data.gene_selection`); `None`
    /// (default): every gene. Not with streaming.
    pub gene_selection: Option<super::gene_selection::GeneSelection>,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            batch_size: 64,
            shuffle: true,
            drop_last: false,
            num_workers: 4,
            prefetch: 2,
            seed: 42,
            mask: true,
            streaming: None,
            bucket_window: None,
            sampler: None,
            gene_selection: None,
        }
    }
}

impl LoaderOptions {
    /// Pretraining loader settings from a config: `training.batch_size`,
    /// `training.seed`, `training.num_workers` (scModelForge's DataLoader
    /// workers), `data.streaming*`; shuffled and masked.
    pub fn from_config(cfg: &ForgeConfig) -> Result<LoaderOptions, DataError> {
        let positive = |key: &str, v: i64| {
            usize::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
                DataError::setting(key, format!("must be a positive integer, found {v}"))
            })
        };
        let streaming = if cfg.data.streaming {
            Some(StreamingOptions {
                chunk_size: positive("data.streaming_chunk_size", cfg.data.streaming_chunk_size)?,
                shuffle_buffer: positive(
                    "data.streaming_shuffle_buffer",
                    cfg.data.streaming_shuffle_buffer,
                )?,
            })
        } else {
            None
        };
        Ok(LoaderOptions {
            batch_size: positive("training.batch_size", cfg.training.batch_size)?,
            num_workers: usize::try_from(cfg.training.num_workers).unwrap_or(0),
            seed: cfg.training.seed as u64,
            streaming,
            ..LoaderOptions::default()
        })
    }

    /// Settings for computing embeddings: in file order, no masking.
    pub fn inference(batch_size: usize) -> LoaderOptions {
        LoaderOptions {
            batch_size,
            shuffle: false,
            mask: false,
            ..LoaderOptions::default()
        }
    }
}

/// Prepared rows of a dataset, held in memory.
struct Store {
    cells: Vec<usize>,
    indptr: Vec<usize>,
    genes: Vec<u32>,
    values: Vec<f32>,
}

impl Store {
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[i]..self.indptr[i + 1];
        (&self.genes[r.clone()], &self.values[r])
    }
}

/// Yields epochs of batches over a [`CellDataset`].
pub struct DataLoader {
    ds: CellDataset,
    opts: LoaderOptions,
    source: Source,
}

/// Where a loader's cells come from.
enum Source {
    /// The dataset's prepared rows, read when the loader was created.
    Memory(Arc<Store>),
    /// The files, read anew each epoch.
    Streaming(StreamingOptions),
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("cells", &self.ds.len())
            .field("opts", &self.opts)
            .finish()
    }
}

impl DataLoader {
    /// A loader; unless streaming, reads and preprocesses the dataset now.
    pub fn new(ds: CellDataset, opts: LoaderOptions) -> Result<DataLoader, DataError> {
        if opts.batch_size == 0 {
            return Err(DataError::setting(
                "batch_size",
                "must be at least 1, found 0",
            ));
        }
        if opts.mask && ds.inner.masking.is_none() {
            return Err(DataError::setting(
                "mask",
                "masking was asked for but the pipeline has no masking settings",
            ));
        }
        if let Some(s) = opts.streaming
            && (s.chunk_size == 0 || s.shuffle_buffer == 0)
        {
            return Err(DataError::setting(
                "data.streaming_chunk_size / data.streaming_shuffle_buffer",
                "must be at least 1",
            ));
        }
        if opts.streaming.is_some() && (opts.sampler.is_some() || opts.gene_selection.is_some()) {
            return Err(DataError::setting(
                "training.sampling / data.gene_selection",
                "weighted sampling and batch-level gene selection work on cells held in memory, \
                 not with data.streaming: true; set data.streaming: false, or \
                 training.sampling.strategy: random and data.gene_selection.strategy: all",
            ));
        }
        keep_freed_batch_memory();
        let source = if let Some(s) = opts.streaming {
            Source::Streaming(s)
        } else {
            let mut store = Store {
                cells: Vec::with_capacity(ds.len()),
                indptr: vec![0],
                genes: Vec::new(),
                values: Vec::new(),
            };
            ds.inner.corpus.for_each_cell(4096, |cell, row| {
                if ds.selection.contains(cell) {
                    store.cells.push(cell);
                    store.genes.extend_from_slice(&row.genes);
                    store.values.extend_from_slice(&row.values);
                    store.indptr.push(store.genes.len());
                }
                Ok(())
            })?;
            Source::Memory(Arc::new(store))
        };
        Ok(DataLoader { ds, opts, source })
    }

    /// Cells per epoch.
    pub fn n_cells(&self) -> usize {
        self.ds.len()
    }

    /// Batches per epoch.
    pub fn n_batches(&self) -> usize {
        let (n, b) = (self.ds.len(), self.opts.batch_size);
        if self.opts.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The settings.
    pub fn options(&self) -> &LoaderOptions {
        &self.opts
    }

    /// Starts epoch `epoch` (shuffling and masking depend on it): the
    /// batches are built in the background as the iterator is consumed.
    pub fn epoch(&self, epoch: u64) -> Batches {
        let workers = self.opts.num_workers.max(1);
        let prefetch = self.opts.prefetch.max(1);
        let ctx = Arc::new(Ctx {
            inner: self.ds.inner.clone(),
            epoch,
            seed: self.opts.seed,
            mask: self.opts.mask,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (receivers, threads, stream) = match &self.source {
            Source::Memory(store) => {
                let plan = Arc::new(self.plan_memory(store, epoch));
                let selection = self.opts.gene_selection.clone().map(Arc::new);
                let (receivers, threads) =
                    memory_epoch(store, plan, &ctx, workers, prefetch, &stop, selection);
                (receivers, threads, None)
            }
            &Source::Streaming(streaming) => {
                let ahead = workers * prefetch;
                let (shared, receivers, threads) = stream::start(
                    &self.ds,
                    &self.opts,
                    streaming,
                    ctx,
                    workers,
                    ahead,
                    stop.clone(),
                );
                (receivers, threads, Some(shared))
            }
        };
        Batches {
            receivers,
            next: 0,
            expected: self.n_batches(),
            done: false,
            threads,
            stop,
            stream,
        }
    }

    /// The batches of an in-memory epoch, as positions into the store.
    fn plan_memory(&self, store: &Store, epoch: u64) -> Vec<Vec<u32>> {
        let mut order: Vec<u32> = (0..store.cells.len() as u32).collect();
        let mut rng = epoch_rng(self.opts.seed, epoch, 0x0bde);
        if let Some(sampler) = &self.opts.sampler {
            order = sampler.epoch_order(&store.cells, epoch);
        } else if self.opts.shuffle {
            order.shuffle(&mut rng);
        }
        let lens = |i: u32| store.indptr[i as usize + 1] - store.indptr[i as usize];
        plan_batches(order, &self.opts, &mut rng, lens)
    }
}

/// Starts the threads of an in-memory epoch: worker `w` builds batches
/// `w`, `w + workers`, ... of `plan` and sends them on its own channel,
/// holding at most `prefetch` ahead of the consumer.
fn memory_epoch(
    store: &Arc<Store>,
    plan: Arc<Vec<Vec<u32>>>,
    ctx: &Arc<Ctx>,
    workers: usize,
    prefetch: usize,
    stop: &Arc<AtomicBool>,
    selection: Option<Arc<super::gene_selection::GeneSelection>>,
) -> (Vec<Receiver<Loaded>>, Vec<JoinHandle<()>>) {
    let mut receivers = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for w in 0..workers {
        let (tx, rx) = sync_channel(prefetch);
        receivers.push(rx);
        let (plan, store, ctx, stop) = (plan.clone(), store.clone(), ctx.clone(), stop.clone());
        let selection = selection.clone();
        threads.push(std::thread::spawn(move || {
            let mut wk = Worker::default();
            let mut slots: Vec<Slot> = Vec::new();
            let (mut kept_genes, mut kept_values) = (Vec::new(), Vec::new());
            for (k, batch) in plan.iter().enumerate().skip(w).step_by(workers) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                slots.resize_with(slots.len().max(batch.len()), Slot::default);
                // data.gene_selection: the genes this batch keeps.
                let keep = selection.as_ref().and_then(|s| {
                    s.select(batch.iter().map(|&i| store.row(i as usize)), ctx.epoch, k)
                });
                for (slot, &i) in slots.iter_mut().zip(batch) {
                    let (g, v) = store.row(i as usize);
                    let cell = store.cells[i as usize];
                    match &keep {
                        Some(keep) => {
                            super::gene_selection::filter_cell(
                                keep,
                                g,
                                v,
                                &mut kept_genes,
                                &mut kept_values,
                            );
                            wk.tokenize(&ctx, slot, cell, &kept_genes, &kept_values);
                        }
                        None => wk.tokenize(&ctx, slot, cell, g, v),
                    }
                }
                let slots = &slots[..batch.len()];
                let out = wk
                    .build(&ctx, slots)
                    .map(|b| (slots.iter().map(|s| s.cell).collect(), b));
                if tx.send(out).is_err() {
                    break;
                }
            }
        }));
    }
    (receivers, threads)
}

/// Asks glibc's allocator, once per process, to keep memory freed by the
/// consumer of batches for the next batches instead of giving it back to
/// the operating system.
///
/// Every batch's tensors are freshly allocated (a few MB), and freed when
/// the training step drops them. By default glibc serves such sizes with
/// `mmap` at first and trims a thread heap's free top beyond a few MB, so
/// batch after batch the memory goes back to the kernel and comes back as
/// newly zeroed pages, a page fault per 4 KiB. With a 32 MiB mmap
/// threshold and a 64 MiB trim threshold the same memory is reused
/// instead; the process keeps at most that much freed memory per heap.
fn keep_freed_batch_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only adjusts allocator parameters; it is
            // thread-safe and takes plain integers.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
            }
        });
    }
}

/// Bytes [`reserve_thread_heap`] extends a loader thread's heap by: about
/// a thread's share of a 10,000-cell shuffle buffer of tokenized cells plus
/// a few batches. Below the 32 MiB mmap threshold, so the block comes from
/// the heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THREAD_HEAP_RESERVE: usize = 24 << 20;

/// Extends the calling thread's glibc heap once, by allocating and freeing
/// a block of [`THREAD_HEAP_RESERVE`] bytes.
///
/// glibc grows a thread's heap only as far as each request needs, with one
/// `mprotect` system call per growth. Filling a shuffle buffer allocates
/// thousands of tokenized cells of a few KB each, so a streaming epoch made
/// about 13,000 such calls, one per page. After this one large growth the
/// heap's free top serves them without a system call. The block is never
/// written, so it costs address space, not memory, and the heap keeps it
/// (its free top stays below the trim threshold that
/// [`keep_freed_batch_memory`] sets).
pub(super) fn reserve_thread_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // black_box: an allocation that is freed unused may be optimised
        // away.
        let block = Vec::<u8>::with_capacity(THREAD_HEAP_RESERVE);
        drop(std::hint::black_box(block));
    }
}

pub(super) fn epoch_rng(seed: u64, epoch: u64, salt: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(mix(seed ^ salt) ^ epoch))
}

/// Cuts an ordered list of cells into batches, with optional bucketing and
/// `drop_last`.
pub(super) fn plan_batches<T: Copy>(
    order: Vec<T>,
    opts: &LoaderOptions,
    rng: &mut Xoshiro256PlusPlus,
    len: impl Fn(T) -> usize,
) -> Vec<Vec<T>> {
    let bs = opts.batch_size;
    let mut out: Vec<Vec<T>> = Vec::with_capacity(order.len().div_ceil(bs));
    match opts.bucket_window {
        Some(w) if w > 1 => {
            for window in order.chunks(w * bs) {
                let mut cells = window.to_vec();
                cells.sort_by_key(|&c| len(c));
                let mut batches: Vec<Vec<T>> = cells.chunks(bs).map(<[T]>::to_vec).collect();
                // The short batch, if any, stays last so drop_last works.
                let full = if batches.last().is_some_and(|b| b.len() < bs) {
                    batches.len() - 1
                } else {
                    batches.len()
                };
                if opts.shuffle {
                    batches[..full].shuffle(rng);
                    if full < batches.len() {
                        let short = batches.remove(full);
                        batches.push(short);
                    }
                }
                out.extend(batches);
            }
        }
        _ => out.extend(order.chunks(bs).map(<[T]>::to_vec)),
    }
    // Short batches can only come from the last window; keep them last.
    if let Some(pos) = out.iter().position(|b| b.len() < bs)
        && pos + 1 != out.len()
    {
        let short = out.remove(pos);
        out.push(short);
    }
    if opts.drop_last && out.last().is_some_and(|b| b.len() < bs) {
        out.pop();
    }
    out
}

/// A built batch with the corpus indices of its cells, or the error that
/// stopped the epoch.
pub(super) type Loaded = Result<(Vec<usize>, Batch), DataError>;

/// One epoch of batches; see [`DataLoader::epoch`]. Dropping it stops the
/// background threads.
pub struct Batches {
    receivers: Vec<Receiver<Loaded>>,
    next: usize,
    expected: usize,
    done: bool,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// The streaming epoch's shared state (told of each batch received).
    stream: Option<Arc<stream::Shared>>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("next", &self.next)
            .field("expected", &self.expected)
            .finish()
    }
}

impl Batches {
    /// The next batch with the corpus indices of its cells, row by row.
    pub fn next_with_cells(&mut self) -> Option<Result<(Vec<usize>, Batch), DataError>> {
        if self.done || self.receivers.is_empty() {
            return None;
        }
        let k = self.next;
        match self.receivers[k % self.receivers.len()].recv() {
            Ok(r) => {
                self.next += 1;
                if let Some(s) = &self.stream {
                    s.delivered(self.next);
                }
                if r.is_err() {
                    self.done = true;
                }
                Some(r)
            }
            Err(_) => {
                self.done = true;
                (k < self.expected).then(|| {
                    Err(DataError::Loader(format!(
                        "a loader thread stopped after {k} of {} batches",
                        self.expected
                    )))
                })
            }
        }
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with_cells().map(|r| r.map(|(_, b)| b))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.expected.saturating_sub(self.next);
        (left, Some(left))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = &self.stream {
            s.wake_to_stop();
        }
        self.receivers.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
