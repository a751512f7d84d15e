//! TensorBoard event files, written by forge itself (no TensorFlow, no
//! protobuf library): `logger: tensorboard` puts scalars (loss, learning
//! rate, gradient norm, assessment metrics) where TensorBoard and any
//! reader of its format find them.
//!
//! The format is TensorFlow's TFRecord framing around `tensorflow.Event`
//! protocol buffers:
//! - each record is `u64 length (LE)`, `u32 masked CRC-32C of the length`,
//!   the payload, `u32 masked CRC-32C of the payload`;
//! - the first record is an `Event` with `file_version = "brain.Event:2"`;
//! - every other record is an `Event { wall_time, step, summary }` whose
//!   `Summary` holds one `Value { tag, simple_value }` per scalar.
//!
//! Files are named `events.out.tfevents.<unix seconds>.<host>.<pid>.0`, as
//! PyTorch's `SummaryWriter` names them, inside the run folder that
//! Lightning's `TensorBoardLogger` uses: `<log_dir>/<run_name or
//! "default">/version_<N>` with the first free `N` ([`next_version_dir`]).
//!
//! What this module is not: a general protobuf encoder, or a writer of
//! histograms, images or graphs.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use forge_core::error::{ForgeError, Result};

/// The folder of a new run: `<log_dir>/<name>/version_<N>`, `N` one past
/// the highest existing `version_*` folder (0 for the first run), as
/// Lightning numbers its logger versions. The folder is not created.
pub fn next_version_dir(log_dir: &Path, name: &str) -> PathBuf {
    let base = log_dir.join(name);
    let next = std::fs::read_dir(&base)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("version_"))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .max()
        .map_or(0, |v| v + 1);
    base.join(format!("version_{next}"))
}

/// An open TensorBoard event file, appended to record by record and flushed
/// after each, so a crash keeps everything written so far.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` (and its parents) and a new event file in it, starting
    /// with the file-version record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| ForgeError::io(dir, e))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let host = hostname();
        let path = dir.join(format!(
            "events.out.tfevents.{now:010}.{host}.{}.0",
            std::process::id()
        ));
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| ForgeError::io(&path, e))?;
        let mut writer = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        put_bytes(&mut event, 3, b"brain.Event:2");
        writer.write_record(&event)?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event at `step` holding every `(tag, value)` scalar.
    /// Non-finite values are written as they are (TensorBoard shows them).
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            put_float(&mut v, 2, *value as f32);
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        put_varint_field(&mut event, 2, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.write_record(&event)
    }

    fn write_record(&mut self, payload: &[u8]) -> Result<()> {
        let len = (payload.len() as u64).to_le_bytes();
        let mut rec = Vec::with_capacity(payload.len() + 16);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        rec.extend_from_slice(payload);
        rec.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
        self.out
            .write_all(&rec)
            .and_then(|_| self.out.flush())
            .map_err(|e| ForgeError::io(&self.path, e))
    }
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The host name for the file name: `/etc/hostname` or `$HOSTNAME`, kept
/// to characters safe in a file name; `localhost` when neither is known.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}

// --- protobuf wire format (only what Event/Summary need) -------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, 0);
    put_varint(out, v);
}

fn put_double(out: &mut Vec<u8>, field: u32, v: f64) {
    put_key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_float(out: &mut Vec<u8>, field: u32, v: f32) {
    put_key(out, field, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

// --- CRC-32C (Castagnoli), as TFRecord masks it ----------------------------

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-32C of `bytes`.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's masked CRC: rotate right by 15 bits, add a constant.
fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // RFC 3720 (iSCSI) B.4 and the usual "123456789" check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_and_fields_encode_as_protobuf_does() {
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
        let mut v = Vec::new();
        put_varint_field(&mut v, 2, 1);
        assert_eq!(v, [0x10, 0x01]);
        let mut v = Vec::new();
        put_bytes(&mut v, 1, b"ab");
        assert_eq!(v, [0x0A, 2, b'a', b'b']);
        let mut v = Vec::new();
        put_float(&mut v, 2, 1.0);
        assert_eq!(v, [0x15, 0, 0, 0x80, 0x3F]);
    }

    #[test]
    fn records_are_framed_and_versions_count_up() {
        let dir = std::env::temp_dir().join(format!("forge-tb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = next_version_dir(&dir, "run");
        assert_eq!(first, dir.join("run/version_0"));
        let mut w = EventWriter::create(&first).unwrap();
        w.scalars(3, &[("train/loss", 1.5)]).unwrap();
        w.scalars(4, &[]).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        // Walk the records: two of them, each with valid checksums.
        let mut at = 0;
        let mut payloads = Vec::new();
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(len_bytes));
            let payload = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(payload));
            payloads.push(payload.to_vec());
            at += 16 + len;
        }
        assert_eq!(payloads.len(), 2);
        assert!(payloads[0].ends_with(b"brain.Event:2"));
        assert!(payloads[1].windows(10).any(|w| w == b"train/loss"));
        assert!(
            w.path()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("events.out.tfevents.")
        );
        assert_eq!(next_version_dir(&dir, "run"), dir.join("run/version_1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
