//! Links libtorch for forge-core's own tests (rpath, libtorch_cuda) and
//! compiles the small C++ shim in `csrc/` that controls autocast.

use std::path::PathBuf;

fn main() {
    forge_build::link_libtorch();
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        return;
    };
    // LIBTORCH is the host's install: its headers and libraries do not fit
    // another target. A cross `cargo check` (the Windows check of the data
    // crate) needs no object code, so the shim is skipped there, said once.
    let (target, host) = (std::env::var("TARGET"), std::env::var("HOST"));
    if target != host {
        println!(
            "cargo:warning=cross-compiling for {}: csrc/autocast.cpp is not built against the \
             host's libtorch; the result type-checks but does not link",
            target.unwrap_or_default()
        );
        return;
    }
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
