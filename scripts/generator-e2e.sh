#!/usr/bin/env bash
# forge-gen end to end, on a scratch copy of the workspace:
#
#   1. copy the workspace (without target/ and .git; .venv stays a symlink);
#   2. generate models with forge-gen: the blank template with an option (as
#      a user would), each other head, and a copy of each reference model;
#   3. build them and run their generated tests (they must pass), using this
#      repository's target/ so dependencies are not rebuilt;
#   4. `forge-gen check` must pass with them in place, and each model trains
#      right away: `forge train` on its generated example config (the
#      embedded PBMC data) for a few steps writes a pretrained checkpoint;
#   5. the same in a plugin crate (`--crate tests/plugin-model`, a crate
#      outside forge-core): a blank model with two options and a copy of a
#      reference model, built and tested as that crate's own test binaries,
#      with forge-core's files byte for byte as before; the model with
#      options trains 3 steps with `forge train` (a `forge` binary that links
#      the plugin crate, as a plugin's user builds it) from a YAML that sets
#      both options, and a misspelt option key is refused with did-you-mean;
#   6. `forge-gen remove` each one, and the tree must be byte for byte the
#      copy taken before generation (diff -r).
#
# Any mismatch fails the script loudly. Run from anywhere:
#   bash scripts/generator-e2e.sh
# The scratch copy stays in target/generator-e2e/ for inspection.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
# A fixed scratch folder under target/ (ignored by git): the same paths on
# every run let cargo reuse what it built for the copy last time.
scratch="$target_dir/generator-e2e"
rm -rf "$scratch"
fail() {
    echo "generator-e2e: FAILED: $*" >&2
    exit 1
}
step() { printf '\n--> %s\n' "$*"; }
start=$SECONDS

step "building forge-gen"
cargo build -q -p generator --manifest-path "$repo/Cargo.toml"
gen="$target_dir/debug/forge-gen"
[[ -x "$gen" ]] || fail "no forge-gen binary at $gen"

step "copying the workspace to $scratch"
mkdir -p "$scratch/work" "$scratch/before"
tar -C "$repo" --exclude=./target --exclude=./.git -cf - . | tar -C "$scratch/work" -xf -
tar -C "$scratch/work" -cf - . | tar -C "$scratch/before" -xf -
cd "$scratch/work"

# name | arguments after the name
models=(
    "e2e_demo_model|--option demo_scale:f64=1.0"
    "e2e_bin_model|--head bin --pooling mean --option e2e_bin_label:String=cells --option e2e_bin_steps:Option<i64>"
    "e2e_expression_model|--head expression --option e2e_expression_flag:bool=false"
    "e2e_from_encoder|--from transformer_encoder"
    "e2e_from_autoregressive|--from autoregressive_transformer --option e2e_ar_weight:Option<f64>=0.5"
    "e2e_from_autoencoder|--from masked_autoencoder"
)

for entry in "${models[@]}"; do
    name="${entry%%|*}"
    read -r -a args <<<"${entry#*|}"
    step "forge-gen new $name ${args[*]}"
    "$gen" new "$name" "${args[@]}" --no-verify || fail "forge-gen new $name"
    # A re-run with the same inputs changes nothing.
    out="$("$gen" new "$name" "${args[@]}" --no-verify)" || fail "re-running new $name"
    grep -q "nothing to do" <<<"$out" || fail "re-running new $name changed something:
$out"
    if grep -Eq '^  (create|update|force) ' <<<"$out"; then
        fail "re-running new $name is not identical:
$out"
    fi
done

step "forge-gen check (with the generated models)"
"$gen" check || fail "forge-gen check after generation"

step "rustfmt --check on the generated Rust files"
rustfmt --edition 2024 --check \
    forge-core/src/models/e2e_*.rs tests/integration/models/e2e_*.rs ||
    fail "generated Rust files are not rustfmt-clean"

step "cargo clippy on the generated models"
# Lints of the rest of the workspace are the main clippy step's business
# (scripts/test.sh, with -D warnings); here every lint is reported as a
# warning, so that all crates are checked, and none may name a generated
# file.
CARGO_TARGET_DIR="$target_dir" cargo clippy --workspace --all-targets \
    --message-format short >"$scratch/clippy.log" 2>&1 || true
if grep -E '(^|/)(forge-core/src/models|tests/integration/models)/e2e_[a-z_]*\.rs' "$scratch/clippy.log"; then
    fail "clippy reports the generated files (full log: $scratch/clippy.log)"
fi
if grep -q "could not compile \`forge\` (test \"integration\")" "$scratch/clippy.log"; then
    fail "the generated tests do not compile (full log: $scratch/clippy.log)"
fi

step "the generated tests"
# One test thread: some tests (the copied reference tests among them) seed
# libtorch's global random generator and would race with each other.
CARGO_TARGET_DIR="$target_dir" cargo test -q --test integration models::e2e_ -- --test-threads=1 2>&1 |
    tee "$scratch/test.log" || fail "generated tests"
grep -Eq "test result: ok\. [1-9][0-9]* passed" "$scratch/test.log" ||
    fail "the generated tests did not run"

step "forge train on each generated example config (3 steps)"
# The integration tests above built the scratch copy's `forge` binary, with
# the generated models registered.
forge_bin="$target_dir/debug/forge"
[[ -x "$forge_bin" ]] || fail "no forge binary at $forge_bin"
[[ -f data/pbmc68k_reduced.h5ad ]] || fail "data/pbmc68k_reduced.h5ad missing (run scripts/setup.sh)"
for entry in "${models[@]}"; do
    name="${entry%%|*}"
    run="$scratch/train-$name"
    "$forge_bin" train --config "configs/$name.yaml" --out "$run" --max-steps 3 \
        >"$scratch/train-$name.log" 2>&1 ||
        fail "forge train on configs/$name.yaml (log: $scratch/train-$name.log)"
    [[ -f "$run/pretrained/model.safetensors" ]] ||
        fail "forge train on configs/$name.yaml wrote no pretrained checkpoint"
    grep -E "stopped at --max-steps" "$scratch/train-$name.log" | head -1
done

plugin=tests/plugin-model
plugin_models=(
    "e2e_plugin_model|--head bin --option e2e_plugin_scale:f64=0.5 --option e2e_plugin_depth:Option<i64>"
    "e2e_plugin_from|--from transformer_encoder"
)
# forge-core as it is before the plugin models: they must not change it.
cp -a forge-core "$scratch/forge-core-before-plugin"
for entry in "${plugin_models[@]}"; do
    name="${entry%%|*}"
    read -r -a args <<<"${entry#*|}"
    step "forge-gen new $name ${args[*]} --crate $plugin"
    "$gen" new "$name" "${args[@]}" --crate "$plugin" --no-verify || fail "forge-gen new $name --crate"
    out="$("$gen" new "$name" "${args[@]}" --crate "$plugin" --no-verify)" ||
        fail "re-running new $name --crate"
    grep -q "nothing to do" <<<"$out" || fail "re-running new $name --crate changed something:
$out"
done

step "forge-core is untouched by the plugin models"
diff -r --no-dereference "$scratch/forge-core-before-plugin" forge-core ||
    fail "generating models in $plugin changed forge-core"

step "forge-gen list --crate $plugin"
# (Not `check`: the crate's hand-written example model is tested from the
# workspace's integration binary, not by a test file of its own.)
listed="$("$gen" list --crate "$plugin")" || fail "forge-gen list --crate"
echo "$listed"
for entry in "${plugin_models[@]}"; do
    grep -q "${entry%%|*}" <<<"$listed" || fail "forge-gen list --crate does not show ${entry%%|*}"
done

step "the plugin crate's generated tests"
plugin_tests=()
for entry in "${plugin_models[@]}"; do plugin_tests+=(--test "${entry%%|*}"); done
CARGO_TARGET_DIR="$target_dir" cargo test -q -p forge-plugin-example "${plugin_tests[@]}" \
    -- --test-threads=1 2>&1 | tee "$scratch/plugin-test.log" || fail "plugin crate's generated tests"
[[ "$(grep -Ec "test result: ok\. [1-9][0-9]* passed" "$scratch/plugin-test.log")" == "${#plugin_models[@]}" ]] ||
    fail "the plugin crate's generated tests did not all run"

step "forge train on a plugin model's options (3 steps)"
# A `forge` binary that links the plugin crate, as its user would build one:
# the crate becomes a dependency of the CLI and is referenced so that its
# registrations are kept. Both files are restored before the final diff.
printf '\n[dependencies.forge-plugin-example]\npath = "tests/plugin-model"\n' >>Cargo.toml
printf '\nuse forge_plugin_example as _;\n' >>src/main.rs
CARGO_TARGET_DIR="$target_dir" cargo build -q --bin forge || fail "building forge with the plugin crate"
cfg="$plugin/configs/e2e_plugin_model.yaml"
[[ -f "$cfg" ]] || fail "no example config $cfg"
# Both options set to values other than their defaults.
sed -e 's/^  e2e_plugin_scale: .*/  e2e_plugin_scale: 2.5/' \
    -e 's/^  e2e_plugin_depth: .*/  e2e_plugin_depth: 3/' "$cfg" >"$scratch/plugin-options.yaml"
grep -q '^  e2e_plugin_scale: 2.5$' "$scratch/plugin-options.yaml" &&
    grep -q '^  e2e_plugin_depth: 3$' "$scratch/plugin-options.yaml" ||
    fail "the example config $cfg does not set both options"
"$forge_bin" config "$scratch/plugin-options.yaml" >"$scratch/plugin-config.log" 2>&1 ||
    fail "forge config on the plugin options (log: $scratch/plugin-config.log)"
grep -q "e2e_plugin_scale: 2.5" "$scratch/plugin-config.log" ||
    fail "forge config does not show the option (log: $scratch/plugin-config.log)"
run="$scratch/train-e2e_plugin_model"
"$forge_bin" train --config "$scratch/plugin-options.yaml" --out "$run" --max-steps 3 \
    >"$scratch/train-e2e_plugin_model.log" 2>&1 ||
    fail "forge train on the plugin options (log: $scratch/train-e2e_plugin_model.log)"
[[ -f "$run/pretrained/model.safetensors" ]] || fail "the plugin model wrote no pretrained checkpoint"
grep -q '"e2e_plugin_scale": 2.5' "$run/pretrained/config.json" ||
    fail "the checkpoint's config.json does not record the option"
grep -E "stopped at --max-steps" "$scratch/train-e2e_plugin_model.log" | head -1
sed -e 's/^  e2e_plugin_scale:/  e2e_plugin_scal:/' "$scratch/plugin-options.yaml" >"$scratch/plugin-typo.yaml"
if "$forge_bin" train --config "$scratch/plugin-typo.yaml" --out "$scratch/train-typo" --max-steps 1 \
    >"$scratch/plugin-typo.log" 2>&1; then
    fail "a misspelt option key trained"
fi
grep -q 'model.e2e_plugin_scal: unknown key; did you mean "e2e_plugin_scale"?' "$scratch/plugin-typo.log" ||
    fail "the misspelt option key is not refused with did-you-mean (log: $scratch/plugin-typo.log)"
for f in Cargo.toml Cargo.lock src/main.rs; do cp "$scratch/before/$f" "$f"; done
diff -r --no-dereference "$scratch/forge-core-before-plugin" forge-core ||
    fail "training a plugin model changed forge-core"

step "forge-gen remove"
for entry in "${models[@]}"; do
    name="${entry%%|*}"
    "$gen" remove "$name" || fail "forge-gen remove $name"
done
for entry in "${plugin_models[@]}"; do
    name="${entry%%|*}"
    "$gen" remove "$name" --crate "$plugin" || fail "forge-gen remove $name --crate"
done

step "the tree is back, byte for byte"
diff -r --no-dereference "$scratch/before" "$scratch/work" ||
    fail "the tree differs from the copy taken before generation"

step "forge-gen check (after removal)"
"$gen" check || fail "forge-gen check after removal"

echo
echo "generator-e2e: OK ($((${#models[@]} + ${#plugin_models[@]})) models generated, built, tested and removed in $((SECONDS - start)) s)"
