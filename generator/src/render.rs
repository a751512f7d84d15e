//! What `new` produces for a request: the generated files and the entries
//! to insert into existing files ([`Output`]), rendered from the tera
//! templates (`templates.rs`) for the blank template, or from a copied
//! model (`copy.rs`) for `--from`. Comparing the output with the tree is
//! the plan's job (`new.rs`).

use std::collections::BTreeMap;

use anyhow::Result;
use tera::Context;

use crate::cli::{Head, NewRequest, PoolingChoice, value_name};
use crate::copy;
use crate::entries::{EntrySpec, Region};
use crate::header;
use crate::layout::{Site, Target};
use crate::names::ModelName;
use crate::options::ModelOption;
use crate::rust_source;
use crate::templates::render as render_template;
use crate::validate;

/// A piece of output: a whole file, or an entry in an existing file.
#[derive(Debug, Clone)]
pub enum Item {
    /// A generated file: path and full content (header included).
    File(String, String),
    /// An entry in a marker region.
    Entry(EntrySpec),
}

/// Everything `new` produces for a request, before comparison with the
/// tree.
#[derive(Debug, Clone)]
pub struct Output {
    /// The model's names.
    pub name: ModelName,
    /// Its struct.
    pub struct_name: String,
    /// Files and entries, in the order plans list them.
    pub items: Vec<Item>,
}

/// The rendered texts of one model: model file, test file, example
/// config, docs section (workspace), struct name.
pub(crate) type Rendered = (String, String, String, Option<String>, String);

/// Renders everything `new` would produce for `request` (validated first).
pub fn render(site: &Site<'_>, request: &NewRequest) -> Result<Output> {
    let (name, options) = validate::new(site, request)?;
    render_unchecked(site, request, name, &options)
}

/// What the templates know of each option.
fn option_values(options: &[ModelOption]) -> Vec<BTreeMap<&'static str, String>> {
    options
        .iter()
        .map(|o| {
            BTreeMap::from([
                ("name", o.name.clone()),
                ("rust_type", o.rust_type()),
                ("rust_default", o.rust_default()),
                ("rust_other", o.rust_other()),
                ("yaml", o.yaml_default()),
            ])
        })
        .collect()
}

/// The context every template sees.
fn base_context(ctx: &mut Context, target: &Target, name: &ModelName, options: &[ModelOption]) {
    ctx.insert("name", &name.snake);
    ctx.insert("camel", &name.camel);
    ctx.insert("sentence", &name.sentence());
    ctx.insert("options", &option_values(options));
    ctx.insert("model_file", &target.model_file(&name.snake));
    ctx.insert("config_file", &target.config_file(&name.snake));
}

/// [`render`] for a request already validated (`remove` re-renders what
/// `new` inserted, for a model that now exists).
pub fn render_unchecked(
    site: &Site<'_>,
    request: &NewRequest,
    name: ModelName,
    options: &[ModelOption],
) -> Result<Output> {
    let target = &site.target;
    let args = request.to_args();
    let mut ctx = Context::new();
    base_context(&mut ctx, target, &name, options);

    let (model, test, config, docs, struct_name) = match &request.from {
        None => render_blank(site, request, &name, &mut ctx)?,
        Some(from) => copy::render_from(site, from, &name, options, &mut ctx)?,
    };
    let mut items = vec![Item::File(
        target.model_file(&name.snake),
        header::stamp("//", &args, &model),
    )];
    let key = &name.snake;
    items.push(Item::Entry(Region::Modules.entry(
        target.module_list(),
        key,
        format!("pub mod {key};\n"),
    )));
    if let Some(file) = target.exports() {
        let text = format!("pub use {key}::{struct_name};\n");
        items.push(Item::Entry(Region::Exports.entry(file, key, text)));
    }
    items.push(Item::File(
        target.test_file(key),
        header::stamp("//", &args, &test),
    ));
    if let Some(file) = target.test_list() {
        let text = format!("mod {key};\n");
        items.push(Item::Entry(Region::Tests.entry(file, key, text)));
    }
    items.push(Item::File(
        target.config_file(key),
        header::stamp("#", &args, &config),
    ));
    if let (Some(file), Some(docs)) = (target.docs(), docs) {
        items.push(Item::Entry(Region::Docs.entry(file, key, docs)));
    }
    Ok(Output {
        name,
        struct_name,
        items,
    })
}

fn render_blank(
    site: &Site<'_>,
    request: &NewRequest,
    name: &ModelName,
    ctx: &mut Context,
) -> Result<Rendered> {
    let head = request.head.unwrap_or(Head::MaskedGene);
    let pooling = request.pooling.unwrap_or(PoolingChoice::Cls);
    let (summary, head_output, loss_summary, head_noun, head_param, logits_shape) = match head {
        Head::MaskedGene => (
            "a BERT-style model predicting masked genes",
            "logits (B,S,V)",
            "cross-entropy over the vocabulary at labelled positions (labels != -100)",
            "a masked-gene prediction head",
            "head.decoder",
            "[2, 10, 100]",
        ),
        Head::Bin => (
            "a transformer predicting the expression bins of masked genes",
            "bin logits (B,S,n_bins)",
            "cross-entropy over `n_bins` bins against `bin_ids` at labelled positions \
             (none without `bin_ids`)",
            "a bin prediction head",
            "head.decoder",
            "[2, 10, 51]",
        ),
        Head::Expression => (
            "a transformer predicting the expression values of masked genes",
            "values (B,S) = logits",
            "MSE against `values` at labelled positions (labels != -100)",
            "an expression prediction head",
            "head.output",
            "[2, 10]",
        ),
    };
    ctx.insert("head", &value_name(head));
    ctx.insert("pooling", &value_name(pooling));
    ctx.insert(
        "pooling_variant",
        match pooling {
            PoolingChoice::Cls => "Cls",
            PoolingChoice::Mean => "Mean",
        },
    );
    ctx.insert("summary", summary);
    ctx.insert("head_output", head_output);
    ctx.insert("loss_summary", loss_summary);
    ctx.insert("head_noun", head_noun);
    ctx.insert("head_param", head_param);
    ctx.insert("logits_shape", logits_shape);
    let model_path = model_path(&site.target, name, &name.camel);
    ctx.insert("model_path", &model_path);
    let model = render_template("model.rs.tera", ctx)?;
    let mut test = render_template("model_test.rs.tera", ctx)?;
    if site.target.is_plugin() {
        test.push_str(&render_template("plugin_common.rs.tera", ctx)?);
    }
    let config = render_template("config.yaml.tera", ctx)?;
    let docs = render_template("docs_entry.md.tera", ctx)?;
    Ok((model, test, config, Some(docs), name.camel.clone()))
}

fn model_path(target: &Target, name: &ModelName, struct_name: &str) -> String {
    match target {
        Target::Workspace => format!("forge_core::models::{struct_name}"),
        Target::Plugin { ident } => format!("{ident}::{}::{struct_name}", name.snake),
    }
}

/// Field names of the model struct that would be generated for `request`,
/// before its options: read with syn from the rendered blank template, or
/// from the model `--from` copies.
pub fn model_struct_fields(
    site: &Site<'_>,
    request: &NewRequest,
    name: &ModelName,
) -> Result<Vec<String>> {
    if request.from.is_some() {
        return copy::model_struct_fields(site, request);
    }
    let mut ctx = Context::new();
    base_context(&mut ctx, &site.target, name, &[]);
    let (model, ..) = render_blank(site, request, name, &mut ctx)?;
    rust_source::struct_fields("the blank template", &model, &name.camel)
}
