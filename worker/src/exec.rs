//! `qor-worker exec`: one job, locally, through the same code path providers run — what a buyer uses to
//! re-check a result. Inputs are copied into a fresh job folder only after their hashes match the spec.

use std::path::{Path, PathBuf};

use alloy_primitives::{U256, keccak256};
use anyhow::{Context, bail};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use qor_protocol::spec::JobSpec;

use crate::sandbox::{Outcome, Sandbox};

/// What `exec` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// The job spec (JSON).
    pub spec: PathBuf,
    /// The WebAssembly module; its keccak256 must be the spec's `module`.
    #[arg(long)]
    pub module: PathBuf,
    /// Folder holding the spec's inputs under their `path`s; each must hash to its `hash`.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// The on-chain job id, which seeds the frozen clock and the random bytes.
    #[arg(long, default_value = "0")]
    pub job_id: U256,
}

/// Runs the job and returns its outcome.
pub fn exec(args: &ExecArgs) -> anyhow::Result<Outcome> {
    let spec_bytes = std::fs::read(&args.spec).with_context(|| format!("reading {}", args.spec.display()))?;
    let spec = JobSpec::from_json(&spec_bytes).with_context(|| format!("{} is not a valid job spec", args.spec.display()))?;
    let module = std::fs::read(&args.module).with_context(|| format!("reading {}", args.module.display()))?;

    let job = tempfile_dir()?;
    let root = Dir::open_ambient_dir(&job, ambient_authority())?;
    root.create_dir("in")?;
    root.create_dir("out")?;
    let result = (|| {
        let job_in = root.open_dir("in")?;
        if !spec.inputs.is_empty() {
            let Some(src) = &args.inputs else { bail!("the spec has inputs; pass --inputs <dir>") };
            let src = Dir::open_ambient_dir(src, ambient_authority()).with_context(|| format!("opening {}", src.display()))?;
            copy_verified_inputs(&spec, &src, &job_in)?;
        }
        Ok(Sandbox::new()?.run(&spec, args.job_id, &module, &job)?)
    })();
    let _ = std::fs::remove_dir_all(&job);
    result
}

/// Copies each input from `src` to `dst`, refusing any whose bytes do not hash to the spec's.
fn copy_verified_inputs(spec: &JobSpec, src: &Dir, dst: &Dir) -> anyhow::Result<()> {
    for input in &spec.inputs {
        let bytes = src.read(&input.path).with_context(|| format!("input `{}`", input.path))?;
        let got = keccak256(&bytes);
        if got != input.hash {
            bail!("input `{}` hash mismatch: got {got}, expected {}; refusing to run", input.path, input.hash);
        }
        if let Some(parent) = Path::new(&input.path).parent().filter(|p| !p.as_os_str().is_empty()) {
            dst.create_dir_all(parent)?;
        }
        dst.write(&input.path, &bytes)?;
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0u32..100 {
        let dir = base.join(format!("qor-job-{}-{attempt}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    bail!("could not create a job folder under {}", base.display())
}
