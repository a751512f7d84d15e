//! Gives this package's test binaries an rpath to libtorch (see forge-build).

fn main() {
    forge_build::link_libtorch();
}
