//! The workspace's integration tests, in one binary (each test binary links
//! libtorch, which is slow): models, registry, derive, CLI.

// The example plugin crate registers its model at link time; referencing the
// crate is what links it in.
use forge_plugin_example as _;

mod cli;
mod common;
mod compile_fail;
mod derive;
mod distributed;
mod embed_parity;
mod features;
mod models;
mod pipelines;
mod registry;
