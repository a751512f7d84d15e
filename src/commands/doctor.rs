//! `forge doctor`: reports which libtorch forge runs on, what this machine
//! offers for training (CUDA devices, process-group backends, the launcher
//! environment, CPU bfloat16 units, threads) and what is wrong with the
//! setup, if anything (then it exits 1).

use std::process::ExitCode;

use forge_core::precision::CpuMatrixUnits;
use forge_core::runtime::RuntimeInfo;

pub fn run() -> anyhow::Result<ExitCode> {
    let info = RuntimeInfo::detect();
    let show = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or("(not found)".to_string(), |p| p.display().to_string())
    };
    println!("forge        {}", env!("CARGO_PKG_VERSION"));
    println!(
        "torch        {}",
        info.torch_version.as_deref().unwrap_or("(unknown)")
    );
    println!("libtorch     {}", show(&info.libtorch_lib));
    println!("built with   {}", show(&info.built_against));
    println!(
        "cuda         {} (libtorch_cuda {}, {} device{})",
        if info.cuda_available {
            "available"
        } else {
            "not available"
        },
        if info.cuda_library_loaded {
            "linked"
        } else {
            "not linked"
        },
        info.cuda_devices,
        if info.cuda_devices == 1 { "" } else { "s" }
    );
    let gpus = forge_dist::gpus::nvidia_gpus();
    if gpus.is_empty() {
        println!("gpus         none reported by an NVIDIA driver (/proc/driver/nvidia/gpus)");
    }
    for g in &gpus {
        println!("gpu          {} ({})", g.model, g.bus_id);
    }
    for b in forge_dist::backends() {
        println!("c10d {:<7} {}", b.name, b.detail);
    }
    let mut problems = info.problems();
    match forge_dist::LaunchEnv::detect() {
        Ok(env) => {
            println!("launcher     {}", env.summary());
            for w in &env.warnings {
                println!("launcher     {w}");
            }
        }
        Err(e) => {
            println!("launcher     (invalid)");
            problems.push(format!("launcher environment: {e}"));
        }
    }
    println!("threads      {}", info.threads);
    println!(
        "device       {:?}",
        forge_core::runtime::RuntimeInfo::default_device()
    );
    println!(
        "bf16 on cpu  {}",
        CpuMatrixUnits::bf16_summary(CpuMatrixUnits::detect())
    );
    if problems.is_empty() {
        println!("status       ok");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("problem      {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
