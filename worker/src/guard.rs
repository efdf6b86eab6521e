//! Guards around a few WASI preview 1 calls, linked in place of wasmtime-wasi's own. Each one does its
//! check and then calls wasmtime-wasi's implementation directly, as its own linker glue would.
//!
//! - **Output budget.** Every byte a module writes (stdout and files under `/out`) is charged against
//!   `limits.outputBytes` *before* the write happens, and the write that would cross it traps. A flood
//!   of stdout or a 10 GB file ends at the cap, at the same call on every worker, without touching the
//!   disk. The budget counts bytes written, not the final size: rewriting a file counts twice.
//!   Growing a file with `fd_filestat_set_size` past the budget traps too, and so does creating more
//!   than [`MAX_CREATED_ENTRIES`] files, directories or links.
//! - **What the host's filesystem would leak.** Directory listings come back sorted by name bytes
//!   (`.` and `..` first) rather than in the host filesystem's hash order; every `filestat` reports
//!   device 0, inode 0, one link, size 0 for a directory, and the job's frozen clock as access, modification and change time,
//!   so a module cannot observe when or where the worker copied its inputs. File sizes and types are
//!   real: they are the same on every worker.

use wasmtime::{AsContextMut, Caller, Extern, Linker, Memory};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1 as _};
use wasmtime_wasi::runtime::in_tokio;
use wiggle::GuestMemory;

use crate::sandbox::Host;

/// Calls wasmtime-wasi's own implementation of `$func`, exactly as its linker glue does.
macro_rules! real {
    ($c:expr, $func:ident($($arg:expr),*)) => {{
        let c: &mut Caller<'_, Host> = $c;
        let fuel = c.as_context_mut().hostcall_fuel();
        let Some(mem) = memory(c) else { wasmtime::bail!("missing required memory export") };
        let (data, host) = mem.data_and_store_mut(&mut *c);
        host.wasi.set_hostcall_fuel(fuel);
        let mut mem = GuestMemory::Unshared(data);
        in_tokio(p1::$func(&mut host.wasi, &mut mem $(, $arg)*))
    }};
}

/// WASI preview 1's module name.
const WASI: &str = "wasi_snapshot_preview1";
/// Files, directories and links one job may create under `/out`.
pub const MAX_CREATED_ENTRIES: u32 = 4096;
/// `oflags::creat`.
const O_CREAT: i32 = 1;
/// `sizeof(dirent)` in preview 1: d_next u64, d_ino u64, d_namlen u32, d_type u8, padding.
const DIRENT_SIZE: usize = 24;
/// `filetype::directory`.
const FILETYPE_DIRECTORY: u8 = 3;
/// `sizeof(filestat)`: dev, ino, filetype(+pad), nlink, size, atim, mtim, ctim.
const FILESTAT_SIZE: usize = 64;

/// The run wrote, or tried to write, more than `limits.outputBytes`.
#[derive(Debug, thiserror::Error)]
#[error("output limit of {limit} bytes exceeded")]
pub struct OutputLimitExceeded {
    /// The limit.
    pub limit: u64,
}

/// Per-job accounting the guards keep in the store.
#[derive(Debug)]
pub struct Budget {
    /// `limits.outputBytes`.
    pub limit: u64,
    /// Bytes charged so far.
    pub written: u64,
    /// Entries created so far.
    pub created: u32,
    /// Set once a module renumbers a descriptor onto stderr; from then on stderr is charged too.
    pub stderr_renumbered: bool,
    /// The frozen wall clock, in nanoseconds, reported as every file time.
    pub frozen_ns: u64,
}

impl Budget {
    /// A fresh budget for one job.
    pub const fn new(limit: u64, frozen_ns: u64) -> Self {
        Self { limit, written: 0, created: 0, stderr_renumbered: false, frozen_ns }
    }

    fn charge(&mut self, bytes: u64) -> wasmtime::Result<()> {
        self.written = self.written.saturating_add(bytes);
        if self.written > self.limit {
            return Err(OutputLimitExceeded { limit: self.limit }.into());
        }
        Ok(())
    }

    fn create(&mut self) -> wasmtime::Result<()> {
        self.created += 1;
        if self.created > MAX_CREATED_ENTRIES {
            return Err(OutputLimitExceeded { limit: self.limit }.into());
        }
        Ok(())
    }
}

/// Adds the guarded functions to `outer`, shadowing the ones `add_to_linker_sync` put there.
pub fn add_to_linker(outer: &mut Linker<Host>) -> wasmtime::Result<()> {
    outer.allow_shadowing(true);

    outer.func_wrap(WASI, "fd_write", |mut c: Caller<'_, Host>, fd: i32, iovs: i32, len: i32, nwritten: i32| {
        charge_iovecs(&mut c, fd, iovs, len)?;
        real!(&mut c, fd_write(fd, iovs, len, nwritten))
    })?;
    outer.func_wrap(WASI, "fd_pwrite", |mut c: Caller<'_, Host>, fd: i32, iovs: i32, len: i32, offset: i64, nwritten: i32| {
        charge_iovecs(&mut c, fd, iovs, len)?;
        real!(&mut c, fd_pwrite(fd, iovs, len, offset, nwritten))
    })?;
    outer.func_wrap(WASI, "fd_filestat_set_size", |mut c: Caller<'_, Host>, fd: i32, size: i64| {
        let budget = &c.data().budget;
        if size as u64 > budget.limit {
            return Err(OutputLimitExceeded { limit: budget.limit }.into());
        }
        real!(&mut c, fd_filestat_set_size(fd, size))
    })?;
    outer.func_wrap(WASI, "fd_renumber", |mut c: Caller<'_, Host>, from: i32, to: i32| {
        if to == 2 {
            c.data_mut().budget.stderr_renumbered = true;
        }
        real!(&mut c, fd_renumber(from, to))
    })?;
    outer.func_wrap(
        WASI,
        "path_open",
        |mut c: Caller<'_, Host>,
         fd: i32,
         dirflags: i32,
         path: i32,
         path_len: i32,
         oflags: i32,
         base: i64,
         inheriting: i64,
         fdflags: i32,
         opened: i32| {
            if oflags & O_CREAT != 0 {
                c.data_mut().budget.create()?;
            }
            real!(&mut c, path_open(fd, dirflags, path, path_len, oflags, base, inheriting, fdflags, opened))
        },
    )?;
    outer.func_wrap(WASI, "path_create_directory", |mut c: Caller<'_, Host>, fd: i32, path: i32, len: i32| {
        c.data_mut().budget.create()?;
        real!(&mut c, path_create_directory(fd, path, len))
    })?;
    outer.func_wrap(WASI, "path_symlink", |mut c: Caller<'_, Host>, old: i32, old_len: i32, fd: i32, new: i32, new_len: i32| {
        c.data_mut().budget.create()?;
        real!(&mut c, path_symlink(old, old_len, fd, new, new_len))
    })?;
    outer.func_wrap(
        WASI,
        "path_link",
        |mut c: Caller<'_, Host>, old_fd: i32, flags: i32, old: i32, old_len: i32, fd: i32, new: i32, new_len: i32| {
            c.data_mut().budget.create()?;
            real!(&mut c, path_link(old_fd, flags, old, old_len, fd, new, new_len))
        },
    )?;
    outer.func_wrap(WASI, "fd_filestat_get", |mut c: Caller<'_, Host>, fd: i32, buf: i32| {
        let errno = real!(&mut c, fd_filestat_get(fd, buf))?;
        if errno == 0 {
            pin_filestat(&mut c, buf);
        }
        Ok(errno)
    })?;
    outer.func_wrap(WASI, "path_filestat_get", |mut c: Caller<'_, Host>, fd: i32, flags: i32, path: i32, len: i32, buf: i32| {
        let errno = real!(&mut c, path_filestat_get(fd, flags, path, len, buf))?;
        if errno == 0 {
            pin_filestat(&mut c, buf);
        }
        Ok(errno)
    })?;
    outer.func_wrap(WASI, "fd_readdir", |mut c: Caller<'_, Host>, fd: i32, buf: i32, len: i32, cookie: i64, used: i32| {
        sorted_readdir(&mut c, fd, buf, len, cookie, used)
    })?;
    outer.allow_shadowing(false);
    Ok(())
}

fn memory(c: &mut Caller<'_, Host>) -> Option<Memory> {
    c.get_export("memory").and_then(Extern::into_memory)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Charges the total length of an iovec array before the write. An array outside memory is left for
/// the real call to refuse (it returns `fault`, and nothing is written).
fn charge_iovecs(c: &mut Caller<'_, Host>, fd: i32, iovs: i32, len: i32) -> wasmtime::Result<()> {
    if fd == 2 && !c.data().budget.stderr_renumbered {
        return Ok(()); // stderr is capped separately and is not part of the result
    }
    let Some(mem) = memory(c) else { return Ok(()) };
    let data = mem.data(&*c);
    let mut total = 0u64;
    for i in 0..len as u32 as usize {
        let Some(n) = read_u32(data, (iovs as u32 as usize).saturating_add(i * 8 + 4)) else { return Ok(()) };
        total = total.saturating_add(u64::from(n));
    }
    c.data_mut().budget.charge(total)
}

/// Overwrites the host-specific fields of a `filestat` the real call just wrote.
fn pin_filestat(c: &mut Caller<'_, Host>, buf: i32) {
    let Some(mem) = memory(c) else { return };
    let frozen = c.data().budget.frozen_ns;
    let at = buf as u32 as usize;
    let data = mem.data_mut(&mut *c);
    let Some(stat) = data.get_mut(at..at.saturating_add(FILESTAT_SIZE)).filter(|s| s.len() == FILESTAT_SIZE) else {
        return;
    };
    stat[0..8].copy_from_slice(&0u64.to_le_bytes()); // dev
    stat[8..16].copy_from_slice(&0u64.to_le_bytes()); // ino
    stat[24..32].copy_from_slice(&1u64.to_le_bytes()); // nlink
    if stat[16] == FILETYPE_DIRECTORY {
        stat[32..40].copy_from_slice(&0u64.to_le_bytes()); // a directory's size is the host filesystem's
    }
    for field in [40, 48, 56] {
        stat[field..field + 8].copy_from_slice(&frozen.to_le_bytes()); // atim, mtim, ctim
    }
}

/// `fd_readdir`, sorted. Lists the whole directory through the real call (using the module's own
/// buffer as scratch), sorts by name bytes, and writes the entries from `cookie` on with cookies that
/// are positions in the sorted order. Falls back to the real answer only when the module's buffer
/// cannot hold a single entry (it then grows the buffer and asks again, as wasi-libc and Rust do).
fn sorted_readdir(c: &mut Caller<'_, Host>, fd: i32, buf: i32, len: i32, cookie: i64, used: i32) -> wasmtime::Result<i32> {
    let Some(mem) = memory(c) else { return real!(c, fd_readdir(fd, buf, len, cookie, used)) };
    let (buf_at, buf_len) = (buf as u32 as usize, len as u32 as usize);

    let mut entries: Vec<(Vec<u8>, u8)> = Vec::new();
    let mut next = 0u64;
    loop {
        let errno = real!(&mut *c, fd_readdir(fd, buf, len, next as i64, used))?;
        if errno != 0 {
            return Ok(errno);
        }
        let data = mem.data(&*c);
        let Some(filled) = read_u32(data, used as u32 as usize).map(|n| n as usize) else { return Ok(errno) };
        let Some(chunk) = data.get(buf_at..buf_at.saturating_add(filled)) else { return Ok(errno) };
        let mut pos = 0;
        let mut progressed = false;
        while pos + DIRENT_SIZE <= chunk.len() {
            let d_next = read_u64(chunk, pos).unwrap_or(0);
            let namlen = read_u32(chunk, pos + 16).unwrap_or(0) as usize;
            let Some(name) = chunk.get(pos + DIRENT_SIZE..pos + DIRENT_SIZE + namlen) else { break };
            entries.push((name.to_vec(), chunk[pos + 20]));
            next = d_next;
            pos += DIRENT_SIZE + namlen;
            progressed = true;
        }
        if filled < buf_len {
            break; // the real call had no more entries
        }
        if !progressed {
            return real!(c, fd_readdir(fd, buf, len, cookie, used));
        }
    }

    // "." and ".." first, then names in byte order.
    let (mut head, mut rest): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(n, _)| n == b"." || n == b"..");
    head.sort();
    rest.sort();
    head.extend(rest);

    let mut out = Vec::with_capacity(buf_len);
    for (i, (name, kind)) in head.iter().enumerate().skip(cookie as u64 as usize) {
        let mut dirent = [0u8; DIRENT_SIZE];
        dirent[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes()); // d_next
        dirent[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
        dirent[20] = *kind;
        out.extend_from_slice(&dirent);
        out.extend_from_slice(name);
        if out.len() >= buf_len {
            break;
        }
    }
    out.truncate(buf_len);
    let data = mem.data_mut(&mut *c);
    data[buf_at..buf_at + out.len()].copy_from_slice(&out);
    let used_at = used as u32 as usize;
    data[used_at..used_at + 4].copy_from_slice(&(out.len() as u32).to_le_bytes());
    Ok(0)
}
