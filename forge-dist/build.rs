//! Links libtorch (rpath, libtorch_cuda) and compiles the c10d shim in
//! `csrc/c10d.cpp` with the Gloo process group (`-DUSE_C10D_GLOO`), against
//! the gloo headers vendored in `third_party/gloo`.
//!
//! The NCCL process group is not compiled: the shim has no NCCL code yet.
//! The build still looks for the headers it would need (CUDA runtime and
//! NCCL, under `CUDA_HOME`/`CUDA_PATH` or the venv's `nvidia` packages) and
//! hands the finding to the crate as `FORGE_DIST_NCCL`, which
//! `forge_dist::backends()` (and so `forge doctor`) reports.

use std::path::{Path, PathBuf};

fn main() {
    forge_build::link_libtorch();
    println!("cargo:rerun-if-changed=third_party/gloo");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=CUDA_PATH");
    println!("cargo:rerun-if-env-changed=FORGE_VENV");
    println!("cargo:rustc-env=FORGE_DIST_NCCL={}", nccl_finding());
    // torch 2.13's c10 headers use C++20 features.
    forge_build::compile_shim("forge_c10d", "csrc/c10d.cpp", "c++20", |b| {
        b.include("third_party/gloo").define("USE_C10D_GLOO", None);
    });
}

/// One line for `forge doctor` on the NCCL process group.
fn nccl_finding() -> String {
    let mut roots: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(|v| std::env::var_os(v).map(PathBuf::from))
        .map(|p| p.join("include"))
        .collect();
    if let Some(venv) = std::env::var_os("FORGE_VENV").map(PathBuf::from) {
        roots.extend(venv_nvidia_includes(&venv));
    }
    let find = |name: &str| roots.iter().find(|r| r.join(name).is_file()).cloned();
    match (find("cuda_runtime_api.h"), find("nccl.h")) {
        (Some(cuda), Some(nccl)) => format!(
            "not built: the CUDA and NCCL headers are present ({}, {}) but forge's c10d shim has no NCCL process group yet",
            cuda.display(),
            nccl.display()
        ),
        (None, _) => "not built: no CUDA runtime headers (cuda_runtime_api.h under CUDA_HOME, CUDA_PATH or the venv's nvidia packages)".into(),
        (_, None) => "not built: no NCCL headers (nccl.h under CUDA_HOME, CUDA_PATH or the venv's nvidia packages)".into(),
    }
}

/// `include` folders of the venv's `nvidia/*` (and `nvidia/*/*`) packages.
fn venv_nvidia_includes(venv: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return out;
    };
    for py in libs.flatten() {
        let nvidia = py.path().join("site-packages/nvidia");
        let Ok(pkgs) = std::fs::read_dir(&nvidia) else {
            continue;
        };
        for pkg in pkgs.flatten() {
            out.push(pkg.path().join("include"));
            if let Ok(sub) = std::fs::read_dir(pkg.path()) {
                out.extend(sub.flatten().map(|s| s.path().join("include")));
            }
        }
    }
    out
}
