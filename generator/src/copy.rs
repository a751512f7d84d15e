//! `--from`: a copy of an existing model (workspace or plugin crate) under
//! a new name. The model file, its test, its example config and its docs
//! section are renamed (`rename.rs`); `--option`s are added to the copy's
//! struct and options declaration (`rust_source.rs`) and to its config
//! (`yaml.rs`); in a plugin crate, forge-core's paths are rewritten; the
//! Rust files are then formatted (`rustfmt.rs`).

use anyhow::{Context as _, Result, bail};
use tera::Context;

use crate::cli::NewRequest;
use crate::entries::Region;
use crate::header;
use crate::layout::{self, ExistingModel, Site, Target};
use crate::names::ModelName;
use crate::options::ModelOption;
use crate::region;
use crate::rename::Renamer;
use crate::render::Rendered;
use crate::rust_source;
use crate::rustfmt::rustfmt;
use crate::templates::render as render_template;
use crate::tree::{Tree, read_required};
use crate::yaml;

/// A model to copy with `--from`, with the site it lives in.
struct Source<'a> {
    model: ExistingModel,
    text: String,
    tree: &'a dyn Tree,
    target: Target,
}

/// Field names of the struct of the model `--from` names.
pub fn model_struct_fields(site: &Site<'_>, request: &NewRequest) -> Result<Vec<String>> {
    let Some(from) = &request.from else {
        return Ok(vec![]);
    };
    let source = find_source(site, from)?;
    let text = header::strip(&source.text);
    rust_source::struct_fields(&source.model.file, &text, &source.model.struct_name)
}

/// The struct name the new model gets: its CamelCase name, or for `--from`
/// the copied struct's name renamed.
pub fn planned_struct_name(
    site: &Site<'_>,
    request: &NewRequest,
    name: &ModelName,
) -> Result<String> {
    let Some(from) = &request.from else {
        return Ok(name.camel.clone());
    };
    let source = find_source(site, from)?;
    let old = ModelName::from_snake(&source.model.name);
    let renamer = Renamer::new(&old, name, &source.model.file, &header::strip(&source.text))?;
    Ok(renamer
        .ident(&source.model.struct_name)
        .map(str::to_string)
        .unwrap_or_else(|| name.camel.clone()))
}

fn find_source<'a>(site: &Site<'a>, from: &str) -> Result<Source<'a>> {
    let mut places: Vec<(&dyn Tree, Target)> = vec![(site.tree, site.target.clone())];
    if let Some(ws) = site.workspace {
        places.push((ws, Target::Workspace));
    }
    let mut known = vec![];
    for (tree, target) in places {
        let models = layout::existing_models(tree, &target)?;
        if let Some(model) = models.iter().find(|m| m.name == from) {
            if model.file != target.model_file(from) {
                bail!(
                    "--from {from}: the model is declared in {}, not in its own file {}; \
                     forge-gen copies models that have a file of their own",
                    model.file,
                    target.model_file(from)
                );
            }
            let text = read_required(tree, &model.file, "nothing")?;
            return Ok(Source {
                model: model.clone(),
                text,
                tree,
                target,
            });
        }
        known.extend(models.into_iter().map(|m| m.name));
    }
    bail!(
        "--from {from}: no such model; models that can be copied: {}",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

/// Renders the copy of model `from` as `name`, with `options` added.
pub fn render_from(
    site: &Site<'_>,
    from: &str,
    name: &ModelName,
    options: &[ModelOption],
    ctx: &mut Context,
) -> Result<Rendered> {
    let source = find_source(site, from)?;
    let old = ModelName::from_snake(from);
    if old.snake == name.snake {
        bail!("--from {from}: a model cannot be copied onto itself; pick a new name");
    }
    let source_text = header::strip(&source.text);
    let renamer = Renamer::new(&old, name, &source.model.file, &source_text)?;
    let struct_name = renamer
        .ident(&source.model.struct_name)
        .map(str::to_string)
        .unwrap_or_else(|| name.camel.clone());
    ctx.insert("from", from);
    ctx.insert("camel", &struct_name);

    // Model: renamed; with options, their struct is declared before the
    // model's, the model names it, and they are added as fields at the end
    // of the model struct.
    let mut model = renamer.apply(&source_text);
    if !options.is_empty() {
        let fields = render_template("option_fields.rs.tera", ctx)?;
        model = rust_source::insert_struct_fields(&model, &struct_name, &fields)
            .with_context(|| format!("--from {from}: cannot add --option fields"))?;
        model = match rust_source::declared_options("the copied model", &model, &struct_name)? {
            // The copy has options of its own: the new ones join them.
            Some(options_type) => {
                let decls = render_template("option_decls.rs.tera", ctx)?;
                rust_source::add_option_decls(&model, &options_type, &decls)
            }
            None => {
                let declaration = render_template("model_options.rs.tera", ctx)?;
                rust_source::declare_options(&model, &struct_name, &declaration)
            }
        }
        .with_context(|| format!("--from {from}: cannot declare the --option keys"))?;
    }

    // Example config: the source's, renamed, with the options added.
    let source_config = yaml::find_config(source.tree, &source.target, from)?;
    let mut config = match &source_config {
        Some((path, text)) => {
            let text =
                header::strip(text).replace(path.as_str(), &site.target.config_file(&name.snake));
            renamer.apply_config(&text)
        }
        None => bail!(
            "--from {from}: no example config sets `architecture: {from}` in {}/; add one \
             (forge-gen check asks for it too)",
            source.target.configs_dir()
        ),
    };
    if !options.is_empty() {
        let lines = render_template("config_options.yaml.tera", ctx)?;
        config = yaml::insert_model_keys(&config, &lines).with_context(|| {
            format!("--from {from}: the example config has no `model:` section")
        })?;
    }
    let pooling = yaml::model_key(&config, "pooling");
    let pooling = pooling.as_deref().unwrap_or("cls");
    ctx.insert(
        "pooling_variant",
        if pooling == "mean" { "Mean" } else { "Cls" },
    );

    // Test: the source's, renamed, plus the config and option tests.
    let test_path = source.target.test_file(from);
    let source_test = source.tree.read(&test_path)?.with_context(|| {
        format!("--from {from}: it has no test file {test_path} to copy; add one first")
    })?;
    let mut test = renamer.apply(&header::strip(&source_test));
    test.push('\n');
    test.push_str(&render_template("config_test.rs.tera", ctx)?);
    test.push_str(&render_template("option_tests.rs.tera", ctx)?);

    // Docs: the source's section, renamed, noting where it came from.
    let mut docs = None;
    if site.target.docs().is_some() {
        let docs_file = source.target.docs().unwrap_or("docs/api/models.md");
        let section = match source.tree.read(docs_file)? {
            Some(text) => {
                let spec = Region::Docs.entry(docs_file, from, String::new());
                region::entry_text(docs_file, &text, &spec.anchor, spec.kind, spec.what, from)?
            }
            None => None,
        };
        let Some(section) = section else {
            bail!("--from {from}: {docs_file} has no section for it to copy; add one first");
        };
        let mut section = renamer.apply(&section);
        section.push_str(&format!(
            "- Started from: `{from}` (`forge-gen new {} --from {from}`)\n",
            name.snake
        ));
        if !options.is_empty() {
            let list: Vec<String> = options.iter().map(|o| format!("`{}`", o.name)).collect();
            section.push_str(&format!("- Added options: {}\n", list.join(", ")));
        }
        section.push_str(&format!(
            "- Example config: `{}`\n",
            site.target.config_file(&name.snake)
        ));
        docs = Some(section);
    }

    if let Target::Plugin { ident } = &site.target {
        model = rust_source::to_plugin_paths(&model).with_context(|| {
            format!("--from {from}: cannot rewrite its paths for a plugin crate")
        })?;
        test = rust_source::replace_path(
            "the copied test",
            &test,
            &format!("forge_core::models::{struct_name}"),
            &format!("{ident}::{}::{struct_name}", name.snake),
        )?;
        test.push_str(&render_template("plugin_common.rs.tera", ctx)?);
    }
    // Renaming changes line lengths (and plugin paths the import order):
    // format the copies as the project does. Without rustfmt they are
    // kept as they are, and verification reports any formatting issue.
    let model = rustfmt(&model).unwrap_or(model);
    let test = rustfmt(&test).unwrap_or(test);
    Ok((model, test, config, docs, struct_name))
}
