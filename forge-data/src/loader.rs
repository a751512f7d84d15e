//! From a [`CellDataset`] to a stream of padded [`Batch`]es: the
//! multi-threaded loader.
//!
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
//!
//! Length bucketing ([`LoaderOptions::bucket_window`], off by default to
//! match scModelForge): cells are taken `window` batches at a time, sorted by
//! their number of stored genes, cut into batches and the batches of the
//! window shuffled, so cells of similar length share a batch and padding
//! shrinks. It changes which cells meet in a batch, not which cells are
//! seen.
//!
//! What this module is not: it does not train or move batches to a device.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::seq::SliceRandom;

use forge_core::batch::Batch;

pub use super::pipeline::{CellDataset, DataPipeline};
pub use super::plan::{LoaderOptions, StreamingOptions};

use super::DataError;
use super::plan::plan_batches;
use super::seed::epoch_rng;
use super::stream;
use super::worker::{Ctx, Loaded, Slot, Worker};

impl CellDataset {
    /// A loader over the dataset (reads the cells now unless streaming).
    pub fn loader(&self, opts: LoaderOptions) -> Result<DataLoader, DataError> {
        DataLoader::new(self.clone(), opts)
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
        if let Some(shard) = opts.shard {
            shard.sampler(opts.shuffle, opts.seed)?;
            if opts.streaming.is_some() || opts.sampler.is_some() {
                return Err(DataError::setting(
                    "data.streaming / training.sampling",
                    format!(
                        "sharding over {} ranks works on cells held in memory with the plain \
                         (random) order; set data.streaming: false and \
                         training.sampling.strategy: random, or train in one process",
                        shard.world_size
                    ),
                ));
            }
        }
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
                if ds.contains(cell) {
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

    /// Cells per epoch (this rank's share when sharded, padding included).
    pub fn n_cells(&self) -> usize {
        match &self.opts.shard {
            Some(shard) => shard.share(self.ds.len()),
            None => self.ds.len(),
        }
    }

    /// Batches per epoch.
    pub fn n_batches(&self) -> usize {
        let (n, b) = (self.n_cells(), self.opts.batch_size);
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
        if let Some(shard) = &self.opts.shard {
            // Checked in `new`.
            if let Ok(s) = shard.sampler(self.opts.shuffle, self.opts.seed) {
                order = s
                    .indices(store.cells.len(), epoch)
                    .into_iter()
                    .map(|i| i as u32)
                    .collect();
            }
        } else if let Some(sampler) = &self.opts.sampler {
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
