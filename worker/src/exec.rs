//! `qor-worker exec`: one job, locally, through the same code path providers run — what a buyer uses to
//! re-check a result. Inputs are copied into a fresh job folder only after their hashes match the spec.
//! The module is compiled in a bounded child process and kept in a module cache, as a worker does.

use std::path::{Path, PathBuf};

use alloy_primitives::keccak256;
use anyhow::{Context, bail};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use qor_protocol::spec::JobSpec;

use crate::compile::{CompileBounds, Compiler};
use crate::sandbox::{Outcome, Sandbox, StderrHead};

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
    /// Copy the files the module wrote under `/out` into this folder (created if missing; files
    /// already there are not overwritten).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where compiled modules are kept [default: `$XDG_CACHE_HOME/qor/modules` or
    /// `~/.cache/qor/modules`].
    #[arg(long)]
    pub module_cache: Option<PathBuf>,
    /// Compile every time instead of using the module cache.
    #[arg(long, conflicts_with = "module_cache")]
    pub no_cache: bool,
    /// Most memory compiling the module may take, MiB.
    #[arg(long, default_value_t = CompileBounds::default().memory_bytes >> 20)]
    pub compile_memory_mib: u64,
    /// Longest compiling the module may take, seconds.
    #[arg(long, default_value_t = CompileBounds::default().time.as_secs())]
    pub compile_secs: u64,
}

/// What one local run gives.
#[derive(Debug)]
pub struct Run {
    /// The outcome, as a worker would report it.
    pub outcome: Outcome,
    /// The first part of what the module wrote to stderr (not part of the result).
    pub stderr: Vec<u8>,
    /// Whether the module came from the module cache (`None`: it never compiled).
    pub cache: Option<crate::cache::CacheStatus>,
}

/// The user's cache folder: `$XDG_CACHE_HOME`, else `~/.cache`.
pub fn cache_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
}

/// The module cache `exec` uses unless told otherwise.
pub fn default_module_cache() -> Option<PathBuf> {
    cache_home().map(|base| base.join("qor").join("modules"))
}

/// Runs the job and returns its outcome and stderr.
pub fn exec(args: &ExecArgs) -> anyhow::Result<Run> {
    let spec_bytes = std::fs::read(&args.spec).with_context(|| format!("reading {}", args.spec.display()))?;
    let spec = JobSpec::from_json(&spec_bytes).with_context(|| format!("{} is not a valid job spec", args.spec.display()))?;
    let module = std::fs::read(&args.module).with_context(|| format!("reading {}", args.module.display()))?;
    let bounds = CompileBounds { memory_bytes: args.compile_memory_mib << 20, time: std::time::Duration::from_secs(args.compile_secs) };
    let mut sandbox = Sandbox::new()?.with_compiler(Compiler::new(std::env::current_exe().context("the worker's own binary")?, bounds));
    if !args.no_cache
        && let Some(dir) = args.module_cache.clone().or_else(default_module_cache)
    {
        sandbox = sandbox.with_module_cache(&dir)?;
    }

    let job = tempfile::Builder::new().prefix("qor-job-").tempdir().context("a job folder")?;
    let root = Dir::open_ambient_dir(job.path(), ambient_authority())?;
    root.create_dir("in")?;
    root.create_dir("out")?;
    let job_in = root.open_dir("in")?;
    if !spec.inputs.is_empty() {
        let Some(src) = &args.inputs else { bail!("the spec has inputs; pass --inputs <dir>") };
        let src = Dir::open_ambient_dir(src, ambient_authority()).with_context(|| format!("opening {}", src.display()))?;
        copy_verified_inputs(&spec, &src, &job_in)?;
    }
    let stderr = StderrHead::default();
    let (outcome, cache) = match sandbox.prepare(&spec, &module)? {
        Ok((module, status)) => (sandbox.run_module_with_stderr(&spec, &module, job.path(), &stderr)?, Some(status)),
        Err(refused) => (refused, None),
    };
    if let Some(dest) = &args.out
        && matches!(outcome, Outcome::Completed { .. })
    {
        copy_outputs(&root.open_dir("out")?, dest)?;
    }
    Ok(Run { outcome, stderr: stderr.contents(), cache })
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

/// Copies the regular files under `out` (the result's files) into `dest`, never following a link the
/// module made and never overwriting a file already in `dest`.
fn copy_outputs(out: &Dir, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let dest = Dir::open_ambient_dir(dest, ambient_authority()).with_context(|| format!("opening {}", dest.display()))?;
    for (path, _) in crate::sandbox::output_files(out)? {
        if let Some(parent) = Path::new(&path).parent().filter(|p| !p.as_os_str().is_empty()) {
            dest.create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let data = out.read(&path).with_context(|| format!("reading /out/{path}"))?;
        let mut file = dest
            .open_with(&path, cap_std::fs::OpenOptions::new().write(true).create_new(true))
            .with_context(|| format!("writing {path} (already there?)"))?;
        std::io::Write::write_all(&mut file, &data)?;
    }
    Ok(())
}
