//! One streaming epoch, worked by all the loader's threads together.
//!
//! The epoch is cut into read windows: at most [`READ_WINDOW`] consecutive
//! cells of a block, blocks in a (seeded) shuffled order. A thread takes
//! the next window, reads it and tokenizes its cells while they are still
//! in the CPU's cache; or it takes the next planned batch and masks and
//! collates it ([`Worker::build`]). Building comes first when a batch is
//! ready, so memory stays bounded and the consumer is served early; at the
//! start of the epoch every thread reads, so the shuffle buffer fills in
//! parallel.
//!
//! Windows are fed into the [`ShuffleBuffer`] in window order, whichever
//! thread read them and when, and the buffer draws its cells with its own
//! seeded generators. Which cells meet in which batch, and in what order
//! the batches come, therefore does not depend on thread scheduling; nor
//! does masking (one generator per cell).
//!
//! Batch `k` is sent on channel `k % N` (the consumer reads them in
//! turn), and no thread starts batch `k` before the consumer has received
//! batch `k - N`: each channel holds at most one batch, N being the
//! number of batches allowed ahead of the consumer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::DataError;
use super::pipeline::CellDataset;
use super::plan::{LoaderOptions, StreamingOptions, plan_batches};
use super::seed::epoch_rng;
use super::worker::{Ctx, Loaded, Slot, Worker};

/// A slot as it travels between threads and queues: boxed, so that moving
/// it moves a pointer.
type Cell = Box<Slot>;

/// Most cells read from disk at once. Each read through hdf5-pure has a
/// fixed cost (locating the chunks, copying them out); measured on the
/// benchmark, windows of 32 cells ran at a third of the speed of 256, and
/// 1,024 were no faster than 256.
const READ_WINDOW: usize = 256;

/// Loader seed at which a test makes the thread reading the second window
/// panic.
#[cfg(test)]
pub(super) const PANIC_AT_SECOND_WINDOW: u64 = 0xbad_5eed;

/// `(file, first cell, end)` of a read window, cells local to the file.
type Window = (usize, usize, usize);

/// The shared state of a streaming epoch; [`super::Batches`] holds it to
/// report progress and to stop the threads.
pub(super) struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// The epoch's stop flag, set by the consumer.
    stop: Arc<AtomicBool>,
}

impl Shared {
    /// The consumer has received `n` batches.
    pub fn delivered(&self, n: usize) {
        self.lock().delivered = n;
        self.wake.notify_all();
    }

    /// Wakes every waiting thread, after the stop flag was set, so that
    /// each stops at its next step.
    pub fn wake_to_stop(&self) {
        // Taking the lock orders the flag before any thread's next wait.
        drop(self.lock());
        self.wake.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left the state as
        // it was at some step; the epoch ends with an error either way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct State {
    windows: Vec<Window>,
    /// The next window to hand out.
    next_window: usize,
    /// Windows fed into the shuffle buffer (all those before it).
    fed: usize,
    /// Windows read but waiting for an earlier one to be fed first.
    read: BTreeMap<usize, Vec<Cell>>,
    shuffle: ShuffleBuffer,
    /// Planned batches no thread has taken yet.
    ready: VecDeque<Vec<Cell>>,
    /// Index of the next batch to hand out.
    next_batch: usize,
    /// Batches the consumer has received.
    delivered: usize,
    /// Batches that may be handed out ahead of the consumer.
    ahead: usize,
    /// Most windows handed out but not yet fed.
    windows_ahead: usize,
    /// The error that ends the epoch, until a thread sends it.
    error: Option<DataError>,
    /// The epoch ended (error sent, or nothing left to do).
    over: bool,
    /// Slots of built batches, for reuse.
    spare: Vec<Cell>,
}

/// A thread's next piece of work.
enum Task {
    Read(usize, Window, Vec<Cell>),
    Build(usize, Vec<Cell>),
    Fail(usize, DataError),
}

impl State {
    /// The next task, `None` once the epoch is over for this thread, or
    /// `Some(None)` when it must wait.
    fn next_task(&mut self) -> Option<Option<Task>> {
        if self.over {
            return None;
        }
        if let Some(e) = self.error.take() {
            self.over = true;
            let k = self.next_batch;
            self.next_batch += 1;
            return Some(Some(Task::Fail(k, e)));
        }
        if !self.ready.is_empty() && self.next_batch < self.delivered + self.ahead {
            let k = self.next_batch;
            self.next_batch += 1;
            let batch = self.ready.pop_front().unwrap_or_default();
            return Some(Some(Task::Build(k, batch)));
        }
        if self.next_window < self.windows.len()
            && self.next_window - self.fed < self.windows_ahead
            && self.ready.len() < self.ahead
        {
            let w = self.next_window;
            self.next_window += 1;
            let (_, start, end) = self.windows[w];
            let n = (end - start).min(self.spare.len());
            let slots = self.spare.split_off(self.spare.len() - n);
            return Some(Some(Task::Read(w, self.windows[w], slots)));
        }
        if self.fed == self.windows.len() && self.ready.is_empty() {
            // Every batch was handed out: nothing left for this thread.
            return None;
        }
        Some(None)
    }

    /// Ends the epoch with `e`, unless it has already ended or failed
    /// (then the first error stands).
    fn fail(&mut self, e: DataError) {
        if !self.over && self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Window `w` was read into `slots`: feeds it, and every window read
    /// after it that it held back, into the shuffle buffer.
    fn window_read(&mut self, w: usize, slots: Vec<Cell>) {
        self.read.insert(w, slots);
        while let Some(slots) = self.read.remove(&self.fed) {
            for slot in slots {
                self.shuffle.push(slot, &mut self.ready);
            }
            self.fed += 1;
            if self.fed == self.windows.len() {
                self.shuffle.finish(&mut self.ready);
            }
        }
    }
}

/// The streaming shuffle, over tokenized cells: cells enter in file order;
/// once `capacity` are held, each new cell takes the place of a random
/// one, which leaves. Leaving cells are cut into batches (with length
/// bucketing when asked), and the cells left at the end leave in a random
/// order.
struct ShuffleBuffer {
    opts: LoaderOptions,
    capacity: usize,
    /// Cells per batch planning: one batch, or a bucketing window.
    window: usize,
    rng: Xoshiro256PlusPlus,
    plan_rng: Xoshiro256PlusPlus,
    held: Vec<Cell>,
    pending: Vec<Cell>,
}

impl ShuffleBuffer {
    fn push(&mut self, slot: Cell, out: &mut VecDeque<Vec<Cell>>) {
        let leaving = if !self.opts.shuffle {
            slot
        } else if self.held.len() < self.capacity {
            self.held.push(slot);
            return;
        } else {
            let j = self.rng.gen_range(0..self.held.len());
            std::mem::replace(&mut self.held[j], slot)
        };
        self.pending.push(leaving);
        if self.pending.len() == self.window {
            self.flush(false, out);
        }
    }

    fn finish(&mut self, out: &mut VecDeque<Vec<Cell>>) {
        let mut held = std::mem::take(&mut self.held);
        held.shuffle(&mut self.rng);
        for slot in held {
            self.pending.push(slot);
            if self.pending.len() == self.window {
                self.flush(false, out);
            }
        }
        self.flush(true, out);
    }

    /// Plans the pending cells into batches (the last ones of the epoch
    /// when `last`, for `drop_last`).
    fn flush(&mut self, last: bool, out: &mut VecDeque<Vec<Cell>>) {
        if self.pending.is_empty() {
            return;
        }
        let cells = std::mem::take(&mut self.pending);
        let mut opts = self.opts.clone();
        opts.drop_last = last && self.opts.drop_last;
        let idx: Vec<usize> = (0..cells.len()).collect();
        let plan = plan_batches(idx, &opts, &mut self.plan_rng, |i| cells[i].stored);
        let mut cells: Vec<Option<Cell>> = cells.into_iter().map(Some).collect();
        for batch in plan {
            out.push_back(batch.iter().filter_map(|&i| cells[i].take()).collect());
        }
    }
}

/// Starts the threads of streaming epoch `epoch` of `ds`: `workers`
/// threads, batches sent on `ahead` channels, stopping once `stop` is set
/// (and [`Shared::wake_to_stop`] called).
pub(super) fn start(
    ds: &CellDataset,
    opts: &LoaderOptions,
    streaming: StreamingOptions,
    ctx: Arc<Ctx>,
    workers: usize,
    ahead: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Shared>, Vec<Receiver<Loaded>>, Vec<JoinHandle<()>>) {
    let corpus = &ctx.inner.corpus;
    let mut blocks = Vec::new();
    for f in 0..corpus.n_files() {
        let n = corpus.file_range(f).len();
        let mut start = 0;
        while start < n {
            let end = (start + streaming.chunk_size).min(n);
            blocks.push((f, start, end));
            start = end;
        }
    }
    let mut rng = epoch_rng(opts.seed, ctx.epoch, 0x57ea);
    if opts.shuffle {
        blocks.shuffle(&mut rng);
    }
    let windows: Vec<Window> = blocks
        .into_iter()
        .flat_map(|(f, start, end)| {
            (start..end)
                .step_by(READ_WINDOW)
                .map(move |s| (f, s, (s + READ_WINDOW).min(end)))
        })
        .collect();
    let bs = opts.batch_size;
    let shuffle = ShuffleBuffer {
        opts: opts.clone(),
        capacity: streaming.shuffle_buffer,
        window: bs * opts.bucket_window.filter(|&w| w > 1).unwrap_or(1),
        rng,
        plan_rng: epoch_rng(opts.seed, ctx.epoch, 0xb0c7),
        held: Vec::with_capacity(streaming.shuffle_buffer.min(1 << 20)),
        pending: Vec::new(),
    };
    let mut state = State {
        windows,
        next_window: 0,
        fed: 0,
        read: BTreeMap::new(),
        shuffle,
        ready: VecDeque::new(),
        next_batch: 0,
        delivered: 0,
        ahead,
        windows_ahead: 2 * workers,
        error: None,
        over: false,
        spare: Vec::new(),
    };
    if state.windows.is_empty() {
        state.shuffle.finish(&mut state.ready);
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        wake: Condvar::new(),
        stop,
    });
    let (senders, receivers): (Vec<SyncSender<Loaded>>, Vec<Receiver<Loaded>>) =
        (0..ahead).map(|_| sync_channel(1)).unzip();
    let threads = (0..workers)
        .map(|_| {
            let (shared, ctx, senders, ds) =
                (shared.clone(), ctx.clone(), senders.clone(), ds.clone());
            std::thread::spawn(move || work(&shared, &ctx, &ds, &senders))
        })
        .collect();
    (shared, receivers, threads)
}

/// One thread of the epoch: takes tasks until none is left.
fn work(shared: &Shared, ctx: &Ctx, ds: &CellDataset, senders: &[SyncSender<Loaded>]) {
    let _bail = Bail(shared);
    let mut wk = Worker::default();
    let mut state = shared.lock();
    while let Some(task) = wait_for_task(shared, state) {
        state = match task {
            Task::Read(w, window, spare) => {
                #[cfg(test)]
                if ctx.seed == PANIC_AT_SECOND_WINDOW && w == 1 {
                    panic!("a panic injected by a test");
                }
                let read = read_window(ctx, ds, window, spare, &mut wk);
                let mut state = shared.lock();
                match read {
                    Ok(slots) => state.window_read(w, slots),
                    Err(e) => state.fail(e),
                }
                shared.wake.notify_all();
                state
            }
            Task::Build(k, slots) => {
                let built = wk.build(ctx, &slots).map(|b| {
                    let cells = slots.iter().map(|s| s.cell).collect();
                    (cells, b)
                });
                let failed = built.is_err();
                let sent = senders[k % senders.len()].send(built).is_ok();
                let mut state = shared.lock();
                state.spare.extend(slots);
                if failed || !sent {
                    // The consumer stops at an error, or is gone.
                    state.over = true;
                    shared.wake.notify_all();
                }
                state
            }
            Task::Fail(k, e) => {
                let _ = senders[k % senders.len()].send(Err(e));
                return;
            }
        };
    }
}

/// Ends the epoch with an error when its thread panics (a bug): the task
/// it held would never finish, and the other threads would wait for it.
/// One of them sends the error; with none left, the consumer sees the
/// channels close.
struct Bail<'a>(&'a Shared);

impl Drop for Bail<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().fail(DataError::Loader(
                "a loader thread failed unexpectedly while reading or batching cells".into(),
            ));
            self.0.wake.notify_all();
        }
    }
}

/// Waits (releasing the lock meanwhile) until `state` has a task for this
/// thread, and takes it; `None` once the epoch is over or stopped.
fn wait_for_task(shared: &Shared, mut state: MutexGuard<'_, State>) -> Option<Task> {
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        match state.next_task() {
            None => {
                shared.wake.notify_all();
                return None;
            }
            Some(Some(task)) => {
                if matches!(task, Task::Fail(..)) {
                    shared.wake.notify_all();
                }
                return Some(task);
            }
            Some(None) => state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Reads window `(file, start, end)` and tokenizes its cells of the
/// dataset into slots (reusing `spare`), in order.
fn read_window(
    ctx: &Ctx,
    ds: &CellDataset,
    (file, start, end): Window,
    mut spare: Vec<Cell>,
    wk: &mut Worker,
) -> Result<Vec<Cell>, DataError> {
    let corpus = &ctx.inner.corpus;
    let chunk = corpus.read_chunk(file, start, end)?;
    let offset = corpus.file_range(file).start + start;
    let mut out = Vec::with_capacity(chunk.n_cells());
    for i in 0..chunk.n_cells() {
        let cell = offset + i;
        if !ds.contains(cell) {
            continue;
        }
        let (cols, vals) = chunk.row(i);
        let mut slot = spare.pop().unwrap_or_default();
        wk.tokenize_stored(ctx, &mut slot, (cell, file), cols, vals);
        out.push(slot);
    }
    Ok(out)
}
