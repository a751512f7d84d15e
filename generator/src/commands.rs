//! The commands behind the `forge-gen` binary: each takes parsed
//! arguments, prints what it does for the person at the terminal, and
//! returns whether it succeeded. The arguments are defined in `cli.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::apply::{Faults, apply};
use crate::check;
use crate::cli::{Cli, Command, NewRequest};
use crate::layout::{self, Site, Target};
use crate::plan::{Plan, Status};
use crate::tree::FsTree;
use crate::verify;
use crate::{new as new_plan, remove as remove_plan};

/// Runs a parsed command line; the binary's exit code.
pub fn run(cli: Cli) -> ExitCode {
    let location = Location {
        root: cli.root,
        plugin: cli.plugin,
    };
    let result = match cli.command {
        Command::New(args) => {
            let flags = NewFlags {
                dry_run: args.dry_run,
                force: args.force,
                no_verify: args.no_verify,
            };
            new(&location, &args.request, flags)
        }
        Command::Remove(args) => remove(&location, &args.name, args.dry_run, args.force),
        Command::List => list(&location),
        Command::Check => check(&location),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where a command works: `--root` / the enclosing workspace, or
/// `--crate PATH`.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// `--root PATH`.
    pub root: Option<PathBuf>,
    /// `--crate PATH`.
    pub plugin: Option<PathBuf>,
}

struct Resolved {
    tree: FsTree,
    target: Target,
    workspace: Option<FsTree>,
}

impl Resolved {
    fn site(&self) -> Site<'_> {
        Site {
            tree: &self.tree,
            target: self.target.clone(),
            workspace: self.workspace.as_ref().map(|w| w as &dyn crate::tree::Tree),
        }
    }
}

fn resolve(location: &Location) -> Result<Resolved> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    match &location.plugin {
        Some(path) => {
            let tree = FsTree::new(path.clone());
            let ident = layout::plugin_crate_ident(&tree)?;
            let workspace = layout::find_workspace_root(location.root.as_deref(), &cwd)
                .ok()
                .map(FsTree::new);
            Ok(Resolved {
                tree,
                target: Target::Plugin { ident },
                workspace,
            })
        }
        None => {
            let root = layout::find_workspace_root(location.root.as_deref(), &cwd)?;
            Ok(Resolved {
                tree: FsTree::new(root),
                target: Target::Workspace,
                workspace: None,
            })
        }
    }
}

/// Options of `new` that are not part of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewFlags {
    /// Print the plan and diff, write nothing.
    pub dry_run: bool,
    /// Overwrite conflicts.
    pub force: bool,
    /// Skip fmt/clippy/tests after writing.
    pub no_verify: bool,
}

fn print_plan(title: &str, plan: &Plan, diff: bool) {
    println!("{title}");
    print!("{}", plan.summary());
    if diff {
        let text = plan.diff();
        if !text.is_empty() {
            println!();
            print!("{text}");
        }
    }
}

fn faults_from_env() -> Faults {
    Faults {
        fail_at_step: std::env::var("FORGE_GEN_FAIL_AT_STEP")
            .ok()
            .and_then(|v| v.parse().ok()),
    }
}

/// `forge-gen new`.
pub fn new(location: &Location, request: &NewRequest, flags: NewFlags) -> Result<bool> {
    let resolved = resolve(location)?;
    let site = resolved.site();
    let plan = new_plan::plan(&site, request, flags.force)?;
    let name = &request.name;
    if flags.dry_run {
        print_plan(
            &format!("forge-gen new {name} (dry run: nothing is written)"),
            &plan,
            true,
        );
        if plan.has_conflicts() {
            println!("\nconflicts: a real run would refuse; --force overwrites them");
        }
        return Ok(!plan.has_conflicts());
    }
    if plan.has_conflicts() {
        print_plan(&format!("forge-gen new {name}: refused"), &plan, false);
        let exists = plan
            .get(&site.target.model_file(name))
            .is_some_and(|c| c.before.is_some());
        let why = if exists {
            format!("model `{name}` already exists and differs from what this command generates")
        } else {
            "some files differ from what forge-gen would generate".to_string()
        };
        bail!(
            "{why}; nothing was written. See the changes with --dry-run, or pass --force to \
             overwrite (hand edits in those files are lost)"
        );
    }
    if plan.is_noop() {
        print_plan(
            &format!("forge-gen new {name}: nothing to do"),
            &plan,
            false,
        );
        return Ok(true);
    }
    apply(resolved.tree_root(), &plan, faults_from_env())?;
    print_plan(&format!("forge-gen new {name}"), &plan, false);
    print_next_steps(&site.target, name);
    if flags.no_verify {
        return Ok(true);
    }
    let rust_files: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.status, Status::Create | Status::Force) && c.path.ends_with(".rs"))
        .map(|c| c.path.clone())
        .collect();
    Ok(verify::run(
        resolved.tree_root(),
        &site.target,
        name,
        &rust_files,
    ))
}

impl Resolved {
    fn tree_root(&self) -> &Path {
        crate::tree::Tree::root(&self.tree)
    }
}

fn print_next_steps(target: &Target, name: &str) {
    println!("\nnext:");
    println!(
        "  - edit {} (the architecture is yours)",
        target.model_file(name)
    );
    match target {
        Target::Workspace => {
            println!("  - cargo test --test integration models::{name}::");
            println!("  - forge models   (lists `{name}`)");
        }
        Target::Plugin { ident } => {
            println!("  - cargo test --test {name}");
            println!(
                "  - in the binary that should know `{name}`, depend on this crate and link it: \
                 `use {ident} as _;` (registration happens at link time)"
            );
        }
    }
}

/// `forge-gen remove`.
pub fn remove(location: &Location, name: &str, dry_run: bool, force: bool) -> Result<bool> {
    let resolved = resolve(location)?;
    let site = resolved.site();
    let plan = remove_plan::plan(&site, name, force)?;
    if dry_run {
        print_plan(
            &format!("forge-gen remove {name} (dry run: nothing is written)"),
            &plan,
            true,
        );
        return Ok(!plan.has_conflicts());
    }
    if plan.has_conflicts() {
        print_plan(&format!("forge-gen remove {name}: refused"), &plan, false);
        bail!(
            "some of `{name}`'s files or entries were edited since forge-gen generated them (or \
             were not generated by it); nothing was removed. --force removes them anyway"
        );
    }
    apply(resolved.tree_root(), &plan, faults_from_env())?;
    print_plan(&format!("forge-gen remove {name}"), &plan, false);
    Ok(true)
}

/// `forge-gen list`.
pub fn list(location: &Location) -> Result<bool> {
    let resolved = resolve(location)?;
    let report = check::inspect(&resolved.tree, &resolved.target)?;
    print!("{}", report.table());
    Ok(true)
}

/// `forge-gen check`.
pub fn check(location: &Location) -> Result<bool> {
    let resolved = resolve(location)?;
    let report = check::inspect(&resolved.tree, &resolved.target)?;
    let missing = report.missing(&resolved.target);
    if missing.is_empty() {
        println!(
            "forge-gen check: {} models, each registered, tested, documented and configured",
            report.models.len()
        );
        return Ok(true);
    }
    eprintln!("forge-gen check: {} problem(s):", missing.len());
    for line in &missing {
        eprintln!("  - {line}");
    }
    Ok(false)
}
