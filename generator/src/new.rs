//! The plan of `forge-gen new`: the rendered output (`render.rs`) compared
//! with the tree, file by file. A generated file is `create`d, or
//! `identical`, or a `conflict` (`force` with `--force`); the entries for
//! existing files are inserted into their marker regions (`region.rs`),
//! and the file is `update`d, `identical` or in conflict. Re-running the
//! same request therefore plans nothing but `identical`.

use anyhow::Result;

use crate::cli::NewRequest;
use crate::header::conflict_note;
use crate::layout::Site;
use crate::plan::{Change, Plan, Status};
use crate::region::{self, EntryStatus};
use crate::render::{self, Item};
use crate::tree::{Tree, read_required};

/// The plan of `forge-gen new`.
pub fn plan(site: &Site<'_>, request: &NewRequest, force: bool) -> Result<Plan> {
    let output = render::render(site, request)?;
    plan_items(site.tree, &output.items, force)
}

fn plan_items(tree: &dyn Tree, items: &[Item], force: bool) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut done_files: Vec<&str> = vec![];
    for item in items {
        match item {
            Item::File(path, content) => {
                let before = tree.read(path)?;
                let (status, note) = match &before {
                    None => (Status::Create, None),
                    Some(b) if b == content => (Status::Identical, None),
                    Some(b) if force => (Status::Force, Some(conflict_note(b))),
                    Some(b) => (Status::Conflict, Some(conflict_note(b))),
                };
                plan.changes.push(Change {
                    path: path.clone(),
                    before,
                    after: Some(content.clone()),
                    status,
                    note,
                });
            }
            Item::Entry(first) => {
                if done_files.contains(&first.file) {
                    continue;
                }
                done_files.push(first.file);
                let text = read_required(tree, first.file, first.what)?;
                let mut current = text.clone();
                let mut forced_text = text.clone();
                let mut conflicts = vec![];
                let mut forced = false;
                for e in items.iter().filter_map(|i| match i {
                    Item::Entry(e) if e.file == first.file => Some(e),
                    _ => None,
                }) {
                    let out = region::insert(
                        e.file, &current, &e.anchor, e.kind, e.what, &e.key, &e.text, force,
                    )?;
                    match out.status {
                        EntryStatus::Conflict => conflicts.push(e.what),
                        EntryStatus::Forced => forced = true,
                        _ => {}
                    }
                    current = out.text;
                    forced_text = region::insert(
                        e.file,
                        &forced_text,
                        &e.anchor,
                        e.kind,
                        e.what,
                        &e.key,
                        &e.text,
                        true,
                    )?
                    .text;
                }
                let (status, after, note) = if !conflicts.is_empty() {
                    let note = format!(
                        "the entry for `{}` in {} differs from what forge-gen generates \
                         (edited by hand?)",
                        first.key,
                        conflicts.join(", ")
                    );
                    (Status::Conflict, forced_text, Some(note))
                } else if forced {
                    let note = format!("the entry for `{}` is replaced", first.key);
                    (Status::Force, current, Some(note))
                } else if current == text {
                    (Status::Identical, current, None)
                } else {
                    (Status::Update, current, None)
                };
                plan.changes.push(Change {
                    path: first.file.to_string(),
                    before: Some(text),
                    after: Some(after),
                    status,
                    note,
                });
            }
        }
    }
    Ok(plan)
}
