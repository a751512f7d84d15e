//! YAML text <-> the in-memory config tree (`serde_json::Value`).
//!
//! Reading uses saphyr (YAML 1.2): `1e-4` is a float, `yes` is a string
//! (the schema's booleans still accept it), anchors and aliases are
//! expanded, duplicate keys are an error. Alongside the tree, reading
//! records the line of every key path so that problems found later can
//! point at the line to edit.
//!
//! Writing is a small block-style emitter for trees made of mappings, lists
//! and scalars: strings are quoted whenever the plain form would read back
//! as something else, and floats always carry a `.` so that both YAML 1.2
//! and PyYAML's YAML 1.1 read them as floats. What it writes reads back to
//! the same tree.
//!
//! Nothing here knows the config schema.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Value};

use super::error::{ConfigError, ConfigErrors};
use super::value::{float_value, index_path, join_path};

/// A parsed YAML document: the tree and the 1-based line of each key path.
#[derive(Debug, Clone, Default)]
pub struct YamlTree {
    /// The document as a tree; an empty document is an empty mapping.
    pub root: Value,
    /// Key path -> line of its key (or list item) in the text.
    pub lines: HashMap<String, usize>,
}

/// Parses `text` into a tree. Syntax errors come back as one problem with
/// its line and column; content problems (several documents, unusable
/// keys) are all reported.
pub fn parse(text: &str, errors: &mut ConfigErrors) -> Option<YamlTree> {
    let docs = match MarkedYaml::load_from_str(text) {
        Ok(docs) => docs,
        Err(e) => {
            let m = e.marker();
            let opened = match unclosed_before(text, m.line(), m.col() + 1) {
                Some(u) => format!(
                    "; {} at line {}, column {} is not closed",
                    u.what, u.line, u.col
                ),
                None => String::new(),
            };
            errors.push(
                "",
                format!(
                    "YAML syntax error at line {}, column {}: {}{opened}",
                    m.line(),
                    m.col() + 1,
                    e.info()
                ),
            );
            return None;
        }
    };
    let mut tree = YamlTree {
        root: Value::Object(Map::new()),
        lines: HashMap::new(),
    };
    match docs.as_slice() {
        [] => {}
        [doc] => {
            let before = errors.len();
            let root = convert(doc, "", &mut tree.lines, errors);
            if errors.len() > before {
                return None;
            }
            tree.root = if root.is_null() {
                Value::Object(Map::new())
            } else {
                root
            };
        }
        [_, second, ..] => {
            errors.push(
                "",
                format!(
                    "the file holds {} YAML documents (a second one starts at line {}); a \
                     config is one document: remove the extra `---` separators",
                    docs.len(),
                    second.span.start.line()
                ),
            );
            return None;
        }
    }
    Some(tree)
}

/// A flow collection or quoted scalar left open, and where it began
/// (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unclosed {
    /// What was opened: "the `[`", "the `{`", "the quoted string".
    pub what: &'static str,
    /// Line of the opening character.
    pub line: usize,
    /// Column of the opening character.
    pub col: usize,
}

/// The innermost flow collection (`[`, `{`) or quoted scalar still open at
/// 1-based (`line`, `col`) of `text`, as PyYAML reports it ("while parsing
/// a flow sequence ... line 2, column 14"), so that a syntax error found at
/// the end of the file can name where the unclosed construct began. A
/// light scan: comments, quotes and block context are told apart; `[`,
/// `{` and quotes count only where a value starts.
pub fn unclosed_before(text: &str, line: usize, col: usize) -> Option<Unclosed> {
    let mut stack: Vec<Unclosed> = Vec::new();
    // (quote char, where it opened)
    let mut quote: Option<(char, Unclosed)> = None;
    for (li, row) in text.split('\n').enumerate() {
        let ln = li + 1;
        if ln > line {
            break;
        }
        let chars: Vec<char> = row.trim_end_matches('\r').chars().collect();
        // The last significant character before the current one, on this
        // line or (in flow context) on an earlier one.
        let mut prev: Option<char> = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let cn = i + 1;
            if ln == line && cn >= col {
                break;
            }
            if let Some((q, _)) = &quote {
                let q = *q;
                if q == '"' && c == '\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == '\'' && chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    quote = None;
                    prev = Some(c);
                }
                i += 1;
                continue;
            }
            let at_value = match prev {
                None => true,
                Some(p) => matches!(p, ':' | '-' | '?' | ',' | '[' | '{'),
            };
            match c {
                '#' if i == 0 || chars[i - 1].is_whitespace() => break,
                '[' | '{' if at_value => {
                    stack.push(Unclosed {
                        what: if c == '[' { "the `[`" } else { "the `{`" },
                        line: ln,
                        col: cn,
                    });
                }
                ']' | '}' if !stack.is_empty() => {
                    stack.pop();
                }
                '"' | '\'' if at_value => {
                    quote = Some((
                        c,
                        Unclosed {
                            what: "the quoted string",
                            line: ln,
                            col: cn,
                        },
                    ));
                }
                _ => {}
            }
            if !c.is_whitespace() {
                prev = Some(c);
            }
            i += 1;
        }
    }
    quote.map(|(_, u)| u).or_else(|| stack.pop())
}

fn convert(
    node: &MarkedYaml<'_>,
    path: &str,
    lines: &mut HashMap<String, usize>,
    errors: &mut ConfigErrors,
) -> Value {
    match &node.data {
        YamlData::Value(scalar) => scalar_value(scalar),
        YamlData::Representation(text, style, tag) => {
            match Scalar::parse_from_cow_and_metadata(text.clone(), *style, tag.as_ref()) {
                Some(scalar) => scalar_value(&scalar),
                None => bad_value(node, path, errors),
            }
        }
        YamlData::Tagged(_, inner) => convert(inner, path, lines, errors),
        YamlData::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_path = index_path(path, i);
                    lines.insert(item_path.clone(), item.span.start.line());
                    convert(item, &item_path, lines, errors)
                })
                .collect(),
        ),
        YamlData::Mapping(entries) => {
            let mut map = Map::new();
            for (key_node, value_node) in entries {
                let Some(key) = key_text(key_node) else {
                    errors.push(
                        path,
                        format!(
                            "line {}: keys must be plain names, not lists or mappings",
                            key_node.span.start.line()
                        ),
                    );
                    continue;
                };
                let key_path = join_path(path, &key);
                lines.insert(key_path.clone(), key_node.span.start.line());
                let value = convert(value_node, &key_path, lines, errors);
                map.insert(key, value);
            }
            Value::Object(map)
        }
        YamlData::Alias(_) | YamlData::BadValue => bad_value(node, path, errors),
    }
}

fn bad_value(node: &MarkedYaml<'_>, path: &str, errors: &mut ConfigErrors) -> Value {
    errors.push(
        path,
        format!(
            "line {}: the value cannot be read (a `!!` tag that does not fit it, or an \
             unresolved alias)",
            node.span.start.line()
        ),
    );
    Value::Null
}

fn scalar_value(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::from(*i),
        Scalar::FloatingPoint(f) => float_value(f.into_inner()),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

/// The text of a scalar key (`1: x` has key `"1"`); `None` for a
/// collection used as a key.
fn key_text(node: &MarkedYaml<'_>) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.into_inner().to_string()),
        YamlData::Value(Scalar::Null) => Some("null".to_string()),
        YamlData::Representation(text, ..) => Some(text.to_string()),
        YamlData::Tagged(_, inner) => key_text(inner),
        _ => None,
    }
}

/// Adds " (line N)" to every problem whose key path appears in `lines`.
pub fn attach_lines(errors: &mut ConfigErrors, lines: &HashMap<String, usize>) {
    for ConfigError { path, message } in &mut errors.errors {
        if let Some(line) = lines.get(path.as_str()) {
            message.push_str(&format!(" (line {line})"));
        }
    }
}

/// Writes `root` (normally a mapping) as block-style YAML, ending in a
/// newline.
pub fn to_yaml(root: &Value) -> String {
    let mut out = String::new();
    match root {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn write_mapping(out: &mut String, map: &Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (key, value) in map {
        out.push_str(&pad);
        out.push_str(&string_scalar(key));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                write_mapping(out, inner, indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_sequence(out, items, indent + 2);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// Each item is written as a block two columns further in, then its first
/// two columns of indentation become the `- ` marker.
fn write_sequence(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(map) if !map.is_empty() => {
                let mut block = String::new();
                write_mapping(&mut block, map, indent + 2);
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&block[indent + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut block = String::new();
                write_sequence(&mut block, inner, indent + 2);
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&block[indent + 2..]);
            }
            scalar => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection, on one line.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => float_text(f),
            _ => n.to_string(),
        },
        Value::String(s) => string_scalar(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// A finite float that reads back as the same float in YAML 1.2 and 1.1:
/// always a `.` in the mantissa and a sign in the exponent (`1.0e-05`).
fn float_text(f: f64) -> String {
    let text = format!("{f:?}");
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m.to_string(), Some(e.to_string())),
        None => (text, None),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa
    } else {
        format!("{mantissa}.0")
    };
    match exponent {
        Some(e) if e.starts_with('-') => format!("{mantissa}e{e}"),
        Some(e) => format!("{mantissa}e+{e}"),
        None => mantissa,
    }
}

/// `s` as a plain scalar when that reads back as the same string, else
/// double-quoted (JSON escapes are valid YAML).
fn string_scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
    }
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let chars_ok = s
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '+' | '@' | ' '));
    let first_ok = first.is_alphanumeric() || matches!(first, '_' | '.' | '/');
    chars_ok
        && first_ok
        && !s.ends_with(' ')
        && matches!(Scalar::parse_from_cow(Cow::Borrowed(s)), Scalar::String(_))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(text: &str) -> Result<YamlTree, String> {
        let mut errors = ConfigErrors::new("t.yaml");
        parse(text, &mut errors).ok_or_else(|| errors.to_string())
    }

    #[test]
    fn yaml_1_2_scalars() {
        let tree =
            read("a: 1e-4\nb: 1.0e-4\nc: 3\nd: yes\ne: ~\nf: '5'\ng: .inf\nh: 0x10\n").unwrap();
        assert_eq!(
            tree.root,
            json!({"a": 1e-4, "b": 1e-4, "c": 3, "d": "yes", "e": null, "f": "5",
                   "g": ".inf", "h": 16})
        );
        assert!(tree.root["a"].is_f64());
    }

    #[test]
    fn records_key_lines() {
        let tree = read("# c\nmodel:\n  hidden_dim: 4\nlist:\n  - a\n  - b: 1\n").unwrap();
        assert_eq!(tree.lines["model"], 2);
        assert_eq!(tree.lines["model.hidden_dim"], 3);
        assert_eq!(tree.lines["list[1]"], 6);
        assert_eq!(tree.lines["list[1].b"], 6);
    }

    #[test]
    fn anchors_tags_and_empty_documents() {
        let tree = read("a: &x {k: 1}\nb: *x\nc: !!str 12\nd: !custom 3\n").unwrap();
        assert_eq!(
            tree.root,
            json!({"a": {"k": 1}, "b": {"k": 1}, "c": "12", "d": 3})
        );
        assert_eq!(read("").unwrap().root, json!({}));
        assert_eq!(read("# only a comment\n").unwrap().root, json!({}));
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = read("model:\n  hidden_dim: 4\n bad: [\n").unwrap_err();
        assert!(
            err.starts_with("t.yaml: YAML syntax error at line "),
            "{err}"
        );
        let err = read("a: 1\na: 2\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = read("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(err.contains("2 YAML documents"), "{err}");
        let err = read("a: !!int nope\n").unwrap_err();
        assert!(err.contains("a: line 1: the value cannot be read"), "{err}");
        let err = read("? [1, 2]\n: x\n").unwrap_err();
        assert!(err.contains("keys must be plain names"), "{err}");
    }

    #[test]
    fn unclosed_constructs_name_where_they_began() {
        // PyYAML: "while parsing a flow sequence in line 2, column 13".
        let err = read("model:\n  hidden_dim: [1\n  pooling: cls\n").unwrap_err();
        assert!(
            err.contains("; the `[` at line 2, column 15 is not closed"),
            "{err}"
        );
        let err = read("a: {b: 1\nc: 2\n").unwrap_err();
        assert!(
            err.contains("the `{` at line 1, column 4 is not closed"),
            "{err}"
        );
        // saphyr itself reports where an unclosed quote began.
        let err = read("a: \"open\n  b: 2\n").unwrap_err();
        assert!(
            err.contains("error at line 1, column 4: while scanning a quoted"),
            "{err}"
        );
        assert_eq!(
            unclosed_before("a: \"open\n  b: 2\n", 3, 1).map(|u| u.what),
            Some("the quoted string")
        );
        // Closed constructs, brackets inside text and comments are skipped.
        assert_eq!(
            unclosed_before("a: [1, [2]]\nb: x[1\nc: 'it''s [' # [\nd: [", 5, 1),
            Some(Unclosed {
                what: "the `[`",
                line: 4,
                col: 4
            })
        );
        assert_eq!(unclosed_before("a: [1, [2]]\nb: x[1\n", 3, 1), None);
        assert_eq!(
            unclosed_before("a: [1,\n  [2,\n  3]\n", 4, 1),
            Some(Unclosed {
                what: "the `[`",
                line: 1,
                col: 4
            })
        );
    }

    #[test]
    fn floats_always_look_like_floats() {
        assert_eq!(float_text(1.0), "1.0");
        assert_eq!(float_text(0.0001), "0.0001");
        assert_eq!(float_text(1e-5), "1.0e-5");
        assert_eq!(float_text(2.5e-7), "2.5e-7");
        assert_eq!(float_text(1e21), "1.0e+21");
        assert_eq!(float_text(-3.25), "-3.25");
    }

    #[test]
    fn strings_are_quoted_only_when_needed() {
        for plain in [
            "cls",
            "bf16-mixed",
            "data/pbmc68k_reduced.h5ad",
            "./ckpt",
            "Homo sapiens",
        ] {
            assert_eq!(string_scalar(plain), plain);
        }
        for quoted in [
            "",
            "32",
            "1e-4",
            "true",
            "null",
            "~",
            "- x",
            "a: b",
            "#c",
            "x #y",
            " lead",
            "tail ",
            "multi\nline",
            "{}",
            "[a]",
            "*ref",
            "!tag",
            "'q'",
            "\"q\"",
            ".inf",
            "yes: no",
            "a,b",
        ] {
            assert!(
                string_scalar(quoted).starts_with('"'),
                "{quoted:?} was not quoted"
            );
        }
    }

    #[test]
    fn written_yaml_reads_back_to_the_same_tree() {
        let tree = json!({
            "s": "text", "q": "32", "n": null, "b": false, "i": -7, "f": 1e-4, "g": 2.0,
            "big": 1.5e300, "inf": ".inf", "empty_map": {}, "empty_list": [],
            "nested": {"a": {"b": [1, "two", {"c": 3, "d": [4, 5]}, [6, [7]], []]}},
            "list_of_maps": [{"name": "x", "params": {"k": "v"}}, "y"],
            "weird key: yes": "multi\nline \"quoted\" \\ text",
            "unicode": "Zellen – ü",
        });
        let text = to_yaml(&tree);
        let back = read(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        assert_eq!(back.root, tree, "\n{text}");
    }

    #[test]
    fn attach_lines_adds_the_line_of_known_paths() {
        let tree = read("model:\n  pooling: bad\n").unwrap();
        let mut errors = ConfigErrors::new("t.yaml");
        errors.push("model.pooling", "invalid value");
        errors.push("model.hidden_dim", "not in file");
        attach_lines(&mut errors, &tree.lines);
        assert_eq!(errors.errors[0].message, "invalid value (line 2)");
        assert_eq!(errors.errors[1].message, "not in file");
    }
}
