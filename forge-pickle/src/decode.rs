//! The pickle machine: plain-data opcodes only, bounded everywhere.
//!
//! Objects live in an arena while the pickle runs, so that memo references
//! share one object exactly as Python does (a list memoized when empty and
//! filled later by `APPENDS` is seen filled through every reference). At
//! `STOP` the arena is turned into a [`Value`] tree, with the depth and the
//! total number of values bounded (shared objects are copied, so a pickle
//! that references one list from many places cannot blow up memory, and a
//! list that contains itself is refused as too deep).

use std::collections::HashMap;
use std::fmt;

use crate::Value;

/// Bounds on what a pickle may build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of containers (and of open `MARK`s).
    pub max_depth: usize,
    /// Most memo entries.
    pub max_memo: usize,
    /// Most values in the decoded tree (every scalar and container counts
    /// one; a shared object counts once per place it appears).
    pub max_values: usize,
}

impl Default for Limits {
    /// Depth 200, 16 Mi memo entries, 16 Mi values: a gene dictionary of
    /// 60,000 genes needs 120,001 values and depth 1.
    fn default() -> Self {
        Limits {
            max_depth: 200,
            max_memo: 1 << 24,
            max_values: 1 << 24,
        }
    }
}

/// Why a pickle was not read: the byte offset of the opcode at fault and
/// what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Offset of the opcode at fault (for input that ends early: the
    /// offset of the opcode whose argument is missing).
    pub offset: usize,
    /// What was wrong, for a person.
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for PickleError {}

/// Decodes a plain-data pickle with the default [`Limits`].
pub fn loads(data: &[u8]) -> Result<Value, PickleError> {
    loads_with_limits(data, Limits::default())
}

/// Decodes a plain-data pickle. Any opcode that imports or calls Python
/// code is refused, as is trailing data after `STOP`.
pub fn loads_with_limits(data: &[u8], limits: Limits) -> Result<Value, PickleError> {
    Machine {
        data,
        pos: 0,
        op_pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: 0,
        memo: HashMap::new(),
        limits,
    }
    .run()
}

/// The opcodes refused because they import, call or reference outside
/// objects, with their names.
fn refused_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        b'b' => "BUILD",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

enum Node {
    Scalar(Value),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    /// `numpy.core.multiarray.scalar` (or `numpy._core...`), by name only.
    NumpyScalarFn,
    /// `numpy.dtype`, by name only.
    NumpyDtypeFn,
    /// `numpy.dtype(code, False, True)`, byte order set by `BUILD`.
    NumpyDtype {
        code: String,
        order: Option<char>,
    },
}

#[derive(Clone, Copy)]
enum Item {
    Mark,
    Obj(usize),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Item>,
    marks: usize,
    memo: HashMap<u64, usize>,
    limits: Limits,
}

impl<'a> Machine<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.op_pos,
            message: message.into(),
        })
    }

    /// `n` bytes of argument, checked against what remains before anything
    /// is allocated.
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], PickleError> {
        let remaining = self.data.len() - self.pos;
        if n > remaining as u64 {
            return self.err(format!(
                "{what} needs {n} bytes but only {remaining} remain (truncated or corrupt pickle)"
            ));
        }
        let n = n as usize;
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn uint(&mut self, width: usize, what: &str) -> Result<u64, PickleError> {
        let b = self.take(width as u64, what)?;
        let mut v = 0u64;
        for (i, &x) in b.iter().enumerate() {
            v |= (x as u64) << (8 * i);
        }
        Ok(v)
    }

    fn i32_le(&mut self, what: &str) -> Result<i32, PickleError> {
        Ok(self.uint(4, what)? as u32 as i32)
    }

    /// A text argument up to (not including) the next newline.
    fn line(&mut self, what: &str) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => self.err(format!(
                "{what}: its text argument has no end of line (truncated)"
            )),
        }
    }

    fn line_str(&mut self, what: &str) -> Result<&'a str, PickleError> {
        let l = self.line(what)?;
        match std::str::from_utf8(l) {
            Ok(s) => Ok(s),
            Err(_) => self.err(format!("{what}: text argument is not ASCII")),
        }
    }

    fn push_node(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(Item::Obj(self.nodes.len() - 1));
    }

    fn push_scalar(&mut self, v: Value) {
        self.push_node(Node::Scalar(v));
    }

    fn pop_obj(&mut self, what: &str) -> Result<usize, PickleError> {
        match self.stack.pop() {
            Some(Item::Obj(id)) => Ok(id),
            Some(Item::Mark) => {
                self.err(format!("{what} found a MARK where an object was expected"))
            }
            None => self.err(format!("{what} on an empty stack")),
        }
    }

    fn top_obj(&self, what: &str) -> Result<usize, PickleError> {
        match self.stack.last() {
            Some(Item::Obj(id)) => Ok(*id),
            Some(Item::Mark) => {
                self.err(format!("{what} found a MARK where an object was expected"))
            }
            None => self.err(format!("{what} on an empty stack")),
        }
    }

    /// The objects above the topmost MARK, which is removed.
    fn pop_mark(&mut self, what: &str) -> Result<Vec<usize>, PickleError> {
        let Some(k) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else {
            return self.err(format!("{what} without a MARK"));
        };
        let items = self
            .stack
            .drain(k + 1..)
            .map(|i| match i {
                Item::Obj(id) => id,
                Item::Mark => unreachable!("topmost mark found above"),
            })
            .collect();
        self.stack.pop();
        self.marks -= 1;
        Ok(items)
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self.top_obj("PUT")?;
        if !self.memo.contains_key(&key) && self.memo.len() >= self.limits.max_memo {
            return self.err(format!(
                "memo would exceed {} entries",
                self.limits.max_memo
            ));
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(Item::Obj(id));
                Ok(())
            }
            None => self.err(format!("memo key {key} was never stored")),
        }
    }

    fn parse_i64_text(&self, s: &str, what: &str) -> Result<i64, PickleError> {
        match s.trim().parse::<i64>() {
            Ok(v) => Ok(v),
            Err(_)
                if s.trim()
                    .trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    && !s.trim().is_empty() =>
            {
                self.err(format!("{what} {s} is outside the 64-bit integer range"))
            }
            Err(_) => self.err(format!("{what}: {s:?} is not an integer")),
        }
    }

    /// Little-endian two's complement of any width, refused beyond i64.
    fn long_bytes(&self, b: &[u8], what: &str) -> Result<i64, PickleError> {
        if b.is_empty() {
            return Ok(0);
        }
        let negative = b[b.len() - 1] & 0x80 != 0;
        let fill = if negative { 0xFF } else { 0x00 };
        if b.len() > 8 && b[8..].iter().any(|&x| x != fill) {
            return self.err(format!(
                "{what}: integer of {} bytes is outside the 64-bit range",
                b.len()
            ));
        }
        let mut buf = [fill; 8];
        let n = b.len().min(8);
        buf[..n].copy_from_slice(&b[..n]);
        let v = i64::from_le_bytes(buf);
        // The sign of the truncated value must agree with the full one.
        if (v < 0) != negative {
            return self.err(format!(
                "{what}: integer of {} bytes is outside the 64-bit range",
                b.len()
            ));
        }
        Ok(v)
    }

    fn ascii_string(&self, b: &[u8], what: &str) -> Result<Value, PickleError> {
        if !b.is_ascii() {
            return self.err(format!(
                "{what}: a Python 2 byte string with non-ASCII bytes (Python 3 reads it only with an explicit encoding)"
            ));
        }
        Ok(Value::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn utf8(&self, b: &[u8], what: &str) -> Result<Value, PickleError> {
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Value::Str(s.to_owned())),
            Err(e) => self.err(format!("{what}: string is not valid UTF-8 ({e})")),
        }
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            self.op_pos = self.pos;
            if self.pos >= self.data.len() {
                return self.err("pickle ends before its STOP opcode (truncated)");
            }
            let op = self.data[self.pos];
            self.pos += 1;
            if matches!(op, 0x93 | b'c' | b'R' | b'b') && self.numpy_scalar_op(op)?.is_some() {
                continue;
            }
            if let Some(name) = refused_name(op) {
                return self.err(format!(
                    "opcode {name} (0x{op:02x}) is refused: it imports or calls Python objects; \
                     only plain data (dict, list, tuple, set, str, bytes, int, float, bool, None) is read"
                ));
            }
            match op {
                0x80 => {
                    let p = self.uint(1, "PROTO")?;
                    if p > 5 {
                        return self
                            .err(format!("pickle protocol {p} is not supported (0 to 5 are)"));
                    }
                }
                0x95 => {
                    let n = self.uint(8, "FRAME")?;
                    let remaining = (self.data.len() - self.pos) as u64;
                    if n > remaining {
                        return self.err(format!(
                            "FRAME declares {n} bytes but only {remaining} remain (truncated or corrupt pickle)"
                        ));
                    }
                }
                b'.' => return self.stop(),
                b'(' => {
                    if self.marks >= self.limits.max_depth {
                        return self.err(format!(
                            "MARKs nested deeper than {}",
                            self.limits.max_depth
                        ));
                    }
                    self.stack.push(Item::Mark);
                    self.marks += 1;
                }
                b'0' => match self.stack.pop() {
                    Some(Item::Mark) => self.marks -= 1,
                    Some(Item::Obj(_)) => {}
                    None => return self.err("POP on an empty stack"),
                },
                b'1' => {
                    self.pop_mark("POP_MARK")?;
                }
                b'2' => {
                    let id = self.top_obj("DUP")?;
                    self.stack.push(Item::Obj(id));
                }
                b'N' => self.push_scalar(Value::None),
                0x88 => self.push_scalar(Value::Bool(true)),
                0x89 => self.push_scalar(Value::Bool(false)),
                b'I' => {
                    let s = self.line_str("INT")?;
                    let v = match s {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(self.parse_i64_text(s, "INT")?),
                    };
                    self.push_scalar(v);
                }
                b'J' => {
                    let v = self.i32_le("BININT")?;
                    self.push_scalar(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.uint(1, "BININT1")?;
                    self.push_scalar(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2, "BININT2")?;
                    self.push_scalar(Value::Int(v as i64));
                }
                b'L' => {
                    let s = self.line_str("LONG")?;
                    let s = s.strip_suffix('L').unwrap_or(s);
                    let v = self.parse_i64_text(s, "LONG")?;
                    self.push_scalar(Value::Int(v));
                }
                0x8a => {
                    let n = self.uint(1, "LONG1")?;
                    let b = self.take(n, "LONG1")?;
                    let v = self.long_bytes(b, "LONG1")?;
                    self.push_scalar(Value::Int(v));
                }
                0x8b => {
                    let n = self.i32_le("LONG4")?;
                    if n < 0 {
                        return self.err(format!("LONG4 declares a negative length {n}"));
                    }
                    let b = self.take(n as u64, "LONG4")?;
                    let v = self.long_bytes(b, "LONG4")?;
                    self.push_scalar(Value::Int(v));
                }
                b'F' => {
                    let s = self.line_str("FLOAT")?;
                    match s.trim().parse::<f64>() {
                        Ok(v) => self.push_scalar(Value::Float(v)),
                        Err(_) => return self.err(format!("FLOAT: {s:?} is not a number")),
                    }
                }
                b'G' => {
                    let b = self.take(8, "BINFLOAT")?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes taken"));
                    self.push_scalar(Value::Float(v));
                }
                b'S' => {
                    let l = self.line("STRING")?;
                    let v = self.py2_repr_string(l)?;
                    self.push_scalar(v);
                }
                b'T' => {
                    let n = self.i32_le("BINSTRING")?;
                    if n < 0 {
                        return self.err(format!("BINSTRING declares a negative length {n}"));
                    }
                    let b = self.take(n as u64, "BINSTRING")?;
                    let v = self.ascii_string(b, "BINSTRING")?;
                    self.push_scalar(v);
                }
                b'U' => {
                    let n = self.uint(1, "SHORT_BINSTRING")?;
                    let b = self.take(n, "SHORT_BINSTRING")?;
                    let v = self.ascii_string(b, "SHORT_BINSTRING")?;
                    self.push_scalar(v);
                }
                b'V' => {
                    let l = self.line("UNICODE")?;
                    let v = self.raw_unicode_escape(l)?;
                    self.push_scalar(Value::Str(v));
                }
                b'X' => {
                    let n = self.uint(4, "BINUNICODE")?;
                    let b = self.take(n, "BINUNICODE")?;
                    let v = self.utf8(b, "BINUNICODE")?;
                    self.push_scalar(v);
                }
                0x8c => {
                    let n = self.uint(1, "SHORT_BINUNICODE")?;
                    let b = self.take(n, "SHORT_BINUNICODE")?;
                    let v = self.utf8(b, "SHORT_BINUNICODE")?;
                    self.push_scalar(v);
                }
                0x8d => {
                    let n = self.uint(8, "BINUNICODE8")?;
                    let b = self.take(n, "BINUNICODE8")?;
                    let v = self.utf8(b, "BINUNICODE8")?;
                    self.push_scalar(v);
                }
                b'B' => {
                    let n = self.uint(4, "BINBYTES")?;
                    let b = self.take(n, "BINBYTES")?;
                    self.push_scalar(Value::Bytes(b.to_vec()));
                }
                b'C' => {
                    let n = self.uint(1, "SHORT_BINBYTES")?;
                    let b = self.take(n, "SHORT_BINBYTES")?;
                    self.push_scalar(Value::Bytes(b.to_vec()));
                }
                0x8e => {
                    let n = self.uint(8, "BINBYTES8")?;
                    let b = self.take(n, "BINBYTES8")?;
                    self.push_scalar(Value::Bytes(b.to_vec()));
                }
                0x96 => {
                    let n = self.uint(8, "BYTEARRAY8")?;
                    let b = self.take(n, "BYTEARRAY8")?;
                    self.push_scalar(Value::Bytes(b.to_vec()));
                }
                b']' => self.push_node(Node::List(Vec::new())),
                b')' => self.push_node(Node::Tuple(Vec::new())),
                b'}' => self.push_node(Node::Dict(Vec::new())),
                0x8f => self.push_node(Node::Set(Vec::new())),
                b'l' => {
                    let items = self.pop_mark("LIST")?;
                    self.push_node(Node::List(items));
                }
                b't' => {
                    let items = self.pop_mark("TUPLE")?;
                    self.push_node(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = vec![0; n];
                    for slot in items.iter_mut().rev() {
                        *slot = self.pop_obj("TUPLEn")?;
                    }
                    self.push_node(Node::Tuple(items));
                }
                b'd' => {
                    let items = self.pop_mark("DICT")?;
                    let pairs = self.pairs(&items, "DICT")?;
                    self.push_node(Node::Dict(pairs));
                }
                0x91 => {
                    let items = self.pop_mark("FROZENSET")?;
                    self.push_node(Node::Set(items));
                }
                b'a' => {
                    let v = self.pop_obj("APPEND")?;
                    let target = self.top_obj("APPEND")?;
                    self.list_mut(target, "APPEND")?.push(v);
                }
                b'e' => {
                    let items = self.pop_mark("APPENDS")?;
                    let target = self.top_obj("APPENDS")?;
                    self.list_mut(target, "APPENDS")?.extend(items);
                }
                b's' => {
                    let v = self.pop_obj("SETITEM")?;
                    let k = self.pop_obj("SETITEM")?;
                    let target = self.top_obj("SETITEM")?;
                    self.dict_mut(target, "SETITEM")?.push((k, v));
                }
                b'u' => {
                    let items = self.pop_mark("SETITEMS")?;
                    let pairs = self.pairs(&items, "SETITEMS")?;
                    let target = self.top_obj("SETITEMS")?;
                    self.dict_mut(target, "SETITEMS")?.extend(pairs);
                }
                0x90 => {
                    let items = self.pop_mark("ADDITEMS")?;
                    let target = self.top_obj("ADDITEMS")?;
                    match &mut self.nodes[target] {
                        Node::Set(s) => s.extend(items),
                        _ => return self.err("ADDITEMS on something that is not a set"),
                    }
                }
                b'g' => {
                    let s = self.line_str("GET")?;
                    let k = self.parse_i64_text(s, "GET")?;
                    self.memo_get(k as u64)?;
                }
                b'h' => {
                    let k = self.uint(1, "BINGET")?;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.uint(4, "LONG_BINGET")?;
                    self.memo_get(k)?;
                }
                b'p' => {
                    let s = self.line_str("PUT")?;
                    let k = self.parse_i64_text(s, "PUT")?;
                    if k < 0 {
                        return self.err(format!("PUT with a negative memo key {k}"));
                    }
                    self.memo_put(k as u64)?;
                }
                b'q' => {
                    let k = self.uint(1, "BINPUT")?;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.uint(4, "LONG_BINPUT")?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                _ => {
                    return self.err(format!(
                        "unknown opcode 0x{op:02x} (not a pickle, or a corrupt one)"
                    ));
                }
            }
        }
    }

    /// The one exception to "no globals": NumPy scalars as NumPy pickles
    /// them (`scalar(dtype(code, False, True) + BUILD(state), bytes)`),
    /// recognised by structure and decoded from their bytes; nothing is
    /// imported or called. `Ok(None)` means "not this pattern": the opcode
    /// is then refused as usual.
    fn numpy_scalar_op(&mut self, op: u8) -> Result<Option<()>, PickleError> {
        const CODES: [&str; 12] = [
            "f8", "f4", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "b1",
        ];
        let str_at = |m: &Self, id: usize| match &m.nodes[id] {
            Node::Scalar(Value::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let top2 = |m: &Self| match m.stack.as_slice() {
            [.., Item::Obj(a), Item::Obj(b)] => Some((*a, *b)),
            _ => None,
        };
        match op {
            0x93 | b'c' => {
                let (module, name, consumed) = if op == 0x93 {
                    let Some((a, b)) = top2(self) else {
                        return Ok(None);
                    };
                    match (str_at(self, a), str_at(self, b)) {
                        (Some(m), Some(n)) => (m, n, 2),
                        _ => return Ok(None),
                    }
                } else {
                    let mut lines = self.data[self.pos..].split(|&b| b == b'\n');
                    let (Some(m), Some(n)) = (lines.next(), lines.next()) else {
                        return Ok(None);
                    };
                    if self.data[self.pos..]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count()
                        < 2
                    {
                        return Ok(None);
                    }
                    (
                        String::from_utf8_lossy(m).into_owned(),
                        String::from_utf8_lossy(n).into_owned(),
                        0,
                    )
                };
                let node = match (module.as_str(), name.as_str()) {
                    ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => {
                        Node::NumpyScalarFn
                    }
                    ("numpy", "dtype") => Node::NumpyDtypeFn,
                    _ => return Ok(None),
                };
                if op == b'c' {
                    self.line("GLOBAL")?;
                    self.line("GLOBAL")?;
                }
                for _ in 0..consumed {
                    self.stack.pop();
                }
                self.push_node(node);
                Ok(Some(()))
            }
            b'R' => {
                let Some((f, args)) = top2(self) else {
                    return Ok(None);
                };
                let Node::Tuple(a) = &self.nodes[args] else {
                    return Ok(None);
                };
                let a = a.clone();
                let node = match (&self.nodes[f], a.as_slice()) {
                    (Node::NumpyDtypeFn, [code, align, copy]) => {
                        let code = match str_at(self, *code) {
                            Some(c) if CODES.contains(&c.as_str()) => c,
                            _ => return Ok(None),
                        };
                        match (&self.nodes[*align], &self.nodes[*copy]) {
                            (Node::Scalar(Value::Bool(false)), Node::Scalar(Value::Bool(true))) => {
                            }
                            _ => return Ok(None),
                        }
                        Node::NumpyDtype { code, order: None }
                    }
                    (Node::NumpyScalarFn, [dtype, raw]) => {
                        let (Node::NumpyDtype { code, order }, Node::Scalar(Value::Bytes(b))) =
                            (&self.nodes[*dtype], &self.nodes[*raw])
                        else {
                            return Ok(None);
                        };
                        match numpy_value(code, order.unwrap_or('<'), b) {
                            Some(v) => Node::Scalar(v),
                            None => {
                                return self.err(format!(
                                    "a NumPy scalar of dtype {code} with {} bytes (not a valid value)",
                                    b.len()
                                ));
                            }
                        }
                    }
                    _ => return Ok(None),
                };
                self.stack.pop();
                self.stack.pop();
                self.push_node(node);
                Ok(Some(()))
            }
            _ => {
                // BUILD on a dtype: the state tuple's second item is the
                // byte order.
                let Some((target, state)) = top2(self) else {
                    return Ok(None);
                };
                let order = match &self.nodes[state] {
                    Node::Tuple(t) if t.len() >= 2 => match str_at(self, t[1]).as_deref() {
                        Some(o @ ("<" | ">" | "|" | "=")) => o.chars().next(),
                        _ => return Ok(None),
                    },
                    _ => return Ok(None),
                };
                match &mut self.nodes[target] {
                    Node::NumpyDtype { order: o, .. } => *o = order,
                    _ => return Ok(None),
                }
                self.stack.pop();
                Ok(Some(()))
            }
        }
    }

    fn pairs(&self, items: &[usize], what: &str) -> Result<Vec<(usize, usize)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err(format!(
                "{what} with an odd number ({}) of keys and values",
                items.len()
            ));
        }
        Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    fn list_mut(&mut self, id: usize, what: &str) -> Result<&mut Vec<usize>, PickleError> {
        if !matches!(self.nodes[id], Node::List(_)) {
            return self.err(format!("{what} on something that is not a list"));
        }
        match &mut self.nodes[id] {
            Node::List(l) => Ok(l),
            _ => unreachable!("checked above"),
        }
    }

    fn dict_mut(&mut self, id: usize, what: &str) -> Result<&mut Vec<(usize, usize)>, PickleError> {
        if !matches!(self.nodes[id], Node::Dict(_)) {
            return self.err(format!("{what} on something that is not a dict"));
        }
        match &mut self.nodes[id] {
            Node::Dict(d) => Ok(d),
            _ => unreachable!("checked above"),
        }
    }

    fn stop(mut self) -> Result<Value, PickleError> {
        if self.marks > 0 {
            return self.err("STOP with an unclosed MARK");
        }
        let root = self.pop_obj("STOP")?;
        if !self.stack.is_empty() {
            return self.err(format!(
                "STOP leaves {} extra objects on the stack",
                self.stack.len()
            ));
        }
        if self.pos != self.data.len() {
            return self.err(format!(
                "{} bytes of trailing data after STOP",
                self.data.len() - self.pos
            ));
        }
        // Count first (shared objects once per place they appear, each
        // node's count computed once), so that nothing is built when the
        // tree would be too large or too deep.
        let mut sizes = vec![None; self.nodes.len()];
        let total = self.size(root, 0, &mut sizes)?;
        if total > self.limits.max_values as u64 {
            return self.err(format!(
                "decoded value would exceed {} values (memo references repeat shared objects)",
                self.limits.max_values
            ));
        }
        let mut budget = self.limits.max_values;
        self.build(root, 0, &mut budget)
    }

    fn size(
        &self,
        id: usize,
        depth: usize,
        sizes: &mut Vec<Option<u64>>,
    ) -> Result<u64, PickleError> {
        if depth > self.limits.max_depth {
            return self.err(format!(
                "value nested deeper than {} (or a container that contains itself)",
                self.limits.max_depth
            ));
        }
        if let Some(n) = sizes[id] {
            return Ok(n);
        }
        let children: Vec<usize> = match &self.nodes[id] {
            Node::Scalar(_)
            | Node::NumpyScalarFn
            | Node::NumpyDtypeFn
            | Node::NumpyDtype { .. } => Vec::new(),
            Node::List(c) | Node::Tuple(c) | Node::Set(c) => c.clone(),
            Node::Dict(p) => p.iter().flat_map(|&(k, v)| [k, v]).collect(),
        };
        let mut n = 1u64;
        for c in children {
            n = n.saturating_add(self.size(c, depth + 1, sizes)?);
        }
        sizes[id] = Some(n);
        Ok(n)
    }

    fn build(&self, id: usize, depth: usize, budget: &mut usize) -> Result<Value, PickleError> {
        if depth > self.limits.max_depth {
            return self.err(format!(
                "value nested deeper than {} (or a container that contains itself)",
                self.limits.max_depth
            ));
        }
        if *budget == 0 {
            return self.err(format!(
                "decoded value would exceed {} values (memo references repeat shared objects)",
                self.limits.max_values
            ));
        }
        *budget -= 1;
        let many = |c: &[usize], budget: &mut usize| -> Result<Vec<Value>, PickleError> {
            c.iter()
                .map(|&c| self.build(c, depth + 1, budget))
                .collect()
        };
        Ok(match &self.nodes[id] {
            Node::Scalar(v) => v.clone(),
            Node::NumpyScalarFn | Node::NumpyDtypeFn | Node::NumpyDtype { .. } => {
                return self.err(
                    "a NumPy function or dtype is not plain data (only NumPy scalars are read)",
                );
            }
            Node::List(c) => Value::List(many(c, budget)?),
            Node::Tuple(c) => Value::Tuple(many(c, budget)?),
            Node::Set(c) => Value::Set(many(c, budget)?),
            Node::Dict(p) => {
                let mut out = Vec::with_capacity(p.len());
                for &(k, v) in p {
                    let k = self.build(k, depth + 1, budget)?;
                    let v = self.build(v, depth + 1, budget)?;
                    out.push((k, v));
                }
                Value::Dict(out)
            }
        })
    }

    /// `STRING`: a quoted Python 2 `repr` with backslash escapes, ASCII.
    fn py2_repr_string(&self, l: &[u8]) -> Result<Value, PickleError> {
        let q = l.first().copied();
        if l.len() < 2 || !(q == Some(b'\'') || q == Some(b'"')) || l[l.len() - 1] != q.unwrap() {
            return self.err("STRING: argument is not a quoted string");
        }
        let body = &l[1..l.len() - 1];
        let mut out = Vec::with_capacity(body.len());
        let mut i = 0;
        while i < body.len() {
            let c = body[i];
            if c != b'\\' {
                out.push(c);
                i += 1;
                continue;
            }
            let Some(&e) = body.get(i + 1) else {
                return self.err("STRING: ends in a lone backslash");
            };
            i += 2;
            match e {
                b'\\' => out.push(b'\\'),
                b'\'' => out.push(b'\''),
                b'"' => out.push(b'"'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'x' => {
                    let hex = body.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => out.push(b),
                        None => return self.err("STRING: bad \\x escape"),
                    }
                    i += 2;
                }
                other => {
                    return self.err(format!("STRING: unsupported escape \\{}", other as char));
                }
            }
        }
        self.ascii_string(&out, "STRING")
    }

    /// `UNICODE`: raw-unicode-escape (latin-1 bytes, `\uXXXX`, `\UXXXXXXXX`).
    fn raw_unicode_escape(&self, l: &[u8]) -> Result<String, PickleError> {
        let mut out = String::with_capacity(l.len());
        let mut i = 0;
        while i < l.len() {
            let c = l[i];
            let width = match (c, l.get(i + 1)) {
                (b'\\', Some(b'u')) => 4,
                (b'\\', Some(b'U')) => 8,
                _ => 0,
            };
            if width == 0 {
                out.push(c as char);
                i += 1;
                continue;
            }
            let hex = l
                .get(i + 2..i + 2 + width)
                .and_then(|h| std::str::from_utf8(h).ok());
            let ch = hex
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32);
            match ch {
                Some(ch) => out.push(ch),
                None => return self.err("UNICODE: bad \\u or \\U escape"),
            }
            i += 2 + width;
        }
        Ok(out)
    }
}

/// A NumPy scalar's value from its raw bytes (`order`: `<`, `>`, `|`, `=`
/// little-endian on every platform forge runs on).
fn numpy_value(code: &str, order: char, b: &[u8]) -> Option<Value> {
    let size: usize = code[1..].parse().ok()?;
    if b.len() != size {
        return None;
    }
    let mut le = b.to_vec();
    if order == '>' {
        le.reverse();
    }
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(&le);
    Some(match code {
        "f8" => Value::Float(f64::from_le_bytes(buf)),
        "f4" => Value::Float(f32::from_le_bytes(buf[..4].try_into().ok()?) as f64),
        "f2" => Value::Float(f16_to_f64(u16::from_le_bytes([buf[0], buf[1]]))),
        "i8" => Value::Int(i64::from_le_bytes(buf)),
        "i4" => Value::Int(i32::from_le_bytes(buf[..4].try_into().ok()?) as i64),
        "i2" => Value::Int(i16::from_le_bytes([buf[0], buf[1]]) as i64),
        "i1" => Value::Int(buf[0] as i8 as i64),
        "u8" => Value::Int(i64::try_from(u64::from_le_bytes(buf)).ok()?),
        "u4" | "u2" | "u1" => Value::Int(u64::from_le_bytes(buf) as i64),
        "b1" => Value::Bool(buf[0] != 0),
        _ => return None,
    })
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}
