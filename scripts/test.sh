#!/usr/bin/env bash
# The whole test suite, from a clean clone: setup (idempotent), formatting,
# lints, then every test in the workspace. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "forge-gen check"
cargo run -q -p generator -- check

step "forge-gen end-to-end"
bash scripts/generator-e2e.sh
