//! Which libtorch this process runs on and what it can use: the facts
//! `forge doctor` reports, and the device choice every pipeline makes.
//!
//! The library path is read from the loader's own map of the process
//! (`/proc/self/maps`), so it is the file actually loaded, not the one the
//! build expected.

use std::path::{Path, PathBuf};

use tch::Device;

/// The libtorch version forge is built for (tch 0.26).
pub const EXPECTED_TORCH_VERSION: &str = "2.13.0";

/// A snapshot of the runtime environment.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    /// Folder of the loaded `libtorch_cpu.so`, if found.
    pub libtorch_lib: Option<PathBuf>,
    /// Folder the build linked against (rpath target).
    pub built_against: Option<PathBuf>,
    /// Version from the torch package's `version.py` next to the library.
    pub torch_version: Option<String>,
    /// Whether `libtorch_cuda.so` is loaded into the process.
    pub cuda_library_loaded: bool,
    /// Whether CUDA is usable (driver and device present).
    pub cuda_available: bool,
    /// Number of CUDA devices.
    pub cuda_devices: i64,
    /// Intra-op CPU threads libtorch uses.
    pub threads: i32,
}

impl RuntimeInfo {
    /// Inspects the current process.
    pub fn detect() -> Self {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let loaded = |lib: &str| {
            maps.lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .find(|p| Path::new(p).file_name().is_some_and(|f| f == lib))
                .map(PathBuf::from)
        };
        let libtorch_lib =
            loaded("libtorch_cpu.so").and_then(|p| p.parent().map(Path::to_path_buf));
        let torch_version = libtorch_lib
            .as_deref()
            .and_then(|lib| lib.parent())
            .and_then(|torch| std::fs::read_to_string(torch.join("version.py")).ok())
            .and_then(|text| parse_version_py(&text));
        RuntimeInfo {
            built_against: option_env!("FORGE_LIBTORCH_LIB").map(PathBuf::from),
            cuda_library_loaded: loaded("libtorch_cuda.so").is_some(),
            cuda_available: tch::Cuda::is_available(),
            cuda_devices: tch::Cuda::device_count(),
            threads: tch::get_num_threads(),
            libtorch_lib,
            torch_version,
        }
    }

    /// Problems with the setup, each with what to do about it. Empty when
    /// all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.torch_version {
            Some(v) if v.split('+').next() == Some(EXPECTED_TORCH_VERSION) => {}
            Some(v) => out.push(format!(
                "libtorch is {v} but forge is built for {EXPECTED_TORCH_VERSION}; \
                 run scripts/setup.sh and rebuild (cargo clean -p torch-sys)"
            )),
            None => out.push(
                "could not tell the libtorch version (no version.py beside the library); \
                 run scripts/setup.sh"
                    .to_string(),
            ),
        }
        if self.libtorch_lib.is_none() {
            out.push(
                "libtorch_cpu.so is not loaded: the binary was not linked against libtorch".into(),
            );
        }
        let cuda_lib_on_disk = self
            .libtorch_lib
            .as_deref()
            .is_some_and(|lib| lib.join("libtorch_cuda.so").exists());
        if cuda_lib_on_disk && !self.cuda_library_loaded {
            out.push(
                "libtorch_cuda.so exists but is not loaded, so no GPU can be used; \
                 rebuild so forge-build links it (--no-as-needed)"
                    .into(),
            );
        }
        out
    }

    /// The device pipelines use: the first GPU when CUDA is available, else
    /// the CPU.
    pub fn default_device() -> Device {
        Device::cuda_if_available()
    }
}

fn parse_version_py(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_linked_libtorch() {
        let info = RuntimeInfo::detect();
        assert!(info.libtorch_lib.is_some(), "{info:?}");
        assert!(info.threads >= 1);
        assert!(info.problems().is_empty(), "{:?}", info.problems());
    }

    #[test]
    fn parses_version_py() {
        let text = "x = 1\n__version__ = '2.13.0+cu130'\n";
        assert_eq!(parse_version_py(text).as_deref(), Some("2.13.0+cu130"));
    }
}
