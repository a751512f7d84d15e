//! Build-script helper shared by every forge package that links libtorch.
//!
//! `torch-sys` tells the linker where libtorch is, but not the loader: a plain
//! binary would need `LD_LIBRARY_PATH` to start. It also lets the linker drop
//! `libtorch_cuda` (nothing references it by symbol), so a binary built
//! against a CUDA-enabled libtorch would silently run on CPU only.
//!
//! [`link_libtorch`] fixes both for the package whose `build.rs` calls it: it
//! adds an rpath to the libtorch library folder and, when `libtorch_cuda.so`
//! exists there, links it with `--no-as-needed`. It is not a replacement for
//! `torch-sys`'s own discovery; it reads the same `LIBTORCH` variable that
//! `.cargo/config.toml` sets.
//!
//! [`compile_shim`] builds a crate's small C++ shim (autocast, c10d) against
//! the same libtorch, with the flags torch-sys uses.

use std::env;
use std::path::PathBuf;

/// Emits the linker arguments described in the module docs.
///
/// Call it from `build.rs`. Prints a cargo warning (and emits nothing) when
/// `LIBTORCH` is unset or its `lib` folder is missing, since `torch-sys` will
/// already have failed with its own message in that case.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(lib_dir) = libtorch_lib_dir() else {
        println!(
            "cargo:warning=LIBTORCH is not set or has no lib/ folder; run scripts/setup.sh first"
        );
        return;
    };
    // Resolve the `.venv` symlink so the rpath stays valid for the lifetime
    // of the shared install, whichever checkout built the binary.
    let lib_dir = lib_dir.canonicalize().unwrap_or(lib_dir);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rustc-env=FORGE_LIBTORCH_LIB={}", lib_dir.display());
}

fn libtorch_lib_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env::var_os("LIBTORCH")?);
    let lib = root.join("lib");
    lib.is_dir().then_some(lib)
}

/// Compiles the C++ file `file` into the static library `name`, against the
/// headers of `LIBTORCH`, in the C++ standard `std` (e.g. `"c++17"`) and the
/// C++11 ABI that torch-sys uses (`LIBTORCH_CXX11_ABI`, default 1).
/// `configure` adds the shim's own includes and defines.
///
/// Returns `false`, building nothing, when `LIBTORCH` is unset (torch-sys
/// has already said why) or when cross-compiling: the host's libtorch does
/// not fit another target, and a cross `cargo check` (the Windows check)
/// needs no object code. The second case is said in one cargo warning.
pub fn compile_shim(
    name: &str,
    file: &str,
    std: &str,
    configure: impl FnOnce(&mut cc::Build),
) -> bool {
    println!("cargo:rerun-if-changed={file}");
    let Some(libtorch) = env::var_os("LIBTORCH").map(PathBuf::from) else {
        return false;
    };
    let (target, host) = (env::var("TARGET"), env::var("HOST"));
    if target != host {
        println!(
            "cargo:warning=cross-compiling for {}: {file} is not built against the host's \
             libtorch; the result type-checks but does not link",
            target.unwrap_or_default()
        );
        return false;
    }
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .flag(format!("-std={std}"))
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"));
    configure(&mut build);
    build.file(file).compile(name);
    true
}
