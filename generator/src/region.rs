//! Marker regions: the parts of hand-written files (module lists, the config
//! schema, the test list, the models page) where forge-gen keeps one entry
//! per model, between a `forge-gen: TAG begin` line and a `forge-gen: TAG
//! end` line.
//!
//! Entries are kept in alphabetical order of their key (the model name).
//! Inserting an entry that is already there, byte for byte, changes nothing;
//! one that is there with other text is a conflict (replaced only when
//! forced). Removing an entry restores the region exactly as it was before
//! the entry was inserted. A missing or doubled marker is an error that
//! names the file and the marker line to restore; nothing is ever inserted
//! at a guessed position.
//!
//! Text outside entries (comments, blank lines inside the region) is left
//! alone.

use anyhow::{Result, bail};

/// A pair of marker lines, e.g. `// forge-gen: model-modules begin` and
/// `// forge-gen: model-modules end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The tag between `forge-gen:` and `begin`/`end`.
    pub tag: &'static str,
    /// Comment style: `//` (Rust) or `<!--` (Markdown).
    pub style: &'static str,
}

impl Anchor {
    /// The anchor `tag` in comment style `style`.
    pub const fn new(tag: &'static str, style: &'static str) -> Self {
        Anchor { tag, style }
    }

    fn line(&self, which: &str) -> String {
        match self.style {
            "<!--" => format!("<!-- forge-gen: {} {which} -->", self.tag),
            style => format!("{style} forge-gen: {} {which}", self.tag),
        }
    }

    /// The begin marker line, without indentation.
    pub fn begin(&self) -> String {
        self.line("begin")
    }

    /// The end marker line, without indentation.
    pub fn end(&self) -> String {
        self.line("end")
    }
}

/// How a region's entries are delimited.
#[derive(Debug, Clone, Copy)]
pub enum Entries {
    /// One line per entry; the function returns the key of an entry line
    /// (`None` for other lines).
    Lines(fn(&str) -> Option<String>),
    /// Multi-line entries, each starting at a line for which `start`
    /// returns its key and running to the next entry or the end marker;
    /// with `blank_separated`, entries are separated by one blank line.
    Blocks {
        /// Key of an entry's first line.
        start: fn(&str) -> Option<String>,
        /// Entries are separated by a blank line.
        blank_separated: bool,
    },
}

/// What inserting or removing an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// The entry was added (insert) or taken out (remove).
    Changed,
    /// Insert: already there, identical. Remove: not there.
    Unchanged,
    /// There with other text (hand-edited or generated differently); left
    /// as it was.
    Conflict,
    /// There with other text, replaced or removed because forced.
    Forced,
}

/// The result of an insert or remove: the whole new file text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The file after the edit (equal to the input unless changed or
    /// forced).
    pub text: String,
    /// What happened.
    pub status: EntryStatus,
    /// The entry text that was there before, if any.
    pub existing: Option<String>,
}

struct Region {
    /// Byte offset just after the begin line.
    start: usize,
    /// Byte offset of the start of the end line.
    end: usize,
}

#[derive(Debug)]
struct Entry {
    key: String,
    start: usize,
    /// End of the entry's own text (trailing blank lines excluded).
    content_end: usize,
    /// Start of the next entry, or the region end.
    end: usize,
}

fn find_region(file: &str, text: &str, anchor: &Anchor, what: &str) -> Result<Region> {
    let (begin, end) = (anchor.begin(), anchor.end());
    let restore = format!(
        "forge-gen keeps {what} between the lines `{begin}` and `{end}` in {file}; put both \
         lines back (once each, begin before end) and run forge-gen again"
    );
    let mut begins = vec![];
    let mut ends = vec![];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed == begin {
            begins.push((offset, offset + line.len()));
        } else if trimmed == end {
            ends.push(offset);
        }
        offset += line.len();
    }
    match (begins.as_slice(), ends.as_slice()) {
        ([(_, start)], [end_at]) if start <= end_at => Ok(Region {
            start: *start,
            end: *end_at,
        }),
        ([], _) => bail!("{file}: marker line `{begin}` not found. {restore}"),
        (_, []) => bail!("{file}: marker line `{end}` not found. {restore}"),
        ([_], [_]) => bail!("{file}: `{end}` comes before `{begin}`. {restore}"),
        _ => bail!(
            "{file}: the markers `{begin}` / `{end}` appear {} / {} times. {restore}",
            begins.len(),
            ends.len()
        ),
    }
}

fn entries(text: &str, region: &Region, kind: Entries) -> Vec<Entry> {
    let mut out: Vec<Entry> = vec![];
    let mut offset = region.start;
    for line in text[region.start..region.end].split_inclusive('\n') {
        let line_end = offset + line.len();
        match kind {
            Entries::Lines(key) => {
                if let Some(key) = key(line.trim()) {
                    out.push(Entry {
                        key,
                        start: offset,
                        content_end: line_end,
                        end: line_end,
                    });
                }
            }
            Entries::Blocks { start, .. } => {
                if let Some(key) = start(line.trim()) {
                    if let Some(last) = out.last_mut() {
                        last.end = offset;
                    }
                    out.push(Entry {
                        key,
                        start: offset,
                        content_end: line_end,
                        end: region.end,
                    });
                } else if let Some(last) = out.last_mut()
                    && !line.trim().is_empty()
                {
                    last.content_end = line_end;
                }
            }
        }
        offset = line_end;
    }
    out
}

/// The keys of the entries in the region of `anchor` in `text`.
pub fn keys(
    file: &str,
    text: &str,
    anchor: &Anchor,
    kind: Entries,
    what: &str,
) -> Result<Vec<String>> {
    let region = find_region(file, text, anchor, what)?;
    Ok(entries(text, &region, kind)
        .into_iter()
        .map(|e| e.key)
        .collect())
}

/// The text of the entry `key`, if there is one.
pub fn entry_text(
    file: &str,
    text: &str,
    anchor: &Anchor,
    kind: Entries,
    what: &str,
    key: &str,
) -> Result<Option<String>> {
    let region = find_region(file, text, anchor, what)?;
    Ok(entries(text, &region, kind)
        .into_iter()
        .find(|e| e.key == key)
        .map(|e| text[e.start..e.content_end].to_string()))
}

/// Inserts `entry` (whole lines, ending in a newline) under `key`, in
/// alphabetical position. `what` names the region in errors ("model
/// modules").
#[allow(clippy::too_many_arguments)]
pub fn insert(
    file: &str,
    text: &str,
    anchor: &Anchor,
    kind: Entries,
    what: &str,
    key: &str,
    entry: &str,
    force: bool,
) -> Result<Outcome> {
    debug_assert!(entry.ends_with('\n'));
    let region = find_region(file, text, anchor, what)?;
    let all = entries(text, &region, kind);
    if let Some(found) = all.iter().find(|e| e.key == key) {
        let existing = text[found.start..found.content_end].to_string();
        if existing == entry {
            return Ok(Outcome {
                text: text.to_string(),
                status: EntryStatus::Unchanged,
                existing: Some(existing),
            });
        }
        if !force {
            return Ok(Outcome {
                text: text.to_string(),
                status: EntryStatus::Conflict,
                existing: Some(existing),
            });
        }
        let new = format!(
            "{}{entry}{}",
            &text[..found.start],
            &text[found.content_end..]
        );
        return Ok(Outcome {
            text: new,
            status: EntryStatus::Forced,
            existing: Some(existing),
        });
    }
    let blank = matches!(
        kind,
        Entries::Blocks {
            blank_separated: true,
            ..
        }
    );
    let (at, insertion) = match all.iter().find(|e| e.key.as_str() > key) {
        Some(next) if blank => (next.start, format!("{entry}\n")),
        Some(next) => (next.start, entry.to_string()),
        None => match all.last() {
            Some(last) if blank => (last.content_end, format!("\n{entry}")),
            Some(last) => (last.end, entry.to_string()),
            None => (region.start, entry.to_string()),
        },
    };
    Ok(Outcome {
        text: format!("{}{insertion}{}", &text[..at], &text[at..]),
        status: EntryStatus::Changed,
        existing: None,
    })
}

/// Removes the entry `key`. With `expected`, an entry whose text differs is
/// a conflict (removed only when forced); without, any entry of that key is
/// removed.
#[allow(clippy::too_many_arguments)]
pub fn remove(
    file: &str,
    text: &str,
    anchor: &Anchor,
    kind: Entries,
    what: &str,
    key: &str,
    expected: Option<&str>,
    force: bool,
) -> Result<Outcome> {
    let region = find_region(file, text, anchor, what)?;
    let all = entries(text, &region, kind);
    let Some(index) = all.iter().position(|e| e.key == key) else {
        return Ok(Outcome {
            text: text.to_string(),
            status: EntryStatus::Unchanged,
            existing: None,
        });
    };
    let found = &all[index];
    let existing = text[found.start..found.content_end].to_string();
    let mut status = EntryStatus::Changed;
    if expected.is_some_and(|want| want != existing) {
        if !force {
            return Ok(Outcome {
                text: text.to_string(),
                status: EntryStatus::Conflict,
                existing: Some(existing),
            });
        }
        status = EntryStatus::Forced;
    }
    let blank = matches!(
        kind,
        Entries::Blocks {
            blank_separated: true,
            ..
        }
    );
    let (from, to) = if !blank || index + 1 < all.len() {
        (found.start, found.end)
    } else if index > 0 {
        // The last entry: take the separator before it with it.
        let prev_end = all[index - 1].content_end;
        (prev_end, found.content_end)
    } else {
        (found.start, found.content_end)
    };
    Ok(Outcome {
        text: format!("{}{}", &text[..from], &text[to..]),
        status,
        existing: Some(existing),
    })
}

/// Key of a `pub mod name;` line.
pub fn pub_mod_key(line: &str) -> Option<String> {
    ident_between(line, "pub mod ", ";")
}

/// Key of a `mod name;` line.
pub fn mod_key(line: &str) -> Option<String> {
    ident_between(line, "mod ", ";")
}

/// Key of a `pub use name::Struct;` line (the module).
pub fn pub_use_key(line: &str) -> Option<String> {
    let rest = line.strip_prefix("pub use ")?;
    let (module, _) = rest.split_once("::")?;
    is_ident(module).then(|| module.to_string())
}

/// Key of a docs section heading ``## `name` ``.
pub fn docs_key(line: &str) -> Option<String> {
    let rest = line.strip_prefix("## `")?;
    let (name, tail) = rest.split_once('`')?;
    (tail.is_empty() && is_ident(name)).then(|| name.to_string())
}

fn ident_between(line: &str, prefix: &str, suffix: &str) -> Option<String> {
    let name = line.strip_prefix(prefix)?.strip_suffix(suffix)?;
    is_ident(name).then(|| name.to_string())
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODS: Anchor = Anchor::new("model-modules", "//");
    const DOCS: Anchor = Anchor::new("model-docs", "<!--");
    const LINES: Entries = Entries::Lines(pub_mod_key);
    const SECTIONS: Entries = Entries::Blocks {
        start: docs_key,
        blank_separated: true,
    };

    fn ins(text: &str, key: &str, entry: &str) -> Outcome {
        insert("f", text, &MODS, LINES, "modules", key, entry, false).unwrap()
    }

    #[test]
    fn lines_insert_sorted_idempotent_and_remove_exactly() {
        let before = "x\n// forge-gen: model-modules begin\npub mod a;\npub mod c;\n// forge-gen: model-modules end\ny\n";
        let out = ins(before, "b", "pub mod b;\n");
        assert_eq!(out.status, EntryStatus::Changed);
        assert!(out.text.contains("pub mod a;\npub mod b;\npub mod c;\n"));
        let again = ins(&out.text, "b", "pub mod b;\n");
        assert_eq!(
            (again.status, again.text.as_str()),
            (EntryStatus::Unchanged, out.text.as_str())
        );
        let last = ins(before, "d", "pub mod d;\n");
        assert!(last.text.contains("pub mod c;\npub mod d;\n// forge-gen"));
        for (key, text) in [("b", &out.text), ("d", &last.text)] {
            let removed = remove(
                "f",
                text,
                &MODS,
                LINES,
                "m",
                key,
                Some(&format!("pub mod {key};\n")),
                false,
            )
            .unwrap();
            assert_eq!(removed.text, before);
        }
        let empty = "// forge-gen: model-modules begin\n// forge-gen: model-modules end\n";
        let one = ins(empty, "a", "pub mod a;\n");
        assert_eq!(
            remove("f", &one.text, &MODS, LINES, "m", "a", None, false)
                .unwrap()
                .text,
            empty
        );
    }

    #[test]
    fn blocks_keep_one_blank_line_between_sections() {
        let before = "<!-- forge-gen: model-docs begin -->\n## `b`\n\nB.\n\n## `d`\n\nD.\n<!-- forge-gen: model-docs end -->\n";
        for (key, after) in [
            ("a", "## `a`\n\nA.\n\n## `b`"),
            ("c", "B.\n\n## `c`\n\nC.\n\n## `d`"),
            ("e", "D.\n\n## `e`\n\nE.\n<!--"),
        ] {
            let entry = format!("## `{key}`\n\n{}.\n", key.to_uppercase());
            let out = insert("f", before, &DOCS, SECTIONS, "docs", key, &entry, false).unwrap();
            assert!(out.text.contains(after), "{key}: {}", out.text);
            let again =
                insert("f", &out.text, &DOCS, SECTIONS, "docs", key, &entry, false).unwrap();
            assert_eq!(again.status, EntryStatus::Unchanged);
            let back = remove(
                "f",
                &out.text,
                &DOCS,
                SECTIONS,
                "docs",
                key,
                Some(&entry),
                false,
            )
            .unwrap();
            assert_eq!(back.text, before, "{key}");
        }
    }

    #[test]
    fn edited_entries_conflict_unless_forced() {
        let text = "// forge-gen: model-modules begin\npub mod a; // mine\n// forge-gen: model-modules end\n";
        let key = |l: &str| l.strip_prefix("pub mod a;").map(|_| "a".to_string());
        let kind = Entries::Lines(key);
        let out = insert("f", text, &MODS, kind, "m", "a", "pub mod a;\n", false).unwrap();
        assert_eq!(
            (out.status, out.text.as_str()),
            (EntryStatus::Conflict, text)
        );
        let forced = insert("f", text, &MODS, kind, "m", "a", "pub mod a;\n", true).unwrap();
        assert_eq!(forced.status, EntryStatus::Forced);
        assert!(forced.text.contains("\npub mod a;\n"));
        let gone = remove(
            "f",
            text,
            &MODS,
            kind,
            "m",
            "a",
            Some("pub mod a;\n"),
            false,
        )
        .unwrap();
        assert_eq!(gone.status, EntryStatus::Conflict);
    }

    #[test]
    fn missing_or_doubled_markers_fail_clearly() {
        let no_begin = "pub mod a;\n// forge-gen: model-modules end\n";
        let err = insert(
            "src/m.rs",
            no_begin,
            &MODS,
            LINES,
            "model modules",
            "b",
            "pub mod b;\n",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("src/m.rs: marker line `// forge-gen: model-modules begin` not found"),
            "{err}"
        );
        assert!(err.contains("put both lines back"), "{err}");
        let doubled = "// forge-gen: model-modules begin\n// forge-gen: model-modules begin\n// forge-gen: model-modules end\n";
        let err = insert("f", doubled, &MODS, LINES, "m", "b", "pub mod b;\n", false).unwrap_err();
        assert!(err.to_string().contains("appear 2 / 1 times"), "{err}");
    }
}
