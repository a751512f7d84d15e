//! A crate that links libtorch needs this for its own binaries (tests
//! included) to start without `LD_LIBRARY_PATH`: see `forge-build`.

fn main() {
    forge_build::link_libtorch();
}
