//! Checks a `new` request against the tree before anything is rendered:
//! the name and options on their own (`names`, `options`), then clashes
//! with what exists (another model or module of that name, a struct name
//! taken by forge-core's prelude or by another model, an option named like
//! a shared `ModelConfig` key or an existing field).

use anyhow::{Result, bail};

use crate::cli::NewRequest;
use crate::copy;
use crate::layout::{self, Site};
use crate::names::ModelName;
use crate::options::ModelOption;
use crate::render;

/// Names a model struct may not take: every name `use
/// forge_core::prelude::*` brings into a model file, in a workspace or a
/// plugin crate alike (`forge_names::PRELUDE_NAMES`; a test of forge-gen
/// checks it against forge-core's prelude), plus the generated test's
/// `Model` alias.
fn is_taken_type_name(name: &str) -> bool {
    name == "Model" || forge_names::PRELUDE_NAMES.contains(&name)
}

/// Checks a `new` request against the tree: the name, the options, and
/// clashes with what exists. Returns the validated name and options.
pub fn new(site: &Site<'_>, request: &NewRequest) -> Result<(ModelName, Vec<ModelOption>)> {
    let name = ModelName::parse(&request.name)?;
    let mut options: Vec<ModelOption> = vec![];
    for spec in &request.options {
        let option = ModelOption::parse(spec)?;
        if options.iter().any(|o| o.name == option.name) {
            bail!("--option `{}` is given twice", option.name);
        }
        options.push(option);
    }
    if request.from.is_some() && (request.head.is_some() || request.pooling.is_some()) {
        bail!(
            "--head and --pooling choose the blank template's defaults; with --from the model \
             keeps its own head and its config's pooling. Drop them, or drop --from"
        );
    }
    let models = layout::existing_models(site.tree, &site.target)?;
    let own_file = site.target.model_file(&name.snake);
    if let Some(other) = models
        .iter()
        .find(|m| m.name == name.snake && m.file != own_file)
    {
        bail!(
            "a model named `{}` already exists in {} (one registry name, one model); pick \
             another name",
            other.name,
            other.file
        );
    }
    let is_model_here = models.iter().any(|m| m.name == name.snake);
    if !is_model_here && layout::existing_modules(site.tree, &site.target)?.contains(&name.snake) {
        bail!(
            "`{}` is already a module in {}/ that is not a model; pick another name",
            name.snake,
            site.target.models_dir()
        );
    }
    if site.target.is_plugin() && (name.snake == "lib" || name.snake == "main") {
        bail!(
            "`{}` is the crate root's file name; pick another name",
            name.snake
        );
    }
    let struct_name = copy::planned_struct_name(site, request, &name)?;
    if is_taken_type_name(&struct_name) {
        bail!(
            "`{}` would become the struct `{struct_name}`, which is already a name in every \
             model file (forge_core::prelude); pick another name",
            name.snake
        );
    }
    for other in models.iter().filter(|m| m.name != name.snake) {
        let other_camel = ModelName::from_snake(&other.name).camel;
        if other.struct_name == struct_name || other_camel == name.camel {
            bail!(
                "`{}` clashes with the existing model `{}` ({}) after case conversion: both \
                 would be `{}`; pick a name that differs in more than underscores",
                name.snake,
                other.name,
                other.file,
                struct_name
            );
        }
    }
    if !options.is_empty() {
        let struct_fields = render::model_struct_fields(site, request, &name)?;
        for option in &options {
            if forge_names::MODEL_CONFIG_KEYS.contains(&option.name.as_str()) {
                bail!(
                    "--option `{}`: `{}` is a key every model shares (forge-core's \
                     ModelConfig); a model reads it with #[forge(config)], so drop this \
                     --option or pick another name",
                    option.spec,
                    option.name
                );
            }
            if struct_fields.contains(&option.name) {
                bail!(
                    "--option `{}`: the model struct already has a field `{}`; pick another \
                     name",
                    option.spec,
                    option.name
                );
            }
        }
    }
    Ok((name, options))
}
