//! Links libtorch for forge-core's own tests (rpath, libtorch_cuda) and
//! compiles the small C++ shim in `csrc/` that controls autocast.

fn main() {
    forge_build::link_libtorch();
    forge_build::compile_shim("forge_autocast", "csrc/autocast.cpp", "c++17", |_| {});
}
