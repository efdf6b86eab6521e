//! Guards around a few WASI preview 1 calls, linked in place of wasmtime-wasi's own. Each one does its
//! check and then calls wasmtime-wasi's implementation directly, as its own linker glue would.
//!
//! - **Output budget.** Every byte a module writes (stdout and files under `/out`) is charged against
//!   `limits.outputBytes` *before* the write happens, and the write that would cross it traps. A flood
//!   of stdout or a 10 GB file ends at the cap, at the same call on every worker, without touching the
//!   disk. The budget counts bytes written, not the final size: rewriting a file counts twice.
//!   Growing a file with `fd_filestat_set_size` past the budget traps too, and so does creating more
//!   than [`MAX_CREATED_ENTRIES`] files, directories or links (reopening an existing file with
//!   `O_CREAT` creates nothing). Only the original stderr is exempt: a file that takes fd 2 after
//!   stderr was closed or replaced is charged like any other.
//! - **Limits of the sandbox's own, never the host's.** At most [`MAX_OPEN_DESCRIPTORS`] descriptors
//!   are open at once (the next `path_open` gets `EMFILE`), and a path longer than
//!   [`MAX_PATH_BYTES`] gets `ENAMETOOLONG`, whatever the worker's open-file limit or kernel.
//! - **Time.** `poll_oneoff` never waits on the host's clock: under the frozen clock every clock
//!   subscription is due at once, so a sleep returns immediately, the same on every worker.
//! - **What the host's filesystem would leak.** Directory listings come back sorted by name bytes
//!   (`.` and `..` first) rather than in the host filesystem's hash order; every `filestat` reports
//!   device 0, one link, size 0 for a directory, and the job's frozen clock as access, modification
//!   and change time, so a module cannot observe when or where the worker copied its inputs. Inode
//!   numbers are the sandbox's: 1, 2, 3… in the order the module first sees each file, so two files
//!   differ and one file keeps its number. File sizes and types are real: they are the same on
//!   every worker.

use std::collections::{BTreeSet, HashMap};

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
/// Descriptors one job may hold open at once, the five it starts with (stdio, `/in`, `/out`)
/// included.
pub const MAX_OPEN_DESCRIPTORS: usize = 1024;
/// Longest path a call may name, in bytes (Linux's `PATH_MAX` less its terminating NUL).
pub const MAX_PATH_BYTES: i32 = 4095;
/// The descriptors every job starts with: stdin, stdout, stderr, `/in`, `/out`.
const INITIAL_DESCRIPTORS: [u32; 5] = [0, 1, 2, 3, 4];
/// `oflags::creat`.
const O_CREAT: i32 = 1;
/// `errno::inval`, `errno::mfile`, `errno::nametoolong`, `errno::fault`.
const EINVAL: i32 = 28;
const EMFILE: i32 = 33;
const ENAMETOOLONG: i32 = 37;
const EFAULT: i32 = 21;
/// `sizeof(subscription)` and `sizeof(event)` in preview 1.
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
/// `eventtype::clock`, and the clock ids preview 1 knows (realtime, monotonic).
const EVENTTYPE_CLOCK: u8 = 0;
const CLOCK_IDS: [u32; 2] = [0, 1];
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
    /// True while fd 2 is the stderr the job started with; once it is closed or replaced, whatever
    /// takes its number is charged like any other descriptor.
    pub stderr_original: bool,
    /// The frozen wall clock, in nanoseconds, reported as every file time.
    pub frozen_ns: u64,
    /// The descriptors open now.
    open: BTreeSet<u32>,
    /// Host file identity (wasmtime-wasi's metadata hash) → the inode number the module sees.
    inodes: HashMap<u64, u64>,
    /// The last inode number handed out.
    last_inode: u64,
}

impl Budget {
    /// A fresh budget for one job.
    pub fn new(limit: u64, frozen_ns: u64) -> Self {
        Self {
            limit,
            written: 0,
            created: 0,
            stderr_original: true,
            frozen_ns,
            open: INITIAL_DESCRIPTORS.into_iter().collect(),
            inodes: HashMap::new(),
            last_inode: 0,
        }
    }

    /// The sandbox's inode number for a host identity: the next one the first time it is seen.
    fn inode(&mut self, host: u64) -> u64 {
        let next = &mut self.last_inode;
        *self.inodes.entry(host).or_insert_with(|| {
            *next += 1;
            *next
        })
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
    outer.func_wrap(WASI, "fd_close", |mut c: Caller<'_, Host>, fd: i32| {
        let errno = real!(&mut c, fd_close(fd))?;
        if errno == 0 {
            let budget = &mut c.data_mut().budget;
            budget.open.remove(&(fd as u32));
            if fd == 2 {
                budget.stderr_original = false;
            }
        }
        Ok(errno)
    })?;
    outer.func_wrap(WASI, "fd_renumber", |mut c: Caller<'_, Host>, from: i32, to: i32| {
        let errno = real!(&mut c, fd_renumber(from, to))?;
        if errno == 0 && from != to {
            let budget = &mut c.data_mut().budget;
            budget.open.remove(&(from as u32));
            if to == 2 || from == 2 {
                budget.stderr_original = false;
            }
        }
        Ok(errno)
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
            if path_len > MAX_PATH_BYTES {
                return Ok(ENAMETOOLONG);
            }
            if c.data().budget.open.len() >= MAX_OPEN_DESCRIPTORS {
                return Ok(EMFILE);
            }
            if oflags & O_CREAT != 0 && probe(&mut c, fd, dirflags, path, path_len)?.is_none() {
                c.data_mut().budget.create()?;
            }
            let errno = real!(&mut c, path_open(fd, dirflags, path, path_len, oflags, base, inheriting, fdflags, opened))?;
            if errno == 0
                && let Some(mem) = memory(&mut c)
                && let Some(new) = read_u32(mem.data(&c), opened as u32 as usize)
            {
                c.data_mut().budget.open.insert(new);
            }
            Ok(errno)
        },
    )?;
    outer.func_wrap(WASI, "path_create_directory", |mut c: Caller<'_, Host>, fd: i32, path: i32, len: i32| {
        if len > MAX_PATH_BYTES {
            return Ok(ENAMETOOLONG);
        }
        c.data_mut().budget.create()?;
        real!(&mut c, path_create_directory(fd, path, len))
    })?;
    outer.func_wrap(WASI, "path_symlink", |mut c: Caller<'_, Host>, old: i32, old_len: i32, fd: i32, new: i32, new_len: i32| {
        if old_len > MAX_PATH_BYTES || new_len > MAX_PATH_BYTES {
            return Ok(ENAMETOOLONG);
        }
        c.data_mut().budget.create()?;
        real!(&mut c, path_symlink(old, old_len, fd, new, new_len))
    })?;
    outer.func_wrap(
        WASI,
        "path_link",
        |mut c: Caller<'_, Host>, old_fd: i32, flags: i32, old: i32, old_len: i32, fd: i32, new: i32, new_len: i32| {
            if old_len > MAX_PATH_BYTES || new_len > MAX_PATH_BYTES {
                return Ok(ENAMETOOLONG);
            }
            c.data_mut().budget.create()?;
            real!(&mut c, path_link(old_fd, flags, old, old_len, fd, new, new_len))
        },
    )?;
    outer.func_wrap(WASI, "path_unlink_file", |mut c: Caller<'_, Host>, fd: i32, path: i32, len: i32| {
        if len > MAX_PATH_BYTES {
            return Ok(ENAMETOOLONG);
        }
        forget(&mut c, fd, path, len)?;
        real!(&mut c, path_unlink_file(fd, path, len))
    })?;
    outer.func_wrap(WASI, "path_remove_directory", |mut c: Caller<'_, Host>, fd: i32, path: i32, len: i32| {
        if len > MAX_PATH_BYTES {
            return Ok(ENAMETOOLONG);
        }
        forget(&mut c, fd, path, len)?;
        real!(&mut c, path_remove_directory(fd, path, len))
    })?;
    outer.func_wrap(
        WASI,
        "path_rename",
        |mut c: Caller<'_, Host>, fd: i32, old: i32, old_len: i32, new_fd: i32, new: i32, new_len: i32| {
            if old_len > MAX_PATH_BYTES || new_len > MAX_PATH_BYTES {
                return Ok(ENAMETOOLONG);
            }
            forget(&mut c, new_fd, new, new_len)?; // a file renamed over goes away
            real!(&mut c, path_rename(fd, old, old_len, new_fd, new, new_len))
        },
    )?;
    outer.func_wrap(
        WASI,
        "path_readlink",
        |mut c: Caller<'_, Host>, fd: i32, path: i32, len: i32, buf: i32, buf_len: i32, used: i32| {
            if len > MAX_PATH_BYTES {
                return Ok(ENAMETOOLONG);
            }
            real!(&mut c, path_readlink(fd, path, len, buf, buf_len, used))
        },
    )?;
    outer.func_wrap(
        WASI,
        "path_filestat_set_times",
        |mut c: Caller<'_, Host>, fd: i32, flags: i32, path: i32, len: i32, atim: i64, mtim: i64, fst_flags: i32| {
            if len > MAX_PATH_BYTES {
                return Ok(ENAMETOOLONG);
            }
            real!(&mut c, path_filestat_set_times(fd, flags, path, len, atim, mtim, fst_flags))
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
        if len > MAX_PATH_BYTES {
            return Ok(ENAMETOOLONG);
        }
        let errno = real!(&mut c, path_filestat_get(fd, flags, path, len, buf))?;
        if errno == 0 {
            pin_filestat(&mut c, buf);
        }
        Ok(errno)
    })?;
    outer.func_wrap(WASI, "fd_readdir", |mut c: Caller<'_, Host>, fd: i32, buf: i32, len: i32, cookie: i64, used: i32| {
        sorted_readdir(&mut c, fd, buf, len, cookie, used)
    })?;
    outer.func_wrap(WASI, "poll_oneoff", |mut c: Caller<'_, Host>, subs: i32, events: i32, n: i32, nevents: i32| {
        poll_frozen(&mut c, subs, events, n, nevents)
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
    if fd == 2 && c.data().budget.stderr_original {
        return Ok(()); // stderr keeps its first part for the buyer and is not part of the result
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
    let at = buf as u32 as usize;
    let (data, host) = mem.data_and_store_mut(&mut *c);
    let Some(stat) = data.get_mut(at..at.saturating_add(FILESTAT_SIZE)).filter(|s| s.len() == FILESTAT_SIZE) else {
        return;
    };
    let ino = host.budget.inode(read_u64(stat, 8).unwrap_or(0));
    stat[0..8].copy_from_slice(&0u64.to_le_bytes()); // dev
    stat[8..16].copy_from_slice(&ino.to_le_bytes());
    stat[24..32].copy_from_slice(&1u64.to_le_bytes()); // nlink
    if stat[16] == FILETYPE_DIRECTORY {
        stat[32..40].copy_from_slice(&0u64.to_le_bytes()); // a directory's size is the host filesystem's
    }
    for field in [40, 48, 56] {
        stat[field..field + 8].copy_from_slice(&host.budget.frozen_ns.to_le_bytes()); // atim, mtim, ctim
    }
}

/// Where the guards may borrow 64 bytes of the module's memory for a call of their own: the first
/// 64 bytes, or the 64 after the path when the path is there. Saved and restored around the call,
/// so the module never sees it.
fn scratch(mem_len: usize, path: i32, len: i32) -> Option<usize> {
    let (path, end) = (path as u32 as usize, (path as u32 as usize).saturating_add(len as u32 as usize));
    let at = if path < FILESTAT_SIZE { end.next_multiple_of(8) } else { 0 };
    (at.saturating_add(FILESTAT_SIZE) <= mem_len).then_some(at)
}

/// What `path` under `fd` is, without following a final symlink when `flags` say not to: the host
/// identity (the metadata hash the sandbox maps to inode numbers), or `None` when nothing is there.
fn probe(c: &mut Caller<'_, Host>, fd: i32, flags: i32, path: i32, len: i32) -> wasmtime::Result<Option<u64>> {
    let Some(mem) = memory(c) else { return Ok(None) };
    let Some(at) = scratch(mem.data_size(&*c), path, len) else { return Ok(None) };
    let saved: [u8; FILESTAT_SIZE] = mem.data(&*c)[at..at + FILESTAT_SIZE].try_into().expect("64 bytes");
    let errno = real!(&mut *c, path_filestat_get(fd, flags, path, len, at as i32))?;
    let ino = read_u64(mem.data(&*c), at + 8);
    mem.data_mut(&mut *c)[at..at + FILESTAT_SIZE].copy_from_slice(&saved);
    Ok(if errno == 0 { ino } else { None })
}

/// Before a path goes away, drops its inode number: the host may give its inode to the next file
/// created, and that file must get a number of its own, as it would on a host that did not.
fn forget(c: &mut Caller<'_, Host>, fd: i32, path: i32, len: i32) -> wasmtime::Result<()> {
    if let Some(host) = probe(c, fd, 0, path, len)? {
        c.data_mut().budget.inodes.remove(&host);
    }
    Ok(())
}

/// `poll_oneoff` under the frozen clock. Time never passes, so no clock subscription could fire by
/// waiting; every one is due at once instead, and a sleep returns immediately on every worker (the
/// real call would sleep on the host's clock, past the wall-clock limit). With descriptors among
/// the subscriptions, the real call answers for them, with every clock rewritten to "now".
fn poll_frozen(c: &mut Caller<'_, Host>, subs: i32, events: i32, n: i32, nevents: i32) -> wasmtime::Result<i32> {
    let Some(mem) = memory(c) else { return real!(c, poll_oneoff(subs, events, n, nevents)) };
    if n == 0 {
        return Ok(EINVAL);
    }
    let (subs_at, count) = (subs as u32 as usize, n as u32 as usize);
    let Some(subs_len) = count.checked_mul(SUBSCRIPTION_SIZE) else { return Ok(EFAULT) };
    let Some(table) = mem.data(&*c).get(subs_at..subs_at.saturating_add(subs_len)).filter(|t| t.len() == subs_len) else {
        return Ok(EFAULT);
    };
    let table = table.to_vec();
    let mut clocks = Vec::new(); // (index, userdata)
    for i in 0..count {
        let sub = &table[i * SUBSCRIPTION_SIZE..(i + 1) * SUBSCRIPTION_SIZE];
        if sub[8] == EVENTTYPE_CLOCK {
            if !CLOCK_IDS.contains(&read_u32(sub, 16).unwrap_or(u32::MAX)) {
                return Ok(EINVAL);
            }
            clocks.push((i, read_u64(sub, 0).unwrap_or(0)));
        }
    }
    if clocks.len() < count {
        // Descriptors too: every clock becomes relative 0 for the real call, then the table is put back.
        for &(i, _) in &clocks {
            let sub = subs_at + i * SUBSCRIPTION_SIZE;
            let data = mem.data_mut(&mut *c);
            data[sub + 24..sub + 32].fill(0); // timeout
            data[sub + 40..sub + 42].fill(0); // flags: relative
        }
        let errno = real!(&mut *c, poll_oneoff(subs, events, n, nevents));
        let data = mem.data_mut(&mut *c);
        for &(i, _) in &clocks {
            let sub = subs_at + i * SUBSCRIPTION_SIZE;
            data[sub..sub + SUBSCRIPTION_SIZE].copy_from_slice(&table[i * SUBSCRIPTION_SIZE..(i + 1) * SUBSCRIPTION_SIZE]);
        }
        return errno;
    }
    let events_at = events as u32 as usize;
    let nevents_at = nevents as u32 as usize;
    let data = mem.data_mut(&mut *c);
    if events_at.saturating_add(count * EVENT_SIZE) > data.len() || nevents_at.saturating_add(4) > data.len() {
        return Ok(EFAULT);
    }
    for (k, (_, userdata)) in clocks.iter().enumerate() {
        let mut event = [0u8; EVENT_SIZE];
        event[0..8].copy_from_slice(&userdata.to_le_bytes());
        event[10] = EVENTTYPE_CLOCK;
        data[events_at + k * EVENT_SIZE..events_at + (k + 1) * EVENT_SIZE].copy_from_slice(&event);
    }
    data[nevents_at..nevents_at + 4].copy_from_slice(&(count as u32).to_le_bytes());
    Ok(0)
}

/// `fd_readdir`, sorted. Lists the whole directory through the real call (using the module's own
/// buffer as scratch), sorts by name bytes, and writes the entries from `cookie` on with cookies that
/// are positions in the sorted order. Falls back to the real answer only when the module's buffer
/// cannot hold a single entry (it then grows the buffer and asks again, as wasi-libc and Rust do).
fn sorted_readdir(c: &mut Caller<'_, Host>, fd: i32, buf: i32, len: i32, cookie: i64, used: i32) -> wasmtime::Result<i32> {
    let Some(mem) = memory(c) else { return real!(c, fd_readdir(fd, buf, len, cookie, used)) };
    let (buf_at, buf_len) = (buf as u32 as usize, len as u32 as usize);

    let mut entries: Vec<(Vec<u8>, u8, u64)> = Vec::new();
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
            entries.push((name.to_vec(), chunk[pos + 20], read_u64(chunk, pos + 8).unwrap_or(0)));
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
    let (mut head, mut rest): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(n, ..)| n == b"." || n == b"..");
    head.sort();
    rest.sort();
    head.extend(rest);

    let mut out = Vec::with_capacity(buf_len);
    for (i, (name, kind, host)) in head.iter().enumerate().skip(cookie as u64 as usize) {
        let mut dirent = [0u8; DIRENT_SIZE];
        dirent[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes()); // d_next
        dirent[8..16].copy_from_slice(&c.data_mut().budget.inode(*host).to_le_bytes()); // d_ino
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
