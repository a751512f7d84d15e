//! The plan of `forge-gen remove NAME`: the files `new` created go (when
//! unedited), and the entries it inserted are taken out. When the model
//! file's header records the `new` command, that command is rendered again
//! and exactly its entries are removed, so the tree ends byte for byte as
//! before `new`; without a header, entries are found by the model's name.

use anyhow::{Result, bail};

use crate::cli::NewRequest;
use crate::entries::{self, EntrySpec};
use crate::header::{self, conflict_note};
use crate::layout::{Site, declared_model_struct};
use crate::names::ModelName;
use crate::options::ModelOption;
use crate::plan::{Change, Plan, Status};
use crate::region::{self, EntryStatus};
use crate::render::{Item, Output, render_unchecked};

/// The plan of `forge-gen remove NAME`.
pub fn plan(site: &Site<'_>, name: &str, force: bool) -> Result<Plan> {
    let name = ModelName::parse(name)?;
    let target = &site.target;
    let model_path = target.model_file(&name.snake);
    let model_text = site.tree.read(&model_path)?;
    let recorded = model_text
        .as_deref()
        .and_then(header::read)
        .map(|h| NewRequest::from_args(&h.command));
    // What `new` inserted, when the model file says how it was generated.
    let expected: Option<Output> = match recorded {
        Some(Ok(request)) if request.name == name.snake => {
            let options: Vec<ModelOption> = request
                .options
                .iter()
                .map(|s| ModelOption::parse(s))
                .collect::<Result<_, _>>()?;
            match render_unchecked(site, &request, name.clone(), &options) {
                Ok(output) => Some(output),
                Err(_) if force => None,
                Err(err) => {
                    return Err(err.context(format!(
                        "cannot re-create what `forge-gen new {}` inserted, to remove exactly \
                         that; `remove --force` removes its entries by name instead",
                        name.snake
                    )));
                }
            }
        }
        _ => None,
    };
    let struct_name = match model_text
        .as_deref()
        .map(|text| declared_model_struct(&model_path, text, &name.snake))
    {
        Some(Ok(found)) => found,
        None | Some(Err(_)) if force => None,
        Some(Err(err)) => {
            return Err(err.context(format!(
                "cannot tell which struct `{}` declares; `remove --force` removes its entries \
                 by name",
                name.snake
            )));
        }
        None => None,
    }
    .unwrap_or_else(|| name.camel.clone());
    let entries: Vec<EntrySpec> = match &expected {
        Some(output) => output
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Entry(e) => Some(e.clone()),
                Item::File(..) => None,
            })
            .collect(),
        None => entries::structural(target, &name, &struct_name),
    };
    let exact = expected.is_some();

    let mut plan = Plan::default();
    let files = [
        model_path,
        target.test_file(&name.snake),
        target.config_file(&name.snake),
    ];
    let mut entry_files: Vec<&'static str> = vec![];
    for e in &entries {
        if !entry_files.contains(&e.file) {
            entry_files.push(e.file);
        }
    }
    for path in &files {
        let before = site.tree.read(path)?;
        let (status, note) = match &before {
            None => (Status::Absent, None),
            Some(b) if header::is_pristine(b) => (Status::Remove, None),
            Some(b) if force => (Status::Force, Some(conflict_note(b))),
            Some(b) => (Status::Conflict, Some(conflict_note(b))),
        };
        plan.changes.push(Change {
            path: path.clone(),
            before,
            after: None,
            status,
            note,
        });
    }
    for file in entry_files {
        let Some(text) = site.tree.read(file)? else {
            continue;
        };
        let mut current = text.clone();
        let mut forced_text = text.clone();
        let mut conflict = false;
        let mut forced = false;
        for e in entries.iter().filter(|e| e.file == file) {
            let want = exact.then_some(e.text.as_str());
            let out = region::remove(
                file, &current, &e.anchor, e.kind, e.what, &e.key, want, force,
            )?;
            conflict |= out.status == EntryStatus::Conflict;
            forced |= out.status == EntryStatus::Forced;
            current = out.text;
            forced_text = region::remove(
                file,
                &forced_text,
                &e.anchor,
                e.kind,
                e.what,
                &e.key,
                want,
                true,
            )?
            .text;
        }
        let (status, after, note) = if conflict {
            let note = format!(
                "the entry for `{}` differs from what forge-gen inserted (edited by hand?)",
                name.snake
            );
            (Status::Conflict, forced_text, Some(note))
        } else if forced {
            (
                Status::Force,
                current,
                Some("an edited entry is removed".to_string()),
            )
        } else if current == text {
            (Status::Identical, current, None)
        } else {
            (Status::Update, current, None)
        };
        plan.changes.push(Change {
            path: file.to_string(),
            before: Some(text),
            after: Some(after),
            status,
            note,
        });
    }
    if plan
        .changes
        .iter()
        .all(|c| matches!(c.status, Status::Absent | Status::Identical))
    {
        bail!(
            "no model `{}` to remove: no {} and no entries for it",
            name.snake,
            target.model_file(&name.snake)
        );
    }
    Ok(plan)
}
