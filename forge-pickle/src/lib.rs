//! A safe reader of Python pickles that hold plain data.
//!
//! Python's `pickle` is a small stack machine; some of its opcodes import
//! and call arbitrary Python objects (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`,
//! `BUILD`, `INST`, `OBJ`, `NEWOBJ`, ...). A pickle downloaded from the
//! internet (Geneformer ships its gene dictionaries as pickles) must never
//! run code, so this crate runs only the opcodes that build plain data:
//! `None`, `bool`, `int` (within `i64`), `float`, `str`, `bytes`/
//! `bytearray`, `list`, `tuple`, `dict`, `set`/`frozenset`, plus the memo
//! (`PUT`/`GET`/`MEMOIZE`), `MARK`, `POP`, `DUP`, `PROTO` and `FRAME`, of
//! protocols 0 to 5. Every other opcode is refused with an error naming the
//! opcode and its byte offset.
//!
//! It never allocates without bound: a declared length (`BINUNICODE`,
//! `BINBYTES8`, `FRAME`, `LONG4`, ...) is checked against the bytes that
//! remain before anything is allocated, and nesting depth, memo size and
//! the size of the decoded value (memo references can share one object many
//! times) are bounded by [`Limits`]. Truncated or malformed input gives an
//! error, never a panic.
//!
//! - [`loads`] / [`loads_with_limits`]: bytes -> [`Value`].
//! - [`dict_file`]: the typed readers of gene dictionaries (`str -> float`
//!   medians, `str -> int` tokens) from a pickle or JSON file, by content.
//!
//! One exception, recognised by structure and never executed: NumPy
//! scalars (`numpy.float64`, `numpy.int16`, ... as NumPy pickles them at
//! protocol 3+), because Geneformer's published dictionaries hold them;
//! they decode to [`Value::Int`] / [`Value::Float`] / [`Value::Bool`].
//!
//! What this crate is not: a general unpickler. It does not build class
//! instances or NumPy arrays; a pickle holding them is refused (save such
//! data as JSON).

mod decode;
pub mod dict_file;

pub use decode::{Limits, PickleError, loads, loads_with_limits};
pub use dict_file::{DictFileError, read_str_f64_map, read_str_i64_map};

/// A decoded plain-data pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Python `None`.
    None,
    /// Python `bool`.
    Bool(bool),
    /// Python `int` within `i64` (larger ones are refused).
    Int(i64),
    /// Python `float`.
    Float(f64),
    /// Python `str`.
    Str(String),
    /// Python `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// Python `list`.
    List(Vec<Value>),
    /// Python `tuple`.
    Tuple(Vec<Value>),
    /// Python `dict`, entries in insertion order. A key set twice keeps
    /// both entries here; the typed readers refuse it.
    Dict(Vec<(Value, Value)>),
    /// Python `set` or `frozenset`, in pickled order.
    Set(Vec<Value>),
}

impl Value {
    /// The Python type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
        }
    }
}

#[cfg(test)]
mod tests;
