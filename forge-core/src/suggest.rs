//! "Did you mean ...?" suggestions for misspelt names (model names, config
//! keys, enum values).

/// Returns the candidate closest to `input`, when it is close enough to be a
/// plausible typo: the one rule forge-core, the derive and forge-gen share
/// (see [`forge_names::closest`]).
pub use forge_names::closest;
