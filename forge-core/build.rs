//! Links libtorch for forge-core's own tests (rpath, libtorch_cuda) and
//! compiles the small C++ shim in `csrc/` that controls autocast.

use std::path::PathBuf;

fn main() {
    forge_build::link_libtorch();
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        return;
    };
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .file("csrc/autocast.cpp")
        .compile("forge_autocast");
}
