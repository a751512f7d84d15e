//! forge-gen: a new forge model in one command, following the five steps of
//! scModelForge's "implement a new model" guide (model file, registration,
//! config fields, tests, docs), then verifying the result.
//!
//! forge-gen is a source tool: it reads and writes source files and never
//! links forge-core or libtorch. Every command first computes a [`Plan`]
//! (a pure function of its inputs and the files it reads), then prints it
//! (`--dry-run`, with a diff) or applies it all or nothing ([`apply`]);
//! re-running a command plans nothing but `identical` files.
//!
//! Modules, by concern, in the order a command uses them:
//! - the command line: [`cli`] (one definition of every argument and value,
//!   also used to read back the command recorded in a file's [`header`]),
//!   run by [`commands`];
//! - validating input: [`names`], [`options`], then [`validate`] against the
//!   tree;
//! - where files live and reading them: [`layout`], [`tree`], [`entries`]
//!   (the one-entry-per-model regions of existing files);
//! - reading and editing sources: [`rust_source`] (Rust, with syn),
//!   [`yaml`] (configs), [`region`] (marker regions), [`rename`]
//!   (`--from`'s renaming), [`rustfmt`];
//! - what to write: [`render`] (tera [`templates`]) and [`copy`] (`--from`);
//! - plans: [`new`] and [`remove`] produce a [`plan`], [`apply`] writes it,
//!   [`verify`] runs fmt, clippy and the new tests;
//! - [`check`] for `list` and `check`.

pub mod apply;
pub mod check;
pub mod cli;
pub mod commands;
pub mod copy;
pub mod entries;
pub mod header;
pub mod layout;
pub mod names;
pub mod new;
pub mod options;
pub mod plan;
pub mod region;
pub mod remove;
pub mod rename;
pub mod render;
pub mod rust_source;
pub mod rustfmt;
pub mod templates;
pub mod tree;
pub mod validate;
pub mod verify;
pub mod yaml;

pub use plan::Plan;
