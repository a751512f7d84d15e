//! The entries forge-gen keeps in existing files, one per model: which
//! marker region of which file, how its entries are delimited, and the
//! text of a model's entry. `new` inserts them, `remove` takes them out,
//! and `check` reads the regions through the same definitions.

use crate::layout::{self, Target};
use crate::names::ModelName;
use crate::region::{self, Anchor, Entries};

/// One entry to insert into (or remove from) an existing file.
#[derive(Debug, Clone)]
pub struct EntrySpec {
    /// File holding the region.
    pub file: &'static str,
    /// Its markers.
    pub anchor: Anchor,
    /// How entries are delimited.
    pub kind: Entries,
    /// What the region holds, for messages.
    pub what: &'static str,
    /// The model name.
    pub key: String,
    /// The entry's text.
    pub text: String,
}

/// The regions of existing files that hold one entry per model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// `pub mod NAME;` lines in the models module.
    Modules,
    /// `pub use NAME::Struct;` lines (workspace).
    Exports,
    /// `mod NAME;` lines of the test list (workspace).
    Tests,
    /// Sections of the model docs (workspace).
    Docs,
}

impl Region {
    /// Every region, in the order plans list them.
    pub const ALL: [Region; 4] = [
        Region::Modules,
        Region::Exports,
        Region::Tests,
        Region::Docs,
    ];

    /// The file holding this region in `target`, if it has one.
    pub fn file(self, target: &Target) -> Option<&'static str> {
        match self {
            Region::Modules => Some(target.module_list()),
            Region::Exports => target.exports(),
            Region::Tests => target.test_list(),
            Region::Docs => target.docs(),
        }
    }

    /// Its marker lines.
    pub fn anchor(self) -> Anchor {
        match self {
            Region::Modules => layout::MODULES,
            Region::Exports => layout::EXPORTS,
            Region::Tests => layout::TESTS,
            Region::Docs => layout::DOCS,
        }
    }

    /// How its entries are delimited.
    pub fn kind(self) -> Entries {
        match self {
            Region::Modules => Entries::Lines(region::pub_mod_key),
            Region::Exports => Entries::Lines(region::pub_use_key),
            Region::Tests => Entries::Lines(region::mod_key),
            Region::Docs => Entries::Blocks {
                start: region::docs_key,
                blank_separated: true,
            },
        }
    }

    /// What it holds, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Region::Modules => "the model modules",
            Region::Exports => "the model re-exports",
            Region::Tests => "the model test modules",
            Region::Docs => "the model sections",
        }
    }

    /// The entry of model `key` in this region of `file`.
    pub fn entry(self, file: &'static str, key: &str, text: String) -> EntrySpec {
        EntrySpec {
            file,
            anchor: self.anchor(),
            kind: self.kind(),
            what: self.what(),
            key: key.to_string(),
            text,
        }
    }
}

/// Entries of model `name` located by key alone (when the model file does
/// not say how it was generated): each region the target has.
pub fn structural(target: &Target, name: &ModelName, struct_name: &str) -> Vec<EntrySpec> {
    let key = &name.snake;
    Region::ALL
        .into_iter()
        .filter_map(|region| {
            let text = match region {
                Region::Modules => format!("pub mod {key};\n"),
                Region::Exports => format!("pub use {key}::{struct_name};\n"),
                Region::Tests => format!("mod {key};\n"),
                Region::Docs => String::new(),
            };
            Some(region.entry(region.file(target)?, key, text))
        })
        .collect()
}
