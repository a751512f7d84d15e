//! forge-gen's tests, in one binary (no libtorch here, so they are fast):
//! snapshots of the rendered files, the generator's promises (dry run,
//! idempotence, all-or-nothing writes, refusals, exact removal, hand
//! edits), the real workspace's files, and the binary itself.

mod behaviour;
mod cli;
mod common;
mod real_tree;
mod snapshots;
