//! The GPU worker's bounds, judged on its summary section: no batch larger than `max_batch`,
//! no batch that waited longer than `max_wait` to fill, a utilization between 0 and 1.

use crate::check::{Checker, Violation};
use crate::model::meters::TraceEvent;
use crate::results::RunResults;
use crate::time::{NS_PER_MS, Nanos};

/// `gpu.batch_size_mean <= max_batch`, `gpu.fill_wait_ms_max <= max_wait`,
/// `0 <= gpu.utilization <= 1`.
#[derive(Debug)]
pub struct GpuBounds {
    /// `[gpu] max_batch`.
    pub max_batch: u32,
    /// `[gpu] max_wait`.
    pub max_wait: Nanos,
}

impl Checker for GpuBounds {
    fn name(&self) -> &'static str {
        "gpu-bounds"
    }

    fn observe(&mut self, _: &TraceEvent) {}

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        let Some(gpu) = r.sections.get("gpu") else { return };
        let field = |name: &str| gpu.get(name).copied().unwrap_or(0.0);
        let mut fail = |message: String| {
            out.push(Violation { checker: "gpu-bounds", at: r.sim_time, message });
        };
        let mean = field("batch_size_mean");
        if mean > f64::from(self.max_batch) {
            fail(format!("mean batch size {mean} is above max_batch {}", self.max_batch));
        }
        let waited = field("fill_wait_ms_max");
        let limit = self.max_wait as f64 / NS_PER_MS as f64;
        if waited > limit + 1e-9 {
            fail(format!("a batch waited {waited} ms to fill, above max_wait {limit} ms"));
        }
        let u = field("utilization");
        if !(0.0..=1.0).contains(&u) {
            fail(format!("GPU utilization {u} is outside [0, 1]"));
        }
    }
}
