//! `sluice merge`: combine the shard directories of a sharded sweep.
//!
//! ```text
//! sluice sweep s.toml --grid consumer.instances=2,4,8 --shard 1/2 --out shards/1
//! sluice sweep s.toml --grid consumer.instances=2,4,8 --shard 2/2 --out shards/2
//! sluice merge shards/1 shards/2 --out runs/sweep
//! ```
//!
//! Each shard holds the sweep's plan and its points (latency histograms included, so
//! percentiles merge exactly); the merged files are byte for byte those of an unsharded run.

use crate::outcome::Outcome;
use clap::Args;
use reports::Formats;
use std::path::PathBuf;

/// Options of `sluice merge`.
#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Shard directories written by `sluice sweep --shard I/N`.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, required = true)]
    pub out: PathBuf,
    /// Reports besides sweep.json and sweep.csv: any of html, md, png, svg, all or none.
    #[arg(long, default_value = "html,md,svg")]
    pub report: String,
}

/// Runs `sluice merge`.
pub fn merge(args: &MergeArgs) -> Outcome {
    let formats: Formats = match args.report.parse() {
        Ok(f) => f,
        Err(e) => return Outcome::BadInput(format!("error: --report: {e}")),
    };
    let mut plan = None;
    let mut points = Vec::new();
    for dir in &args.dirs {
        let p = match reports::sweep::read_plan(dir) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::BadInput(format!(
                    "error: {e}\n  expected a directory written by `sluice sweep --shard I/N`"
                ));
            }
        };
        match &plan {
            None => plan = Some(p),
            Some(first) if *first != p => {
                return Outcome::BadInput(format!(
                    "error: {} belongs to another sweep than {} (scenario, grid, seeds or --set \
                     differ)",
                    dir.display(),
                    args.dirs[0].display()
                ));
            }
            Some(_) => {}
        }
        match reports::sweep::read_points(dir) {
            Ok(mut p) => points.append(&mut p),
            Err(e) => return Outcome::BadInput(format!("error: {e}")),
        }
    }
    let plan = plan.expect("at least one directory");
    points.sort_by_key(|p| p.index);
    if let Some(w) = points.windows(2).find(|w| w[0].index == w[1].index) {
        return Outcome::BadInput(format!(
            "error: point {} appears in more than one shard directory",
            w[0].index
        ));
    }
    if let Err(e) = reports::sweep::write_plan(&args.out, &plan) {
        return Outcome::BadInput(format!("error: {e}"));
    }
    for p in &points {
        if let Err(e) = reports::sweep::write_point(&args.out, p) {
            return Outcome::BadInput(format!("error: {e}"));
        }
    }
    eprintln!("sluice merge: {} shard directories, {} points", args.dirs.len(), points.len());
    crate::sweep::finish(&args.out, &plan, points, &formats)
}
