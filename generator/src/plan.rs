//! A plan: every file a command would touch, with its content before and
//! after and a status, computed before anything is written.
//!
//! Printing a plan (`--dry-run`) and applying it (`apply.rs`) both start
//! from this value; nothing here touches the disk.

use std::fmt::Write as _;

use similar::TextDiff;

/// What happens to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A new file.
    Create,
    /// An existing file gains (or loses) generated entries.
    Update,
    /// Already exactly as it would be generated: nothing to do.
    Identical,
    /// Exists with other content (hand-edited, or generated from other
    /// inputs); left alone unless `--force`.
    Conflict,
    /// A conflict overridden by `--force`: overwritten.
    Force,
    /// A generated file deleted by `remove`.
    Remove,
    /// Already absent (remove): nothing to do.
    Absent,
}

impl Status {
    /// The word printed in plans.
    pub fn word(self) -> &'static str {
        match self {
            Status::Create => "create",
            Status::Update => "update",
            Status::Identical => "identical",
            Status::Conflict => "conflict",
            Status::Force => "force",
            Status::Remove => "remove",
            Status::Absent => "absent",
        }
    }

    /// Whether applying the plan writes or deletes this file.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Status::Create | Status::Update | Status::Force | Status::Remove
        )
    }
}

/// One file of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path relative to the target root.
    pub path: String,
    /// Content now (`None`: no such file).
    pub before: Option<String>,
    /// Content after applying (`None`: deleted or never created). For a
    /// conflict, what `--force` would write.
    pub after: Option<String>,
    /// What happens.
    pub status: Status,
    /// Why, for conflicts and forced changes.
    pub note: Option<String>,
}

/// Every change of one command, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, one per file.
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether some file is in conflict (the plan must not be applied).
    pub fn has_conflicts(&self) -> bool {
        self.changes.iter().any(|c| c.status == Status::Conflict)
    }

    /// Whether applying the plan would change nothing.
    pub fn is_noop(&self) -> bool {
        !self.changes.iter().any(|c| c.status.writes())
    }

    /// The change of `path`, if the plan has one.
    pub fn get(&self, path: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.path == path)
    }

    /// One line per file: `  create  path` (and the note of conflicts).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let _ = writeln!(out, "  {:<9}  {}", c.status.word(), c.path);
            if let Some(note) = &c.note {
                let _ = writeln!(out, "             {note}");
            }
        }
        out
    }

    /// A unified diff of every file that would change (conflicts show what
    /// `--force` would do).
    pub fn diff(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            if matches!(c.status, Status::Identical | Status::Absent) {
                continue;
            }
            let before = c.before.as_deref().unwrap_or("");
            let after = c.after.as_deref().unwrap_or("");
            let old = if c.before.is_some() {
                format!("a/{}", c.path)
            } else {
                "/dev/null".to_string()
            };
            let new = if c.after.is_some() {
                format!("b/{}", c.path)
            } else {
                "/dev/null".to_string()
            };
            let text = TextDiff::from_lines(before, after)
                .unified_diff()
                .context_radius(3)
                .header(&old, &new)
                .to_string();
            out.push_str(&text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_diff() {
        let plan = Plan {
            changes: vec![
                Change {
                    path: "a.rs".into(),
                    before: None,
                    after: Some("x\n".into()),
                    status: Status::Create,
                    note: None,
                },
                Change {
                    path: "b.rs".into(),
                    before: Some("y\n".into()),
                    after: Some("y\n".into()),
                    status: Status::Identical,
                    note: None,
                },
            ],
        };
        assert_eq!(plan.summary(), "  create     a.rs\n  identical  b.rs\n");
        assert_eq!(
            plan.diff(),
            "--- /dev/null\n+++ b/a.rs\n@@ -0,0 +1 @@\n+x\n"
        );
        assert!(!plan.is_noop() && !plan.has_conflicts());
    }
}
