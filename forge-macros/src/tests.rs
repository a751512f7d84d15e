//! Expansion snapshots (insta) and error tests of the derive, run without
//! the compiler: `expand::derive` is a plain function.

use syn::{DeriveInput, parse_quote};

use crate::expand::derive;

fn pretty(input: DeriveInput) -> String {
    let tokens = derive(&input).unwrap_or_else(|e| panic!("expansion failed: {e}"));
    let file: syn::File = syn::parse2(tokens).expect("expansion parses as a file");
    prettyplease::unparse(&file)
}

fn errors(input: DeriveInput) -> Vec<String> {
    match derive(&input) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn expands_a_plain_model() {
    insta::assert_snapshot!(pretty(parse_quote! {
        #[forge(name = "plain_model")]
        pub struct PlainModel {
            embedding: GeneExpressionEmbedding,
            encoder: TransformerEncoder,
            head: MaskedGenePredictionHead,
            #[forge(config)]
            pooling: Pooling,
        }
    }));
}

#[test]
fn expands_renamed_defaulted_built_and_skipped_fields() {
    insta::assert_snapshot!(pretty(parse_quote! {
        #[forge(name = "custom_model", options = CustomOptions)]
        pub struct CustomModel {
            #[forge(build = BinPredictionHead::new(path, config.hidden_dim, config.n_bins))]
            expression_head: BinPredictionHead,
            #[forge(option = decoder_dim, default = config.hidden_dim / 2)]
            decoder_width: i64,
            #[forge(config = "n_bins")]
            bins: i64,
            #[forge(build = root.var("mask_token", &[1, 1, 8], Init::Randn { mean: 0.0, stdev: 0.02 }))]
            mask_token: Tensor,
            #[forge(skip)]
            steps: u64,
        }
    }));
}

#[test]
fn expands_a_plugin_model_from_another_crate() {
    // Generated code names forge-core by absolute path, so a plugin crate
    // that depends on forge-core expands the same way.
    insta::assert_snapshot!(pretty(parse_quote! {
        #[forge(name = "my_plugin_model")]
        pub struct MyPluginModel {
            encoder: forge_core::components::TransformerEncoder,
            #[forge(build = my_crate::layers::Adapter::new(path, config.hidden_dim)?)]
            adapter: my_crate::layers::Adapter,
        }
    }));
}

#[test]
fn reports_every_problem_at_once() {
    let errs = errors(parse_quote! {
        #[forge(nmae = "x")]
        struct Broken {
            #[forge(confg)]
            a: i64,
            #[forge(skip, config)]
            b: i64,
            #[forge(default = 3)]
            c: i64,
            #[forge(build = foo(), config)]
            d: Foo,
        }
    });
    let all = errs.join("\n");
    assert!(
        all.contains("unknown forge attribute `nmae` on a model struct; did you mean `name`?"),
        "{all}"
    );
    assert!(
        all.contains("unknown forge attribute `confg` on a field; did you mean `config`?"),
        "{all}"
    );
    assert!(all.contains("`skip` cannot be combined"), "{all}");
    assert!(
        all.contains("`default` on `c` needs `config = key`"),
        "{all}"
    );
    assert!(all.contains("`d` has both `build` and `config`"), "{all}");
    assert!(
        all.contains("missing registry name: add `#[forge(name = \"broken\")]`"),
        "{all}"
    );
    assert_eq!(errs.len(), 6, "{all}");
}

#[test]
fn refuses_bad_registry_names() {
    for (name, needle) in [
        ("MyModel", "not snake_case"),
        ("my-model", "e.g. \"my_model\""),
        ("type", "Rust keyword"),
    ] {
        let input: DeriveInput = syn::parse_str(&format!(
            "#[forge(name = \"{name}\")] struct M {{ #[forge(config)] pooling: Pooling }}"
        ))
        .unwrap();
        let all = errors(input).join("\n");
        assert!(all.contains(needle), "{name}: {all}");
    }
    let all = errors(parse_quote! {
        #[forge(name = my_model)]
        struct M { #[forge(config)] pooling: Pooling }
    })
    .join("\n");
    assert!(all.contains("must be a string literal"), "{all}");
}

#[test]
fn refuses_non_struct_shapes_and_generics() {
    let cases: [(DeriveInput, &str); 5] = [
        (
            parse_quote! { #[forge(name = "m")] enum M { A } },
            "not enums",
        ),
        (
            parse_quote! { #[forge(name = "m")] union M { a: u32 } },
            "not unions",
        ),
        (
            parse_quote! { #[forge(name = "m")] struct M(i64); },
            "tuple struct",
        ),
        (
            parse_quote! { #[forge(name = "m")] struct M; },
            "unit struct",
        ),
        (
            parse_quote! { #[forge(name = "m")] struct M<T> { #[forge(skip)] t: T } },
            "must be a concrete type",
        ),
    ];
    for (input, needle) in cases {
        let all = errors(input).join("\n");
        assert!(all.contains(needle), "{needle}: {all}");
    }
}

#[test]
fn duplicate_keys_are_reported() {
    let all = errors(parse_quote! {
        #[forge(name = "m", name = "n")]
        struct M { #[forge(config, config = x)] a: i64 }
    })
    .join("\n");
    assert!(all.contains("duplicate `name`"), "{all}");
    assert!(all.contains("duplicate `config`"), "{all}");
}
