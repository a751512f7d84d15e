//! OmegaConf interpolation, resolved on the config tree before its keys are
//! read, with OmegaConf's meaning (scModelForge loads configs with
//! OmegaConf, so these forms appear in its configs):
//!
//! - `${section.key}`: the value of another key, from the top of the
//!   config; list items as `${data.paths.0}` or `${data.paths[0]}`;
//! - `${.key}`, `${..key}`, ...: relative to the mapping (or list) holding
//!   the value, one more dot per level up;
//! - `${oc.env:VAR}` and `${oc.env:VAR,default}`: an environment variable
//!   (always a string, `null` as default gives `null`);
//! - `${oc.select:key,default}`: a key, or the default when it is absent;
//! - nesting (`${oc.env:${data.var_name}}`, `${model.${which}}`) and
//!   interpolations embedded in text (`run_${model.hidden_dim}`);
//! - `\${` for a literal `${`.
//!
//! A value that is exactly one interpolation takes the type of what it
//! refers to (`hidden_dim: ${tokenizer.max_genes}` is an integer); an
//! interpolation embedded in text is written as Python's `str()` writes it
//! (`1e-05`, `True`, `None`), as OmegaConf does. Keys may refer to keys the
//! file leaves out: references see scModelForge's defaults, as OmegaConf
//! sees the merged schema.
//!
//! Every problem names the key holding the interpolation and the bad
//! reference: a key that does not exist (with a did-you-mean), an unset
//! environment variable, a cycle, an unclosed `${`, an unknown resolver.
//! Nothing here knows the config schema beyond the defaults tree it is
//! given.

use serde_json::{Map, Value};

use super::error::ConfigErrors;
use super::value::{index_path, join_path};

/// Resolvers forge implements (OmegaConf's built-ins that configs use;
/// scModelForge registers none of its own).
pub const RESOLVERS: &[&str] = &["oc.env", "oc.select"];

/// One step of a key path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_text(segs: &[Seg]) -> String {
    let mut out = String::new();
    for s in segs {
        match s {
            Seg::Key(k) => out = join_path(&out, k),
            Seg::Index(i) => out = index_path(&out, *i),
        }
    }
    out
}

/// Deep merge: mappings merge key by key, anything else in `over` wins.
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match b.get(k) {
                    Some(bv) => merge(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => over.clone(),
    }
}

/// Resolves every interpolation in `root` (the file's tree) in place.
/// `defaults` is the tree of default values the file's keys are merged
/// onto for lookups. Problems are recorded under the key path of the value
/// holding the interpolation.
pub fn resolve(root: &mut Value, defaults: &Value, errors: &mut ConfigErrors) {
    resolve_with_env(root, defaults, errors, &|name| std::env::var(name).ok());
}

/// [`resolve`], reading environment variables through `env`.
pub fn resolve_with_env(
    root: &mut Value,
    defaults: &Value,
    errors: &mut ConfigErrors,
    env: &dyn Fn(&str) -> Option<String>,
) {
    if !contains_interpolation(root) {
        return;
    }
    let merged = merge(defaults, root);
    let mut resolver = Resolver {
        root: &merged,
        in_progress: Vec::new(),
        env,
    };
    let mut out = root.clone();
    resolve_node(&mut out, &mut Vec::new(), &mut resolver, errors);
    *root = out;
}

fn contains_interpolation(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("${"),
        Value::Array(items) => items.iter().any(contains_interpolation),
        Value::Object(map) => map.values().any(contains_interpolation),
        _ => false,
    }
}

fn resolve_node(
    node: &mut Value,
    path: &mut Vec<Seg>,
    resolver: &mut Resolver<'_>,
    errors: &mut ConfigErrors,
) {
    match node {
        Value::String(s) if s.contains("${") => {
            let text = s.clone();
            match resolver.resolve_text(&text, path) {
                Ok(v) => *node = v,
                Err(message) => errors.push(path_text(path), message),
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                resolve_node(item, path, resolver, errors);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(Seg::Key(k.clone()));
                resolve_node(v, path, resolver, errors);
                path.pop();
            }
        }
        _ => {}
    }
}

/// A piece of a value's text.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// The text between `${` and its `}`, and that whole `${...}` as
    /// written (for messages).
    Interp(String, String),
}

/// Splits `text` into literal text and `${...}` interpolations, with
/// OmegaConf's escapes: before `${`, `\\` is one backslash and `\${` is a
/// literal `${`; backslashes elsewhere are kept.
fn split(text: &str) -> Result<Vec<Part>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            let start = i;
            while i < chars.len() && chars[i] == '\\' {
                i += 1;
            }
            let n = i - start;
            if i + 1 < chars.len() && chars[i] == '$' && chars[i + 1] == '{' {
                lit.extend(std::iter::repeat_n('\\', n / 2));
                if n % 2 == 1 {
                    lit.push_str("${");
                    i += 2;
                }
            } else {
                lit.extend(std::iter::repeat_n('\\', n));
            }
            continue;
        }
        if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
            let end = matching_close(&chars, i + 2).ok_or_else(|| {
                let rest: String = chars[i..].iter().collect();
                format!(
                    "interpolation {rest:?} is not closed: a `}}` is missing (write `\\${{` for \
                     a literal `${{`)"
                )
            })?;
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            let inner: String = chars[i + 2..end].iter().collect();
            let whole: String = chars[i..=end].iter().collect();
            parts.push(Part::Interp(inner, whole));
            i = end + 1;
            continue;
        }
        lit.push(chars[i]);
        i += 1;
    }
    if !lit.is_empty() {
        parts.push(Part::Text(lit));
    }
    Ok(parts)
}

/// The index of the `}` closing an interpolation whose content starts at
/// `from`, skipping nested `${...}` and quoted strings.
fn matching_close(chars: &[char], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = from;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                if c == '\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '$' if chars.get(i + 1) == Some(&'{') => {
                    depth += 1;
                    i += 1;
                }
                '}' if depth == 0 => return Some(i),
                '}' => depth -= 1,
                _ => {}
            },
        }
        i += 1;
    }
    None
}

struct Resolver<'a> {
    root: &'a Value,
    /// Paths of the values being resolved, to detect cycles.
    in_progress: Vec<Vec<Seg>>,
    /// Reads an environment variable.
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    /// Resolves a whole value's text found at `at`.
    fn resolve_text(&mut self, text: &str, at: &[Seg]) -> Result<Value, String> {
        let parts = split(text)?;
        if let [Part::Interp(inner, whole)] = parts.as_slice() {
            return self.interpolation(inner, whole, at);
        }
        let mut out = String::new();
        for part in &parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Interp(inner, whole) => {
                    out.push_str(&py_str(&self.interpolation(inner, whole, at)?));
                }
            }
        }
        Ok(Value::String(out))
    }

    /// Resolves text that may hold nested interpolations to a string (a key
    /// name, a resolver argument).
    fn resolve_to_string(&mut self, text: &str, at: &[Seg]) -> Result<String, String> {
        if !text.contains("${") && !text.contains('\\') {
            return Ok(text.to_string());
        }
        Ok(match self.resolve_text(text, at)? {
            Value::String(s) => s,
            other => py_str(&other),
        })
    }

    /// Resolves one `${inner}` found in the value at `at`.
    fn interpolation(&mut self, inner: &str, whole: &str, at: &[Seg]) -> Result<Value, String> {
        if let Some((name, args)) = resolver_call(inner) {
            return match name {
                "oc.env" => self.oc_env(args, whole, at),
                "oc.select" => self.oc_select(args, whole, at),
                _ => Err(format!(
                    "interpolation {whole}: unknown resolver `{name}`; forge resolves {} \
                     (scModelForge registers no resolvers of its own)",
                    RESOLVERS.join(", ")
                )),
            };
        }
        let key = self.resolve_to_string(inner, at)?;
        match self.lookup(key.trim(), whole, at)? {
            Some(v) => Ok(v),
            None => Err(self.missing_key_message(key.trim(), whole, at)),
        }
    }

    fn oc_env(&mut self, args: &str, whole: &str, at: &[Seg]) -> Result<Value, String> {
        let args = split_args(args);
        let Some(var) = args.first() else {
            return Err(format!(
                "interpolation {whole}: oc.env needs a variable name: ${{oc.env:NAME}}"
            ));
        };
        if args.len() > 2 {
            return Err(format!(
                "interpolation {whole}: oc.env takes a name and at most one default, found {} \
                 arguments (quote a default holding commas: ${{oc.env:NAME,'a,b'}})",
                args.len()
            ));
        }
        let var = self.argument(var, at)?;
        let var = match var {
            Value::String(s) => s,
            other => py_str(&other),
        };
        if let Some(value) = (self.env)(&var) {
            return Ok(Value::String(value));
        }
        match args.get(1) {
            Some(default) => Ok(match self.argument(default, at)? {
                Value::Null => Value::Null,
                Value::String(s) => Value::String(s),
                other => Value::String(py_str(&other)),
            }),
            None => Err(format!(
                "interpolation {whole}: environment variable {var} is not set; set it, or give \
                 a default: ${{oc.env:{var},DEFAULT}}"
            )),
        }
    }

    fn oc_select(&mut self, args: &str, whole: &str, at: &[Seg]) -> Result<Value, String> {
        let args = split_args(args);
        if args.is_empty() || args.len() > 2 {
            return Err(format!(
                "interpolation {whole}: oc.select takes a key and at most one default"
            ));
        }
        let key = self.resolve_to_string(args[0].trim(), at)?;
        match self.lookup(key.trim(), whole, at)? {
            Some(v) => Ok(v),
            None => match args.get(1) {
                Some(default) => self.argument(default, at),
                None => Ok(Value::Null),
            },
        }
    }

    /// A resolver argument as OmegaConf's grammar reads it: a quoted string,
    /// an interpolation, or a primitive (integer, float, boolean, null or
    /// plain text).
    fn argument(&mut self, raw: &str, at: &[Seg]) -> Result<Value, String> {
        let t = raw.trim();
        if t.len() >= 2
            && let (Some(first), Some(last)) = (t.chars().next(), t.chars().last())
            && (first == '\'' || first == '"')
            && last == first
        {
            let body = &t[1..t.len() - 1];
            let unescaped = body.replace(&format!("\\{first}"), &first.to_string());
            return Ok(Value::String(self.resolve_to_string(&unescaped, at)?));
        }
        if t.contains("${") {
            return self.resolve_text(t, at);
        }
        Ok(primitive(t))
    }

    /// The value at `key` (absolute, or relative with leading dots) seen
    /// from the value at `at`; `Ok(None)` when there is no such key.
    fn lookup(&mut self, key: &str, whole: &str, at: &[Seg]) -> Result<Option<Value>, String> {
        let (base, rest) = self.key_start(key, whole, at)?;
        let segs = parse_key(rest).ok_or_else(|| {
            format!("interpolation {whole}: {key:?} is not a key path (write section.key)")
        })?;
        let mut path = base;
        let mut node = self.node_at(&path, whole)?;
        for seg in segs {
            let next = match (&node, &seg) {
                (Value::Object(map), Seg::Key(k)) => map.get(k).cloned(),
                (Value::Array(items), Seg::Key(k)) => {
                    k.parse::<usize>().ok().and_then(|i| items.get(i).cloned())
                }
                (Value::Array(items), Seg::Index(i)) => items.get(*i).cloned(),
                _ => None,
            };
            let Some(next) = next else {
                return Ok(None);
            };
            path.push(match (&node, seg) {
                (Value::Array(_), Seg::Key(k)) => Seg::Index(k.parse().unwrap_or(0)),
                (_, seg) => seg,
            });
            node = self.settle_string(next, &path, whole)?;
        }
        // The value found is resolved in full (a mapping holding
        // interpolations comes back resolved), nothing above it is.
        let node = self.settle(node, &path, whole)?;
        Ok(Some(node))
    }

    /// The starting point and the rest of a key: the top for `a.b`, the
    /// holding mapping for `.b`, one level up per extra dot.
    fn key_start<'k>(
        &self,
        key: &'k str,
        whole: &str,
        at: &[Seg],
    ) -> Result<(Vec<Seg>, &'k str), String> {
        let dots = key.chars().take_while(|&c| c == '.').count();
        if dots == 0 {
            return Ok((Vec::new(), key));
        }
        if dots > at.len() {
            return Err(format!(
                "interpolation {whole}: {dots} leading dots go above the top of the config \
                 (the value is {} level(s) deep)",
                at.len()
            ));
        }
        Ok((at[..at.len() - dots].to_vec(), &key[dots..]))
    }

    /// The node at `path` of the merged tree; a string interpolation there
    /// is resolved, a container is returned as it is (its children are
    /// resolved as they are reached).
    fn node_at(&mut self, path: &[Seg], whole: &str) -> Result<Value, String> {
        let mut node = self.root;
        for seg in path {
            node = match (node, seg) {
                (Value::Object(map), Seg::Key(k)) => map.get(k).unwrap_or(&Value::Null),
                (Value::Array(items), Seg::Index(i)) => items.get(*i).unwrap_or(&Value::Null),
                _ => &Value::Null,
            };
        }
        self.settle_string(node.clone(), path, whole)
    }

    /// [`Self::settle`] for a string; containers are returned unchanged.
    fn settle_string(&mut self, v: Value, path: &[Seg], whole: &str) -> Result<Value, String> {
        match v {
            Value::String(_) => self.settle(v, path, whole),
            other => Ok(other),
        }
    }

    /// Resolves `v`, found at `path`, when it holds interpolations itself.
    fn settle(&mut self, v: Value, path: &[Seg], whole: &str) -> Result<Value, String> {
        if !contains_interpolation(&v) {
            return Ok(v);
        }
        if self.in_progress.iter().any(|p| p == path) {
            let mut chain: Vec<String> = self.in_progress.iter().map(|p| path_text(p)).collect();
            chain.push(path_text(path));
            return Err(format!(
                "interpolation {whole} refers back to itself ({})",
                chain.join(" -> ")
            ));
        }
        self.in_progress.push(path.to_vec());
        let result = match v {
            Value::String(s) => self.resolve_text(&s, path),
            mut container => {
                let mut errors = ConfigErrors::new("");
                let mut p = path.to_vec();
                resolve_node(&mut container, &mut p, self, &mut errors);
                match errors.errors.into_iter().next() {
                    Some(e) => Err(e.message),
                    None => Ok(container),
                }
            }
        };
        self.in_progress.pop();
        result
    }

    /// "no key X" with the closest existing key, if any.
    fn missing_key_message(&mut self, key: &str, whole: &str, at: &[Seg]) -> String {
        let Ok((base, rest)) = self.key_start(key, whole, at) else {
            return format!("interpolation {whole}: no key {key:?}");
        };
        let Some(segs) = parse_key(rest) else {
            return format!("interpolation {whole}: no key {key:?}");
        };
        // Walk as far as the key exists, then suggest among the keys there.
        let mut node = self.node_at(&base, whole).unwrap_or(Value::Null);
        let mut found = path_text(&base);
        for seg in &segs {
            let next = match (&node, seg) {
                (Value::Object(map), Seg::Key(k)) => map.get(k).cloned(),
                (Value::Array(items), Seg::Index(i)) => items.get(*i).cloned(),
                (Value::Array(items), Seg::Key(k)) => {
                    k.parse::<usize>().ok().and_then(|i| items.get(i).cloned())
                }
                _ => None,
            };
            match next {
                Some(n) => {
                    found = match seg {
                        Seg::Key(k) => join_path(&found, k),
                        Seg::Index(i) => index_path(&found, *i),
                    };
                    node = n;
                }
                None => {
                    let target = if found.is_empty() {
                        "the top level".to_string()
                    } else {
                        found.clone()
                    };
                    let hint = match (&node, seg) {
                        (Value::Object(map), Seg::Key(k)) => {
                            match crate::suggest::closest(k, map.keys().map(|s| s.as_str())) {
                                Some(best) => {
                                    format!("; did you mean {:?}?", join_path(&found, best))
                                }
                                None => format!(
                                    "; keys there: {}",
                                    map.keys().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            }
                        }
                        (Value::Array(items), _) => {
                            format!("; the list there has {} item(s)", items.len())
                        }
                        _ => format!("; {target} is not a mapping"),
                    };
                    return format!(
                        "interpolation {whole}: {target} has no key {}{hint}",
                        match seg {
                            Seg::Key(k) => format!("{k:?}"),
                            Seg::Index(i) => format!("[{i}]"),
                        }
                    );
                }
            }
        }
        format!("interpolation {whole}: no key {key:?}")
    }
}

/// `name:args` when `inner` is a resolver call (`oc.env:HOME`): a name of
/// letters, digits, `_` and `.` before the first `:`.
fn resolver_call(inner: &str) -> Option<(&str, &str)> {
    let t = inner.trim_start();
    let (name, args) = t.split_once(':')?;
    let name = name.trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    ok.then_some((name, args))
}

/// Splits resolver arguments at top-level commas (not inside quotes or
/// nested interpolations). No arguments gives an empty list.
fn split_args(args: &str) -> Vec<String> {
    if args.trim().is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = args.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                cur.push(c);
                if c == '\\' && i + 1 < chars.len() {
                    cur.push(chars[i + 1]);
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '$' if chars.get(i + 1) == Some(&'{') => {
                    depth += 1;
                    cur.push_str("${");
                    i += 1;
                }
                '}' if depth > 0 => {
                    depth -= 1;
                    cur.push(c);
                }
                ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            },
        }
        i += 1;
    }
    out.push(cur);
    out
}

/// A key path after its leading dots: `a.b.0`, `a.b[0]`, `a[0].c`.
fn parse_key(key: &str) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    if key.is_empty() {
        return Some(segs);
    }
    for part in key.split('.') {
        if part.is_empty() {
            return None;
        }
        let (name, mut rest) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            segs.push(Seg::Key(name.to_string()));
        } else if rest.is_empty() {
            return None;
        }
        while !rest.is_empty() {
            let close = rest.find(']')?;
            let index = rest[1..close].trim().parse::<usize>().ok()?;
            segs.push(Seg::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return None;
            }
        }
    }
    Some(segs)
}

/// A bare resolver argument as OmegaConf's grammar types it.
fn primitive(t: &str) -> Value {
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "null" => return Value::Null,
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let int_like = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
        && (digits == "0" || !digits.starts_with('0'));
    if int_like && let Ok(i) = t.replace('_', "").parse::<i64>() {
        return Value::from(i);
    }
    let float_like = t.chars().any(|c| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'))
        && (t.contains('.') || t.contains('e') || t.contains('E'));
    if float_like && let Ok(f) = t.replace('_', "").parse::<f64>() {
        return super::value::float_value(f);
    }
    Value::String(t.to_string())
}

/// `str(value)` as Python writes it, for interpolations embedded in text.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) if !n.is_f64() => i.to_string(),
            (_, Some(u), _) if !n.is_f64() => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => {
            if s.contains('\'') && !s.contains('"') {
                format!("\"{s}\"")
            } else {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr(float)`: the shortest digits that read back, positional
/// for exponents in [-4, 16), else `d.ddde[+-]XX`.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Shortest round-trip digits and decimal exponent from `{:e}`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// The defaults a file's keys are merged onto for lookups: `defaults`, with
/// the sections that are `null` by default (`finetune`, `training.fsdp`)
/// replaced by `section_defaults` where the file writes them as mappings.
pub fn defaults_for(file: &Value, defaults: &Value, section_defaults: &[(&str, Value)]) -> Value {
    let mut out = defaults.clone();
    for (path, value) in section_defaults {
        let segs: Vec<&str> = path.split('.').collect();
        let mut in_file = Some(file);
        for s in &segs {
            in_file = in_file.and_then(|v| v.get(*s));
        }
        if !matches!(in_file, Some(Value::Object(_))) {
            continue;
        }
        let mut node = &mut out;
        for s in &segs[..segs.len() - 1] {
            node = match node {
                Value::Object(map) => map
                    .entry(s.to_string())
                    .or_insert_with(|| Value::Object(Map::new())),
                _ => break,
            };
        }
        if let Value::Object(map) = node {
            map.insert(segs[segs.len() - 1].to_string(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
