//! forge-gen: a new forge model in one command, following the five steps of
//! scModelForge's "implement a new model" guide (model file, registration,
//! config fields, tests, docs), then verifying the result.
//!
//! forge-gen is a text tool: it reads and writes source files and never
//! links forge-core or libtorch. Every command first computes a [`Plan`]
//! (a pure function of its inputs and the files it reads), then prints it
//! (`--dry-run`) or applies it all or nothing ([`apply`]).
//!
//! Modules, in the order a command uses them: `names` and `options`
//! (validating input), `layout` and `tree` (where files live, reading
//! them), `generate` (what to write; `templates`, `rename`, `region` and
//! `header` do the detail), `plan`, `apply`, `verify`, and `check` for
//! `list` and `check`. The command-line front end is `commands`.

pub mod apply;
pub mod check;
pub mod commands;
pub mod generate;
pub mod header;
pub mod layout;
pub mod names;
pub mod options;
pub mod plan;
pub mod region;
pub mod rename;
pub mod templates;
pub mod tree;
pub mod verify;

pub use plan::Plan;
