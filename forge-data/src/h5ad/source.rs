//! The byte source `hdf5-pure` reads an `.h5ad` file through: positioned
//! reads, with small reads served from a cache of recently read blocks.
//!
//! Opening a file parses many small pieces of metadata, and reading a
//! string column (the obs names of every cell) visits global-heap objects of
//! a few bytes each, one after the other. `hdf5-pure`'s own file source
//! turns each into a seek and a read system call under a lock; here a small
//! read fetches the 64 KiB block around it once, and the next reads nearby
//! are memory copies. Large reads (dataset payloads) go straight to the
//! file. The cache holds at most [`MAX_BLOCKS`] blocks (2 MiB).
//!
//! Positioned reads are what reading a file in ranges needs, locally or,
//! later, remotely. They are Unix's `pread` and Windows' `seek_read`
//! ([`read_exact_at`]); elsewhere a seek and a read under one lock.

use std::fs::File;
use std::io;
use std::sync::Mutex;

use hdf5_pure::{FormatError, Source};

/// Bytes per cached block.
const BLOCK: u64 = 64 << 10;

/// Blocks kept; the least recently used one goes first.
const MAX_BLOCKS: usize = 32;

/// Reads of at least this many bytes bypass the cache.
const DIRECT_READ: usize = 16 << 10;

/// A file read by positioned reads, small reads through a block cache.
#[derive(Debug)]
pub(crate) struct CachedFile {
    file: File,
    len: u64,
    blocks: Mutex<Blocks>,
}

#[derive(Debug, Default)]
struct Blocks {
    /// (block index, bytes, last use).
    entries: Vec<(u64, Box<[u8]>, u64)>,
    tick: u64,
}

impl CachedFile {
    /// Reads `file` (opened for reading), `len` bytes long.
    pub(crate) fn new(file: File, len: u64) -> CachedFile {
        CachedFile {
            file,
            len,
            blocks: Mutex::default(),
        }
    }

    /// Copies from block `index` (read on a miss) the bytes at `within..`
    /// into `out`, returning how many were copied.
    fn copy_from_block(&self, index: u64, within: usize, out: &mut [u8]) -> io::Result<usize> {
        let mut blocks = self
            .blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        blocks.tick += 1;
        let tick = blocks.tick;
        let slot = match blocks.entries.iter().position(|e| e.0 == index) {
            Some(i) => i,
            None => {
                let start = index * BLOCK;
                let size = BLOCK.min(self.len - start) as usize;
                let mut bytes = vec![0u8; size].into_boxed_slice();
                read_exact_at(&self.file, &mut bytes, start)?;
                if blocks.entries.len() == MAX_BLOCKS {
                    let oldest = (0..MAX_BLOCKS)
                        .min_by_key(|&i| blocks.entries[i].2)
                        .unwrap_or(0);
                    blocks.entries.swap_remove(oldest);
                }
                blocks.entries.push((index, bytes, tick));
                blocks.entries.len() - 1
            }
        };
        let entry = &mut blocks.entries[slot];
        entry.2 = tick;
        let n = out.len().min(entry.1.len() - within);
        out[..n].copy_from_slice(&entry.1[within..within + n]);
        Ok(n)
    }
}

impl Source for CachedFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), FormatError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(FormatError::OffsetOverflow {
                offset,
                length: buf.len() as u64,
            })?;
        if end > self.len {
            return Err(FormatError::UnexpectedEof {
                expected: usize::try_from(end).unwrap_or(usize::MAX),
                available: usize::try_from(self.len).unwrap_or(usize::MAX),
            });
        }
        let failed = |e: io::Error| FormatError::Source(e.to_string());
        if buf.len() >= DIRECT_READ {
            return read_exact_at(&self.file, buf, offset).map_err(failed);
        }
        let mut at = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let within = (at % BLOCK) as usize;
            let n = self
                .copy_from_block(at / BLOCK, within, rest)
                .map_err(failed)?;
            rest = &mut rest[n..];
            at += n as u64;
        }
        Ok(())
    }
}

/// Fills `buf` from `file` at `offset` without moving a shared cursor
/// (threads read one file at once).
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Fills `buf` from `file` at `offset` (Windows' `seek_read` reads at an
/// offset and may return fewer bytes than asked).
#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` from `file` at `offset`: a seek and a read, under one lock
/// for every file, where the platform has no positioned read.
#[cfg(not(any(unix, windows)))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    static LOCK: Mutex<()> = Mutex::new(());
    let _held = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_agree_with_the_file_across_blocks_and_evictions() {
        let path = std::env::temp_dir().join(format!("forge-source-{}", std::process::id()));
        let bytes: Vec<u8> = (0..(BLOCK as usize * 40 + 123))
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let f = CachedFile::new(File::open(&path).unwrap(), bytes.len() as u64);
        assert_eq!(f.len(), bytes.len() as u64);
        let mut state = 12345u64;
        for _ in 0..3000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (state >> 40) as usize % (DIRECT_READ + 100);
            let at = (state >> 8) as usize % (bytes.len() - len);
            let mut buf = vec![0u8; len];
            f.read_at(at as u64, &mut buf).unwrap();
            assert_eq!(buf, &bytes[at..at + len], "{at}+{len}");
        }
        let mut buf = [0u8; 8];
        assert!(f.read_at(bytes.len() as u64 - 4, &mut buf).is_err());
        assert!(f.read_at(u64::MAX - 2, &mut buf).is_err());
        std::fs::remove_file(&path).ok();
    }
}
