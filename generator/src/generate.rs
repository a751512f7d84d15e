//! What `new` generates and what `remove` takes away, as pure functions of
//! the request and the files of the tree: `(request, tree) -> Plan`.
//!
//! [`render`] produces the generated files and the entries to insert into
//! existing files; [`plan_new`] and [`plan_remove`] compare them with the
//! tree and give each file a status. Writing is `apply.rs`'s job.

use anyhow::{Context as _, Result, bail};
use tera::Context;

use crate::header;
use crate::layout::{self, ExistingModel, Target};
use crate::names::ModelName;
use crate::options::ModelOption;
use crate::plan::{Change, Plan, Status};
use crate::region::{self, Anchor, Entries, EntryStatus};
use crate::rename::Renamer;
use crate::templates::render as render_template;
use crate::tree::Tree;

/// Names `use forge_core::prelude::*` brings into a model file, plus the
/// test's `Model` alias: a model struct may not take one of them.
const TAKEN_TYPE_NAMES: &[&str] = &[
    "Activation",
    "Architecture",
    "Batch",
    "BatchBuilder",
    "BinPredictionHead",
    "Component",
    "Device",
    "ExpressionPredictionHead",
    "ForgeConfig",
    "ForgeError",
    "ForgeModel",
    "GeneExpressionEmbedding",
    "Kind",
    "MaskedGenePredictionHead",
    "Model",
    "ModelConfig",
    "ModelOutput",
    "Parameters",
    "Pass",
    "Pooling",
    "Result",
    "Tensor",
    "TransformerEncoder",
    "TransformerEncoderLayer",
];

/// The prediction head of a blank model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Genes over the vocabulary (`MaskedGenePredictionHead`).
    MaskedGene,
    /// Expression bins (`BinPredictionHead` over `n_bins`).
    Bin,
    /// Expression values (`ExpressionPredictionHead`).
    Expression,
}

impl Head {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Head::MaskedGene => "masked_gene",
            Head::Bin => "bin",
            Head::Expression => "expression",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "masked_gene" => Ok(Head::MaskedGene),
            "bin" => Ok(Head::Bin),
            "expression" => Ok(Head::Expression),
            _ => bail!("unknown head `{s}`; accepted: masked_gene, bin, expression"),
        }
    }
}

/// The pooling a blank model's example config uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingChoice {
    /// First (CLS) token.
    Cls,
    /// Mean over real tokens.
    Mean,
}

impl PoolingChoice {
    /// The name used on the command line and in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolingChoice::Cls => "cls",
            PoolingChoice::Mean => "mean",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cls" => Ok(PoolingChoice::Cls),
            "mean" => Ok(PoolingChoice::Mean),
            _ => bail!("unknown pooling `{s}`; accepted: cls, mean"),
        }
    }
}

/// The inputs of `forge-gen new` that decide what is generated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRequest {
    /// The new model's name, as typed.
    pub name: String,
    /// `--from`: the model to copy.
    pub from: Option<String>,
    /// `--head` (blank template only).
    pub head: Option<Head>,
    /// `--pooling` (blank template only).
    pub pooling: Option<PoolingChoice>,
    /// `--option` specs, as typed.
    pub options: Vec<String>,
}

impl NewRequest {
    /// The request as `forge-gen` arguments (`new NAME --head bin ...`),
    /// as recorded in the header of generated files.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["new".to_string(), self.name.clone()];
        if let Some(from) = &self.from {
            args.extend(["--from".to_string(), from.clone()]);
        }
        if let Some(head) = self.head {
            args.extend(["--head".to_string(), head.as_str().to_string()]);
        }
        if let Some(pooling) = self.pooling {
            args.extend(["--pooling".to_string(), pooling.as_str().to_string()]);
        }
        for option in &self.options {
            args.extend(["--option".to_string(), option.clone()]);
        }
        args
    }

    /// Reads arguments written by [`Self::to_args`].
    pub fn from_args(args: &[String]) -> Result<Self> {
        let mut it = args.iter();
        if it.next().map(String::as_str) != Some("new") {
            bail!("not a `forge-gen new` command: {}", args.join(" "));
        }
        let mut request = NewRequest {
            name: it.next().context("no model name")?.clone(),
            ..NewRequest::default()
        };
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .with_context(|| format!("{flag} without a value"))?;
            match flag.as_str() {
                "--from" => request.from = Some(value.clone()),
                "--head" => request.head = Some(Head::parse(value)?),
                "--pooling" => request.pooling = Some(PoolingChoice::parse(value)?),
                "--option" => request.options.push(value.clone()),
                _ => bail!("unknown argument `{flag}`"),
            }
        }
        Ok(request)
    }
}

/// Where a command works: the tree and its layout, plus the forge
/// workspace when the target is a plugin crate (models to copy with
/// `--from` may live there).
pub struct Site<'a> {
    /// The files of the target.
    pub tree: &'a dyn Tree,
    /// Its layout.
    pub target: Target,
    /// The forge workspace, for `--from` in a plugin crate.
    pub workspace: Option<&'a dyn Tree>,
}

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

/// The regions of existing files that hold one entry per model.
#[derive(Debug, Clone, Copy)]
enum Region {
    /// `pub mod NAME;` lines in the models module.
    Modules,
    /// `pub use NAME::Struct;` lines (plugin crates).
    Exports,
    /// `mod NAME;` lines of the test list.
    Tests,
    /// Sections of the model docs.
    Docs,
}

impl Region {
    /// The entry of model `key` in this region of `file`.
    fn entry(self, file: &'static str, key: &str, text: String) -> EntrySpec {
        let (anchor, kind, what) = match self {
            Region::Modules => (
                layout::MODULES,
                Entries::Lines(region::pub_mod_key),
                "the model modules",
            ),
            Region::Exports => (
                layout::EXPORTS,
                Entries::Lines(region::pub_use_key),
                "the model re-exports",
            ),
            Region::Tests => (
                layout::TESTS,
                Entries::Lines(region::mod_key),
                "the model test modules",
            ),
            Region::Docs => (
                layout::DOCS,
                Entries::Blocks {
                    start: region::docs_key,
                    blank_separated: true,
                },
                "the model sections",
            ),
        };
        EntrySpec {
            file,
            anchor,
            kind,
            what,
            key: key.to_string(),
            text,
        }
    }
}

/// Checks a `new` request against the tree: the name, the options, and
/// clashes with what exists. Returns the validated name and options.
pub fn validate_new(
    site: &Site<'_>,
    request: &NewRequest,
) -> Result<(ModelName, Vec<ModelOption>)> {
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
    let struct_name = planned_struct_name(site, request, &name)?;
    if TAKEN_TYPE_NAMES.contains(&struct_name.as_str()) {
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
        let struct_fields = model_struct_fields(site, request)?;
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

fn read_required(tree: &dyn Tree, path: &str, what: &str) -> Result<String> {
    tree.read(path)?.with_context(|| {
        format!(
            "{path} not found under {}; forge-gen edits it to add {what}. Is this the forge \
             workspace (or pass --root)?",
            tree.root().display()
        )
    })
}

/// The options type that struct `struct_name` of a model file names in
/// `#[forge(options = Type)]`, read with syn.
fn declared_options(source: &str, struct_name: &str) -> Option<String> {
    let file = syn::parse_file(source).ok()?;
    file.items.iter().find_map(|item| {
        let syn::Item::Struct(s) = item else {
            return None;
        };
        if s.ident != struct_name {
            return None;
        }
        let mut found = None;
        for attr in s.attrs.iter().filter(|a| a.path().is_ident("forge")) {
            let _ = attr.parse_nested_meta(|meta| {
                if meta.input.peek(syn::Token![=]) {
                    let value = meta.value()?;
                    if meta.path.is_ident("options") {
                        let ty: syn::Type = value.parse()?;
                        found = Some(quote::ToTokens::to_token_stream(&ty).to_string());
                    } else {
                        let _: syn::Expr = value.parse()?;
                    }
                }
                Ok(())
            });
        }
        found
    })
}

/// Adds `decls` (option declarations) at the end of the options struct
/// `options_type` declared with `model_options!` in `model`.
fn add_option_decls(model: &str, options_type: &str, decls: &str) -> Result<String> {
    let open = format!("struct {options_type} {{\n");
    let at = model
        .find(&open)
        .with_context(|| format!("no `struct {options_type} {{` in the model"))?;
    let body = at + open.len();
    let close = model[body..]
        .find("\n    }\n")
        .with_context(|| format!("no closing brace of `struct {options_type}`"))?;
    let insert_at = body + close;
    Ok(format!(
        "{}{decls}{}",
        &model[..insert_at],
        &model[insert_at..]
    ))
}

/// Field names of the model struct that would be generated (before
/// options).
fn model_struct_fields(site: &Site<'_>, request: &NewRequest) -> Result<Vec<String>> {
    let Some(from) = &request.from else {
        return Ok(["embedding", "encoder", "norm", "head", "pooling"]
            .map(String::from)
            .to_vec());
    };
    let source = find_source(site, from)?;
    let text = strip_header(&source.text);
    Ok(struct_fields(&text, &source.model.struct_name))
}

fn struct_fields(source: &str, struct_name: &str) -> Vec<String> {
    let Some(at) = source.find(&format!("struct {struct_name} {{")) else {
        return vec![];
    };
    let mut fields = vec![];
    for line in source[at..].lines().skip(1) {
        if line == "}" {
            break;
        }
        let t = line.trim().trim_start_matches("pub ");
        if let Some((field, _)) = t.split_once(':')
            && !field.is_empty()
            && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            fields.push(field.to_string());
        }
    }
    fields
}

fn planned_struct_name(site: &Site<'_>, request: &NewRequest, name: &ModelName) -> Result<String> {
    let Some(from) = &request.from else {
        return Ok(name.camel.clone());
    };
    let source = find_source(site, from)?;
    let old = ModelName::from_snake(&source.model.name);
    let renamer = Renamer::new(&old, name, &strip_header(&source.text));
    Ok(renamer
        .ident(&source.model.struct_name)
        .map(str::to_string)
        .unwrap_or_else(|| name.camel.clone()))
}

/// A model to copy with `--from`, with the site it lives in.
struct Source<'a> {
    model: ExistingModel,
    text: String,
    tree: &'a dyn Tree,
    target: Target,
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

fn strip_header(text: &str) -> String {
    match header::read(text) {
        Some(_) => text
            .split_once('\n')
            .map(|(_, b)| b)
            .unwrap_or("")
            .to_string(),
        None => text.to_string(),
    }
}

/// Renders everything `new` would produce for `request` (validated first).
pub fn render(site: &Site<'_>, request: &NewRequest) -> Result<Output> {
    let (name, options) = validate_new(site, request)?;
    render_unchecked(site, request, name, &options)
}

fn option_values(options: &[ModelOption]) -> Vec<std::collections::BTreeMap<&'static str, String>> {
    options
        .iter()
        .map(|o| {
            std::collections::BTreeMap::from([
                ("name", o.name.clone()),
                ("rust_type", o.rust_type()),
                ("rust_default", o.rust_default()),
                ("rust_other", o.rust_other()),
                ("yaml", o.yaml_default()),
            ])
        })
        .collect()
}

fn render_unchecked(
    site: &Site<'_>,
    request: &NewRequest,
    name: ModelName,
    options: &[ModelOption],
) -> Result<Output> {
    let target = &site.target;
    let args = request.to_args();
    let mut ctx = Context::new();
    ctx.insert("name", &name.snake);
    ctx.insert("camel", &name.camel);
    ctx.insert("sentence", &name.sentence());
    ctx.insert("options", &option_values(options));
    ctx.insert("model_file", &target.model_file(&name.snake));
    ctx.insert("config_file", &target.config_file(&name.snake));

    let (model, test, config, docs, struct_name) = match &request.from {
        None => render_blank(site, request, &name, &mut ctx)?,
        Some(from) => render_from(site, from, &name, options, &mut ctx)?,
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

type Rendered = (String, String, String, Option<String>, String);

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
    ctx.insert("head", head.as_str());
    ctx.insert("pooling", pooling.as_str());
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

fn render_from(
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
    let source_text = strip_header(&source.text);
    let renamer = Renamer::new(&old, name, &source_text);
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
        model = insert_struct_fields(&model, &struct_name, &fields)
            .with_context(|| format!("--from {from}: cannot add --option fields"))?;
        model = match declared_options(&model, &struct_name) {
            // The copy has options of its own: the new ones join them.
            Some(options_type) => {
                let decls = render_template("option_decls.rs.tera", ctx)?;
                add_option_decls(&model, &options_type, &decls)
            }
            None => {
                let declaration = render_template("model_options.rs.tera", ctx)?;
                declare_options(&model, &struct_name, &declaration)
            }
        }
        .with_context(|| format!("--from {from}: cannot declare the --option keys"))?;
    }

    // Example config: the source's, renamed, with the options added.
    let source_config = find_config(source.tree, &source.target, from)?;
    let mut config = match &source_config {
        Some((path, text)) => {
            let text =
                strip_header(text).replace(path.as_str(), &site.target.config_file(&name.snake));
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
        config = insert_model_keys(&config, &lines).with_context(|| {
            format!("--from {from}: the example config has no `model:` section")
        })?;
    }
    let pooling = config
        .lines()
        .find_map(|l| l.strip_prefix("  pooling: "))
        .map(str::trim)
        .unwrap_or("cls");
    ctx.insert(
        "pooling_variant",
        if pooling == "mean" { "Mean" } else { "Cls" },
    );

    // Test: the source's, renamed, plus the config and option tests.
    let test_path = source.target.test_file(from);
    let source_test = source.tree.read(&test_path)?.with_context(|| {
        format!("--from {from}: it has no test file {test_path} to copy; add one first")
    })?;
    let mut test = renamer.apply(&strip_header(&source_test));
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
        model = to_plugin_paths(&model);
        test = test.replace(
            &format!("forge_core::models::{struct_name}"),
            &format!("{ident}::{}::{struct_name}", name.snake),
        );
        test.push_str(&render_template("plugin_common.rs.tera", ctx)?);
    }
    // Renaming changes line lengths (and plugin paths the import order):
    // format the copies as the project does. Without rustfmt they are
    // kept as they are, and verification reports any formatting issue.
    let model = rustfmt(&model).unwrap_or(model);
    let test = rustfmt(&test).unwrap_or(test);
    Ok((model, test, config, docs, struct_name))
}

/// Rewrites forge-core-internal paths of a model file for a plugin crate.
fn to_plugin_paths(source: &str) -> String {
    source
        .replace("use super::", "use forge_core::models::")
        .replace("use crate::", "use forge_core::")
        .replace("crate::", "forge_core::")
        .replace("use tch::", "use forge_core::tch::")
}

/// Formats Rust source with rustfmt (edition 2024, the project's
/// settings).
fn rustfmt(source: &str) -> Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt (is it installed?)")?;
    child
        .stdin
        .take()
        .context("rustfmt stdin")?
        .write_all(source.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "rustfmt failed on the copied model: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Puts `declaration` (the options struct) before the doc comment of
/// `struct_name` and names it in that struct's `#[forge(name = ...)]`.
fn declare_options(model: &str, struct_name: &str, declaration: &str) -> Result<String> {
    let open = format!("pub struct {struct_name} {{\n");
    let at = model
        .find(&open)
        .with_context(|| format!("no `pub struct {struct_name} {{` in the model"))?;
    // The start of the struct's doc comment and attributes.
    let mut start = model[..at].rfind("\n\n").map(|i| i + 2).unwrap_or(0);
    while model[start..at].trim_start().starts_with("//!") {
        start += model[start..at].find('\n').map(|i| i + 1).unwrap_or(0);
    }
    let attrs = &model[start..at];
    let name_attr = attrs
        .find("#[forge(name = ")
        .context("no `#[forge(name = ...)]` on the model struct")?;
    let close = attrs[name_attr..]
        .find(")]")
        .context("unclosed `#[forge(...)]`")?
        + name_attr;
    let options = format!(", options = {struct_name}Options");
    Ok(format!(
        "{}{declaration}\n{}{options}{}",
        &model[..start],
        &model[start..start + close],
        &model[start + close..]
    ))
}

fn insert_struct_fields(model: &str, struct_name: &str, fields: &str) -> Result<String> {
    let open = format!("struct {struct_name} {{\n");
    let at = model
        .find(&open)
        .with_context(|| format!("no `struct {struct_name} {{` in the model"))?;
    let body = at + open.len();
    let close = model[body..]
        .find("\n}\n")
        .with_context(|| format!("no closing brace of `struct {struct_name}`"))?;
    let insert_at = body + close + 1;
    Ok(format!(
        "{}{fields}{}",
        &model[..insert_at],
        &model[insert_at..]
    ))
}

/// Adds `lines` at the end of the top-level `model:` section of a YAML
/// config.
fn insert_model_keys(config: &str, lines: &str) -> Result<String> {
    let mut offset = 0;
    let mut in_model = false;
    let mut insert_at = None;
    for line in config.split_inclusive('\n') {
        let end = offset + line.len();
        if line.starts_with("model:") {
            in_model = true;
            insert_at = Some(end);
        } else if in_model {
            if line.starts_with(' ') && !line.trim().is_empty() {
                insert_at = Some(end);
            } else if !line.trim().is_empty() && !line.starts_with('#') {
                in_model = false;
            }
        }
        offset = end;
    }
    let at = insert_at.context("no model section")?;
    Ok(format!("{}{lines}{}", &config[..at], &config[at..]))
}

/// The example config of model `name`: `configs/NAME.yaml`, else the first
/// config (by file name) whose model section names it.
pub fn find_config(
    tree: &dyn Tree,
    target: &Target,
    name: &str,
) -> Result<Option<(String, String)>> {
    let own = target.config_file(name);
    if let Some(text) = tree.read(&own)? {
        return Ok(Some((own, text)));
    }
    for file in tree.list_files(target.configs_dir(), "yaml")? {
        if let Some(text) = tree.read(&file)?
            && config_architecture(&text).as_deref() == Some(name)
        {
            return Ok(Some((file, text)));
        }
    }
    Ok(None)
}

/// `model.architecture` of a YAML config, read line by line.
pub fn config_architecture(text: &str) -> Option<String> {
    let mut in_model = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_model = line.trim_end() == "model:";
        } else if in_model && let Some(value) = line.trim().strip_prefix("architecture:") {
            return Some(value.trim().trim_matches(['"', '\'']).to_string());
        }
    }
    None
}

/// The plan of `forge-gen new`.
pub fn plan_new(site: &Site<'_>, request: &NewRequest, force: bool) -> Result<Plan> {
    let output = render(site, request)?;
    plan_items(site.tree, &output.items, force)
}

fn conflict_note(before: &str) -> String {
    match header::read(before) {
        Some(h) if h.pristine => {
            "generated by forge-gen from other inputs (or an older template)".to_string()
        }
        Some(_) => "edited by hand since forge-gen generated it".to_string(),
        None => "not generated by forge-gen (no forge-gen header line)".to_string(),
    }
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

/// The plan of `forge-gen remove NAME`: the files `new` created (if
/// unedited) go, the entries it inserted are taken out.
pub fn plan_remove(site: &Site<'_>, name: &str, force: bool) -> Result<Plan> {
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
    let struct_name = model_text
        .as_deref()
        .map(layout::declared_models)
        .and_then(|m| m.into_iter().find(|(n, _)| *n == name.snake))
        .map(|(_, s)| s)
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
        None => structural_entries(target, &name, &struct_name),
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

/// Entries of model `name` located by key alone (the model file does not
/// say how it was generated).
fn structural_entries(target: &Target, name: &ModelName, struct_name: &str) -> Vec<EntrySpec> {
    let key = &name.snake;
    let mut entries =
        vec![Region::Modules.entry(target.module_list(), key, format!("pub mod {key};\n"))];
    let optional = [
        (
            target.exports(),
            Region::Exports,
            format!("pub use {key}::{struct_name};\n"),
        ),
        (target.test_list(), Region::Tests, format!("mod {key};\n")),
        (target.docs(), Region::Docs, String::new()),
    ];
    for (file, region, text) in optional {
        if let Some(file) = file {
            entries.push(region.entry(file, key, text));
        }
    }
    entries
}
