//! The job spec: what a buyer asks providers to run, and the bytes its on-chain `specHash` commits to.
//!
//! `spec_hash = keccak256(canonical JSON)`, where canonical JSON has object keys sorted, no whitespace,
//! integers as plain decimals and strings escaped minimally (RFC 8785 style; every integer field is
//! capped at 2^53 − 1 so a browser computes the same text). The CLI, the coordinator, the verifier and
//! the web app all hash this encoding; `contracts/test/data/protocol.json` pins examples.

use std::collections::BTreeMap;
use std::fmt;

use alloy_primitives::{B256, keccak256};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The spec format this crate reads and writes.
pub const SPEC_VERSION: u32 = 1;
/// The largest integer every side (JavaScript included) represents exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// wasm32 cannot address more than 4 GiB.
pub const MAX_MEMORY_BYTES: u64 = 1 << 32;
/// One wasm page: the least memory a module with memory can have.
pub const MIN_MEMORY_BYTES: u64 = 64 * 1024;
/// Most output a job may write (stdout plus files under /out).
pub const MAX_OUTPUT_BYTES: u64 = 1 << 30;
/// The longest wall-clock backstop.
pub const MAX_WALL_CLOCK_MS: u64 = 3_600_000;
/// The most replicas a job may ask for (as `JobEscrow.MAX_REDUNDANCY`).
pub const MAX_REDUNDANCY: u8 = 32;
const MAX_ARGS: usize = 256;
const MAX_ENV: usize = 256;
const MAX_INPUTS: usize = 1024;
const MAX_STRING: usize = 4096;
const MAX_PATH: usize = 255;

/// Errors reading or checking a spec. Every variant names the field at fault.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// The JSON does not have the spec's shape (unknown or duplicate field, wrong type, bad hex).
    #[error("{field}: {message}")]
    Malformed {
        /// JSON path of the offending field (`.` for the document).
        field: String,
        /// What the parser said.
        message: String,
    },
    /// A field has the right type but a value the protocol refuses.
    #[error("{field}: {reason}")]
    Invalid {
        /// JSON path of the offending field.
        field: String,
        /// Why the value is refused.
        reason: String,
    },
}

impl SpecError {
    /// JSON path of the field at fault.
    pub fn field(&self) -> &str {
        match self {
            Self::Malformed { field, .. } | Self::Invalid { field, .. } => field,
        }
    }
}

/// Result alias for this module.
pub type SpecResult<T> = Result<T, SpecError>;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid { field: field.into(), reason: reason.into() }
}

/// A compute job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobSpec {
    /// Spec format, [`SPEC_VERSION`].
    pub version: u32,
    /// keccak256 of the WebAssembly module's bytes.
    pub module: B256,
    /// Exported function to run (WASI commands export `_start`).
    #[serde(default = "default_entry")]
    pub entry: String,
    /// Arguments after the program name.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables; a name may appear only once.
    #[serde(default, deserialize_with = "unique_map")]
    pub env: BTreeMap<String, String>,
    /// Files placed read-only under `/in` (any order; the canonical encoding sorts them by path).
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// Resource limits.
    pub limits: Limits,
    /// Distinct providers that run the job.
    pub redundancy: u8,
}

fn default_entry() -> String {
    "_start".to_owned()
}

/// One input file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InputFile {
    /// Path below `/in`, relative, `/`-separated, no `.` or `..` parts.
    pub path: String,
    /// keccak256 of the file's bytes.
    pub hash: B256,
}

/// Resource limits; every one is enforced by the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Wasm fuel: the unit of billing and the deterministic trap point.
    pub fuel: u64,
    /// Linear memory cap in bytes.
    pub memory_bytes: u64,
    /// Cap on stdout plus everything written under `/out`, in bytes.
    pub output_bytes: u64,
    /// Wall-clock backstop in milliseconds; hitting it yields no result, never a digest.
    pub wall_clock_ms: u64,
}

impl JobSpec {
    /// Parses and checks a spec. Errors name fields as the document wrote them.
    pub fn from_json(json: &[u8]) -> SpecResult<Self> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        let spec: Self = serde_path_to_error::deserialize(de)
            .map_err(|e| SpecError::Malformed { field: json_path(&e.path().to_string()), message: e.inner().to_string() })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every rule of the protocol; `from_json` calls it, and so should anyone building a spec.
    pub fn validate(&self) -> SpecResult<()> {
        if self.version != SPEC_VERSION {
            return Err(invalid("version", format!("must be {SPEC_VERSION}, got {}", self.version)));
        }
        if self.entry.is_empty() || self.entry.len() > 64 || !self.entry.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid("entry", "must be 1 to 64 printable ASCII characters"));
        }
        if self.args.len() > MAX_ARGS {
            return Err(invalid("args", format!("at most {MAX_ARGS} arguments")));
        }
        for (i, arg) in self.args.iter().enumerate() {
            check_c_string(&format!("args[{i}]"), arg)?;
        }
        if self.env.len() > MAX_ENV {
            return Err(invalid("env", format!("at most {MAX_ENV} variables")));
        }
        for (name, value) in &self.env {
            let field = format!("env.{name}");
            let mut chars = name.chars();
            let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 128 {
                return Err(invalid(field, "names are [A-Za-z_][A-Za-z0-9_]*, at most 128 characters"));
            }
            check_c_string(&field, value)?;
        }
        if self.inputs.len() > MAX_INPUTS {
            return Err(invalid("inputs", format!("at most {MAX_INPUTS} files")));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, input) in self.inputs.iter().enumerate() {
            check_input_path(&format!("inputs[{i}].path"), &input.path)?;
            if !seen.insert(input.path.as_str()) {
                return Err(invalid(format!("inputs[{i}].path"), format!("`{}` appears twice", input.path)));
            }
        }
        let l = &self.limits;
        check_range("limits.fuel", l.fuel, 1, MAX_SAFE_INTEGER)?;
        check_range("limits.memoryBytes", l.memory_bytes, MIN_MEMORY_BYTES, MAX_MEMORY_BYTES)?;
        check_range("limits.outputBytes", l.output_bytes, 1, MAX_OUTPUT_BYTES)?;
        check_range("limits.wallClockMs", l.wall_clock_ms, 1, MAX_WALL_CLOCK_MS)?;
        if self.redundancy == 0 || self.redundancy > MAX_REDUNDANCY {
            return Err(invalid("redundancy", format!("must be 1 to {MAX_REDUNDANCY}, got {}", self.redundancy)));
        }
        Ok(())
    }

    /// The canonical JSON bytes: keys sorted, inputs sorted by path, no whitespace.
    pub fn canonical_json(&self) -> Vec<u8> {
        let mut normalized = self.clone();
        normalized.inputs.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let value = serde_json::to_value(&normalized).expect("a spec always serializes");
        let mut out = Vec::with_capacity(256);
        write_canonical(&value, &mut out);
        out
    }

    /// `keccak256(canonical_json)`: what `createComputeJob` commits to.
    pub fn spec_hash(&self) -> B256 {
        keccak256(self.canonical_json())
    }

    /// What seeds the sandbox's frozen clock and random bytes: keccak256 of the canonical JSON of the
    /// spec without `limits` and `redundancy`. A run's result and fuel then depend on what runs and
    /// what it reads, never on the job id, how much it may use or how many replicas run it, so a run
    /// before funding (with any fuel limit) meters exactly what the funded job's replicas will.
    pub fn sandbox_seed(&self) -> B256 {
        let mut normalized = self.clone();
        normalized.inputs.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let mut value = serde_json::to_value(&normalized).expect("a spec always serializes");
        if let Value::Object(map) = &mut value {
            map.remove("limits");
            map.remove("redundancy");
        }
        let mut out = b"qor.sandbox-seed.v1:".to_vec();
        write_canonical(&value, &mut out);
        keccak256(out)
    }
}

/// Writes `value` with object keys sorted by their UTF-8 bytes (the spec's keys are ASCII, where this is
/// RFC 8785's UTF-16 order too) and no whitespace. Sorting here, not in serde_json's map, keeps the
/// encoding right even if a dependency turns on serde_json's `preserve_order`.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::to_string(k).expect("a string serializes").as_bytes());
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(serde_json::to_string(scalar).expect("a scalar serializes").as_bytes()),
    }
}

fn check_range(field: &str, value: u64, min: u64, max: u64) -> SpecResult<()> {
    if value < min || value > max {
        return Err(invalid(field, format!("must be {min} to {max}, got {value}")));
    }
    Ok(())
}

fn check_c_string(field: &str, s: &str) -> SpecResult<()> {
    if s.len() > MAX_STRING {
        return Err(invalid(field, format!("at most {MAX_STRING} bytes")));
    }
    if s.contains('\0') {
        return Err(invalid(field, "must not contain NUL"));
    }
    Ok(())
}

/// An input path must stay inside `/in`: relative, `/`-separated, no empty, `.` or `..` components.
fn check_input_path(field: &str, path: &str) -> SpecResult<()> {
    if path.is_empty() || path.len() > MAX_PATH {
        return Err(invalid(field, format!("must be 1 to {MAX_PATH} bytes")));
    }
    if path.starts_with('/') {
        return Err(invalid(field, format!("`{path}` is absolute; paths are relative to /in")));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(invalid(field, format!("`{path}` contains a backslash or NUL")));
    }
    if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(invalid(field, format!("`{path}` has an empty, `.` or `..` component and could leave /in")));
    }
    Ok(())
}

/// `serde_path_to_error` paths to the spec's spelling (`.` for the root).
fn json_path(path: &str) -> String {
    if path.is_empty() { ".".to_owned() } else { path.to_owned() }
}

/// Deserializes a map, refusing a key that appears twice (serde_json would keep the last silently).
fn unique_map<'de, D: Deserializer<'de>>(de: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Unique;
    impl<'de> Visitor<'de> for Unique {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of string values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!("duplicate variable `{k}`")));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    de.deserialize_map(Unique)
}
