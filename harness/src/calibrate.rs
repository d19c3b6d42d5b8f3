//! `sluice calibrate gpu`: measures a real kernel's batch-latency curve on the GPU and writes
//! a profile file that a gpu-worker scenario names (`[gpu] profile = "profiles/t4.toml"`).
//!
//! The kernel stands in for a model's forward pass: `layers` matrix multiplies of a
//! `batch × dim` activation by a `dim × dim` weight (a tiled single-precision GEMM), with the
//! batch's input copied to the GPU before and its output copied back after, as an inference
//! server does. Each batch size is timed `repeats` times after `warmup` untimed runs; the
//! profile keeps the median.
//!
//! The GPU code is behind the `gpu` cargo feature (cudarc, loading the CUDA driver at run
//! time). Without the feature, or without a GPU and driver, the command exits 2 with a clear
//! message; it never panics.

use crate::outcome::Outcome;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `sluice calibrate ...`.
#[derive(Subcommand, Debug)]
pub enum CalibrateCommand {
    /// Measure a GPU's batch-latency curve and write a gpu-worker profile.
    Gpu(GpuArgs),
}

/// Options of `sluice calibrate gpu`.
#[derive(Args, Debug, Clone)]
pub struct GpuArgs {
    /// A name for the GPU in the profile (default: the name the driver reports).
    #[arg(long)]
    pub kind: Option<String>,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, default_value = "1,2,4,8,16,32,64", value_delimiter = ',')]
    pub batches: Vec<u32>,
    /// Where to write the profile.
    #[arg(long, default_value = "profiles/gpu.toml")]
    pub out: PathBuf,
    /// The model's hidden size: each layer multiplies a batch × dim matrix by dim × dim.
    #[arg(long, default_value_t = 4096)]
    pub dim: u32,
    /// Layers (matrix multiplies) per forward pass.
    #[arg(long, default_value_t = 8)]
    pub layers: u32,
    /// Timed runs per batch size (the median is kept).
    #[arg(long, default_value_t = 20)]
    pub repeats: u32,
    /// Untimed runs per batch size before timing.
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,
    /// The CUDA device to use.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
}

/// What a calibration measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The GPU's name.
    pub gpu: String,
    /// `(batch size, median latency in ms)`, batch sizes increasing.
    pub points: Vec<(u32, f64)>,
}

/// Runs `sluice calibrate ...`.
pub fn calibrate(command: &CalibrateCommand) -> Outcome {
    match command {
        CalibrateCommand::Gpu(args) => gpu(args),
    }
}

fn gpu(args: &GpuArgs) -> Outcome {
    let mut batches = args.batches.clone();
    batches.sort_unstable();
    batches.dedup();
    if batches.is_empty() || batches[0] == 0 {
        return Outcome::BadInput(
            "error: --batches needs batch sizes of at least 1, e.g. --batches 1,2,4,8".into(),
        );
    }
    if args.dim == 0 || args.layers == 0 || args.repeats == 0 {
        return Outcome::BadInput("error: --dim, --layers and --repeats must be at least 1".into());
    }
    let measured = match measure(args, &batches) {
        Ok(m) => m,
        Err(msg) => return Outcome::BadInput(format!("error: {msg}")),
    };
    let text = profile_text(args, &measured);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return Outcome::BadInput(format!("error: cannot create {}: {e}", dir.display()));
    }
    if let Err(e) = std::fs::write(&args.out, text) {
        return Outcome::BadInput(format!("error: cannot write {}: {e}", args.out.display()));
    }
    println!("{}: batch latency on {}", args.out.display(), measured.gpu);
    for (b, ms) in &measured.points {
        println!("  batch {b:>5}  {ms:>10.3} ms  ({:.0} items/s)", f64::from(*b) / ms * 1000.0);
    }
    Outcome::Ok
}

/// The profile file for `measured` (the format `[gpu] profile` reads).
pub fn profile_text(args: &GpuArgs, m: &Measured) -> String {
    let kind = args.kind.clone().unwrap_or_else(|| m.gpu.clone());
    let mut s = format!(
        "# A batch-latency profile for the gpu-worker pattern, measured by `sluice calibrate gpu`.\n\
         gpu = {kind:?}\n\
         source = {:?}\n\
         measured = true\n\
         kernel = {:?}\n",
        format!("sluice calibrate gpu on {}, median of {} runs", m.gpu, args.repeats),
        format!(
            "{} x tiled fp32 GEMM (batch x {d}) * ({d} x {d}), input and output copied",
            args.layers,
            d = args.dim
        ),
    );
    for (b, ms) in &m.points {
        s.push_str(&format!("\n[[points]]\nbatch = {b}\nlatency_ms = {ms:.4}\n"));
    }
    s
}

#[cfg(not(feature = "gpu"))]
fn measure(_: &GpuArgs, _: &[u32]) -> Result<Measured, String> {
    Err("built without GPU support: rebuild with --features gpu \
         (cargo build --release -p sluice --features gpu)"
        .into())
}

#[cfg(feature = "gpu")]
fn measure(args: &GpuArgs, batches: &[u32]) -> Result<Measured, String> {
    cuda::measure(args, batches)
}

#[cfg(feature = "gpu")]
mod cuda {
    use super::{GpuArgs, Measured};
    use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg};
    use cudarc::nvrtc::Ptx;
    use std::time::Instant;

    /// The kernel's source: a 16 × 16 tiled single-precision GEMM, C = A × B.
    const KERNEL: &str = include_str!("calibrate/matmul.cu");
    /// The same kernel compiled to PTX (compute_70, PTX ISA 8.2) with NVRTC 12.2 ahead of
    /// time, for machines that have a driver but no NVRTC library.
    const KERNEL_PTX: &str = include_str!("calibrate/matmul.ptx");
    const TILE: u32 = 16;

    fn ptx() -> Ptx {
        // SAFETY: only asks whether the library can be loaded.
        if unsafe { cudarc::nvrtc::sys::is_culib_present() }
            && let Ok(ptx) = cudarc::nvrtc::compile_ptx(KERNEL)
        {
            return ptx;
        }
        Ptx::from_src(KERNEL_PTX)
    }

    pub(super) fn measure(args: &GpuArgs, batches: &[u32]) -> Result<Measured, String> {
        // CudaContext::new panics when libcuda cannot be loaded: ask first.
        // SAFETY: only asks whether the library can be loaded.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("no CUDA driver found (libcuda could not be loaded): `sluice calibrate \
                        gpu` needs an NVIDIA GPU and its driver"
                .into());
        }
        let count = CudaContext::device_count()
            .map_err(|e| format!("the CUDA driver found no usable GPU: {e}"))?;
        if count <= 0 || args.device >= count as usize {
            return Err(format!(
                "no CUDA device {} (the driver sees {count} device(s))",
                args.device
            ));
        }
        let e = |what: &str| {
            let what = what.to_string();
            move |err: cudarc::driver::DriverError| format!("{what}: {err}")
        };
        let ctx = CudaContext::new(args.device).map_err(e("cannot open the CUDA device"))?;
        let gpu = ctx.name().map_err(e("cannot read the device name"))?;
        let stream = ctx.default_stream();
        let module = ctx.load_module(ptx()).map_err(e("cannot load the kernel"))?;
        let matmul = module.load_function("matmul").map_err(e("cannot find the kernel"))?;
        let d = args.dim as usize;
        let max_b = *batches.last().expect("at least one batch size") as usize;
        let weights: Vec<f32> = (0..d * d).map(|i| ((i % 17) as f32 - 8.0) * 1e-3).collect();
        let input: Vec<f32> = (0..max_b * d).map(|i| ((i % 13) as f32 - 6.0) * 1e-2).collect();
        let w = stream.clone_htod(&weights).map_err(e("cannot copy the weights"))?;
        let mut x = stream.alloc_zeros::<f32>(max_b * d).map_err(e("out of GPU memory"))?;
        let mut y = stream.alloc_zeros::<f32>(max_b * d).map_err(e("out of GPU memory"))?;
        let mut out = vec![0f32; max_b * d];
        let mut points = Vec::new();
        for &b in batches {
            let n = b as usize * d;
            let cfg = LaunchConfig {
                grid_dim: (args.dim.div_ceil(TILE), b.div_ceil(TILE), 1),
                block_dim: (TILE, TILE, 1),
                shared_mem_bytes: 0,
            };
            let (m, dim) = (b as i32, args.dim as i32);
            let mut forward = || -> Result<(), cudarc::driver::DriverError> {
                stream.memcpy_htod(&input[..n], &mut x.slice_mut(..n))?;
                for layer in 0..args.layers {
                    let (src, dst) = if layer % 2 == 0 { (&x, &mut y) } else { (&y, &mut x) };
                    let mut launch = stream.launch_builder(&matmul);
                    launch.arg(src).arg(&w).arg(dst).arg(&m).arg(&dim).arg(&dim);
                    // SAFETY: the kernel's parameters are (const float*, const float*,
                    // float*, int M, int N, int K), matching the arguments above; the
                    // buffers hold max_b × dim and dim × dim floats.
                    unsafe { launch.launch(cfg) }?;
                }
                let last = if args.layers % 2 == 1 { &y } else { &x };
                stream.memcpy_dtoh(&last.slice(..n), &mut out[..n])?;
                stream.synchronize()
            };
            for _ in 0..args.warmup {
                forward().map_err(e("the kernel failed"))?;
            }
            let mut times = Vec::with_capacity(args.repeats as usize);
            for _ in 0..args.repeats {
                let start = Instant::now();
                forward().map_err(e("the kernel failed"))?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            points.push((b, times[times.len() / 2]));
        }
        Ok(Measured { gpu, points })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_reads_back_as_the_batch_latency_table() {
        let args = GpuArgs {
            kind: Some("T4".into()),
            batches: vec![1, 8],
            out: PathBuf::from("x.toml"),
            dim: 1024,
            layers: 4,
            repeats: 5,
            warmup: 1,
            device: 0,
        };
        let m = Measured { gpu: "Tesla T4".into(), points: vec![(1, 1.25), (8, 2.5)] };
        let text = profile_text(&args, &m);
        let table = sim::model::gpu::BatchLatency::from_profile(&text).expect("valid profile");
        assert_eq!(
            table,
            sim::model::gpu::BatchLatency::Table(vec![(1, 1_250_000), (8, 2_500_000)])
        );
        assert!(text.contains("measured = true") && text.contains("gpu = \"T4\""), "{text}");
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn without_the_feature_it_says_how_to_rebuild() {
        let args = GpuArgs {
            kind: None,
            batches: vec![1],
            out: PathBuf::from("never-written.toml"),
            dim: 16,
            layers: 1,
            repeats: 1,
            warmup: 0,
            device: 0,
        };
        match gpu(&args) {
            Outcome::BadInput(msg) => assert!(msg.contains("--features gpu"), "{msg}"),
            other => panic!("expected bad input, got {other:?}"),
        }
        assert!(!std::path::Path::new("never-written.toml").exists());
    }
}
