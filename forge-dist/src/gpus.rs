//! The NVIDIA GPUs the driver reports, by model name, for `forge doctor`
//! (libtorch tells how many CUDA devices there are, not what they are).
//!
//! Read from `/proc/driver/nvidia/gpus/<bus id>/information` (Linux), whose
//! `Model:` line names the card. Nothing is listed where the folder is
//! missing (no NVIDIA driver, or another OS).

use std::path::Path;

/// One GPU: its PCI bus id and model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub bus_id: String,
    pub model: String,
}

/// The GPUs under `/proc/driver/nvidia/gpus`.
pub fn nvidia_gpus() -> Vec<Gpu> {
    nvidia_gpus_in(Path::new("/proc/driver/nvidia/gpus"))
}

/// The GPUs under `root` (one folder per bus id), in bus order; a folder
/// without a readable `Model:` line is listed as `unknown model`.
pub fn nvidia_gpus_in(root: &Path) -> Vec<Gpu> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut gpus: Vec<Gpu> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let info = std::fs::read_to_string(e.path().join("information")).unwrap_or_default();
            let model = info
                .lines()
                .find_map(|l| l.strip_prefix("Model:"))
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "unknown model".into());
            Gpu {
                bus_id: e.file_name().to_string_lossy().into_owned(),
                model,
            }
        })
        .collect();
    gpus.sort_by(|a, b| a.bus_id.cmp(&b.bus_id));
    gpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_read_in_bus_order() {
        let root = std::env::temp_dir().join(format!("forge-gpus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (bus, info) in [
            ("0000:c1:00.0", "Model: \t\t NVIDIA H200\nIRQ: 1\n"),
            (
                "0000:18:00.0",
                "Model: \t\t NVIDIA A100-SXM4-80GB\nIRQ: 2\n",
            ),
            ("0000:99:00.0", "IRQ: 3\n"),
        ] {
            std::fs::create_dir_all(root.join(bus)).unwrap();
            std::fs::write(root.join(bus).join("information"), info).unwrap();
        }
        let gpus = nvidia_gpus_in(&root);
        let _ = std::fs::remove_dir_all(&root);
        let got: Vec<(&str, &str)> = gpus
            .iter()
            .map(|g| (g.bus_id.as_str(), g.model.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("0000:18:00.0", "NVIDIA A100-SXM4-80GB"),
                ("0000:99:00.0", "unknown model"),
                ("0000:c1:00.0", "NVIDIA H200"),
            ]
        );
        assert!(nvidia_gpus_in(Path::new("/no/such/folder")).is_empty());
    }
}
