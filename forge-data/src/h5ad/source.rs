//! The byte source `hdf5-pure` reads an `.h5ad` file through: positioned
//! reads of one open file, which threads share without a common cursor.
//! Small metadata reads are cached by `hdf5-pure` itself (its metadata
//! cache, turned on in [`super::hdf::Hdf::open`]).
//!
//! Positioned reads are what reading a file in ranges needs, locally or,
//! later, remotely. They are Unix's `pread` and Windows' `seek_read`
//! ([`read_exact_at`]); elsewhere a seek and a read under one lock.

use std::fs::File;
use std::io;

use hdf5_pure::{FormatError, Source};

/// A file read by positioned reads.
#[derive(Debug)]
pub(crate) struct PositionedFile {
    pub(crate) file: File,
    pub(crate) len: u64,
}

impl Source for PositionedFile {
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
        read_exact_at(&self.file, buf, offset).map_err(|e| FormatError::Source(e.to_string()))
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
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
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
    fn reads_agree_with_the_file_and_stop_at_its_end() {
        let dir = crate::test_util::Scratch::new("source");
        let path = dir.path("bytes");
        let bytes: Vec<u8> = (0..300_000).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let f = PositionedFile {
            file: File::open(&path).unwrap(),
            len: bytes.len() as u64,
        };
        assert_eq!(f.len(), bytes.len() as u64);
        for (at, len) in [(0, 10), (65_530, 20), (123_457, 100_000), (299_990, 10)] {
            let mut buf = vec![0u8; len];
            f.read_at(at as u64, &mut buf).unwrap();
            assert_eq!(buf, &bytes[at..at + len], "{at}+{len}");
        }
        let mut buf = [0u8; 8];
        assert!(f.read_at(bytes.len() as u64 - 4, &mut buf).is_err());
        assert!(f.read_at(u64::MAX - 2, &mut buf).is_err());
    }
}
