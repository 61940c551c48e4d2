//! Network namespaces: naming one (`--netns NAME`, `--netns-pid PID`), recording it in
//! plans and journals, and running work inside it.
//!
//! Work runs on a dedicated std thread that calls setns(2) first: a network namespace
//! is per thread, so everything that thread does — /proc/sys reads and writes,
//! /proc/thread-self/net, and every netlink socket it creates (sockets keep the
//! namespace they were made in) — then sees that namespace, while the main thread is
//! left alone. setns is never called on a tokio worker: the netlink runtime is a
//! current-thread runtime created on the namespace thread itself.
//!
//! A namespace is identified by the inode of its nsfs file, so a rollback can tell
//! "the same namespace" from "a new one that got the same name or pid". When none is
//! named, the namespace `tune` runs in is recorded the same way ([`current`]), so a plan
//! made under `ip netns exec` is refused anywhere else.

use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where named namespaces live (`ip netns add` bind-mounts them there).
pub const NETNS_DIR: &str = "/run/netns";

/// A namespace as the user named it, with the identity it had when recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetnsRecord {
    /// A name under /run/netns (`--netns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A process whose network namespace it is (`--netns-pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Inode of the namespace file: the namespace's identity.
    pub inode: u64,
}

impl fmt::Display for NetnsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, self.pid) {
            (Some(name), _) => write!(f, "network namespace {name:?}"),
            (None, Some(pid)) => write!(f, "the network namespace of pid {pid}"),
            (None, None) => write!(
                f,
                "the network namespace tune ran in (inode {})",
                self.inode
            ),
        }
    }
}

/// Which namespace the user asked for on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsTarget {
    Name(String),
    Pid(u32),
    /// The namespace the calling thread is in (none was named: `tune` run directly or
    /// under `ip netns exec`).
    Current,
}

/// Where the calling thread's own network namespace file is.
const CURRENT_NETNS: &str = "/proc/thread-self/ns/net";

/// The namespace the calling thread runs in, recorded by its inode.
pub fn current() -> Result<NetnsRecord> {
    NetnsTarget::Current.resolve()
}

/// The identity of the namespace work runs in: `ns` when one was named, else the
/// calling thread's own. Plans always record it, so a plan made under `ip netns exec`
/// is not applied to another namespace.
pub fn identity(ns: Option<&NetnsRecord>) -> Result<NetnsRecord> {
    match ns {
        Some(ns) => Ok(ns.clone()),
        None => current(),
    }
}

impl NetnsTarget {
    fn path(&self) -> Result<PathBuf> {
        match self {
            NetnsTarget::Name(name) => {
                if name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains('/')
                    || name.contains('\0')
                {
                    bail!("--netns {name:?}: a namespace name is a file name under {NETNS_DIR}");
                }
                Ok(PathBuf::from(NETNS_DIR).join(name))
            }
            NetnsTarget::Pid(pid) => Ok(PathBuf::from(format!("/proc/{pid}/ns/net"))),
            NetnsTarget::Current => Ok(PathBuf::from(CURRENT_NETNS)),
        }
    }

    fn open(&self) -> Result<(File, u64)> {
        let path = self.path()?;
        let file = File::open(&path).map_err(|e| match (self, e.kind()) {
            (NetnsTarget::Name(name), std::io::ErrorKind::NotFound) => anyhow!(
                "network namespace {name:?} does not exist (no {})",
                path.display()
            ),
            (NetnsTarget::Pid(pid), std::io::ErrorKind::NotFound) => {
                anyhow!("no process {pid}, so no network namespace to enter")
            }
            _ => anyhow!("cannot open {}: {e}", path.display()),
        })?;
        let inode = file
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?
            .ino();
        Ok((file, inode))
    }

    /// Opens the namespace now and records its identity.
    pub fn resolve(&self) -> Result<NetnsRecord> {
        let (_, inode) = self.open()?;
        Ok(self.record(inode))
    }

    fn record(&self, inode: u64) -> NetnsRecord {
        match self {
            NetnsTarget::Name(n) => NetnsRecord {
                name: Some(n.clone()),
                pid: None,
                inode,
            },
            NetnsTarget::Pid(p) => NetnsRecord {
                name: None,
                pid: Some(*p),
                inode,
            },
            NetnsTarget::Current => NetnsRecord {
                name: None,
                pid: None,
                inode,
            },
        }
    }
}

impl NetnsRecord {
    pub fn target(&self) -> Result<NetnsTarget> {
        match (&self.name, self.pid) {
            (Some(n), _) => Ok(NetnsTarget::Name(n.clone())),
            (None, Some(p)) => Ok(NetnsTarget::Pid(p)),
            (None, None) => Ok(NetnsTarget::Current),
        }
    }
}

/// Runs `work` on a new thread inside the namespace `ns` (or directly, when `None`).
/// Refuses when the namespace no longer has the identity recorded in `ns`.
pub fn run_in<T, F>(ns: Option<&NetnsRecord>, work: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    let Some(ns) = ns else {
        return work();
    };
    let Some(file) = checked(ns, None)? else {
        return work();
    };
    one_malloc_arena();
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("tune-netns".into())
            .spawn_scoped(scope, move || {
                enter(&file, ns)?;
                drop(file);
                work()
            })
            .context("cannot start the namespace thread")?;
        thread
            .join()
            .map_err(|_| anyhow!("the namespace thread panicked"))?
    })
}

/// Runs `work` in each namespace of `targets` (`None`: the caller's own) on a few
/// dedicated threads that each enter their share of the targets in turn with setns(2):
/// one thread for fewer than 16 namespaces, else one per 8, at most one a CPU and 8 in
/// all; never one a namespace. Each result is that namespace's, in the order of
/// `targets`. One that cannot be entered, or is no longer the one recorded, gets its
/// error and no work: a thread enters a target before any work for it, so it never
/// works in the previous one.
pub fn run_each<T, F>(targets: &[Option<&NetnsRecord>], work: F) -> Result<Vec<Result<T>>>
where
    T: Send,
    F: Fn() -> Result<T> + Sync,
{
    // Asking for the CPUs (affinity, cgroup quota) costs more than a short list saves.
    let threads = if targets.len() < 16 {
        1
    } else {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        cpus.min(targets.len() / 8).clamp(1, 8)
    };
    run_each_on(targets, threads, work)
}

/// [`run_each`] on `threads` namespace threads (at least one), each taking a
/// contiguous share of `targets`.
pub fn run_each_on<T, F>(
    targets: &[Option<&NetnsRecord>],
    threads: usize,
    work: F,
) -> Result<Vec<Result<T>>>
where
    T: Send,
    F: Fn() -> Result<T> + Sync,
{
    // The caller's own namespace, opened on the calling thread: where `None` runs.
    let (home, home_inode) = NetnsTarget::Current.open()?;
    let home_record = NetnsTarget::Current.record(home_inode);
    let per_thread = targets.len().div_ceil(threads.max(1)).max(1);
    if threads <= 1 {
        one_malloc_arena();
    }
    let run_share = |share: &[Option<&NetnsRecord>]| -> Vec<Result<T>> {
        let mut away = false;
        let mut step = |ns: Option<&NetnsRecord>| -> Result<T> {
            let to_enter = match ns {
                Some(ns) => checked(ns, Some(home_inode))?.map(|file| (file, ns)),
                None => None,
            };
            match to_enter {
                Some((file, ns)) => {
                    enter(&file, ns)?;
                    away = true;
                }
                None if away => {
                    enter(&home, &home_record)?;
                    away = false;
                }
                None => {}
            }
            work()
        };
        share.iter().map(|ns| step(*ns)).collect()
    };
    std::thread::scope(|scope| {
        let mut running = Vec::new();
        for part in targets.chunks(per_thread) {
            let thread = std::thread::Builder::new()
                .name("tune-netns".into())
                .spawn_scoped(scope, || run_share(part))
                .context("cannot start the namespace thread")?;
            running.push(thread);
        }
        let mut results = Vec::with_capacity(targets.len());
        for thread in running {
            results.extend(
                thread
                    .join()
                    .map_err(|_| anyhow!("the namespace thread panicked"))?,
            );
        }
        Ok(results)
    })
}

/// Has a lone namespace thread allocate from glibc's main arena, as the main thread
/// does. By default its first allocation maps an arena of its own, and everything it
/// allocates lands on pages never touched before, where the main heap has freed ones
/// to reuse: about 8 more page faults, and 4-8% more time for a `plan --netns` on the
/// development VM. Several threads keep their own arenas: sharing one made 100 namespaces
/// on two threads 3% slower. glibc reads the limit when a thread first needs an arena,
/// so the first namespace thread of a run decides.
fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Opens the namespace recorded in `ns` and checks that it still has the recorded
/// identity; `None` when it is the namespace work already runs in (a record of the
/// current one): nothing to enter. `here` is that namespace's inode when the caller
/// knows it (a namespace thread may be elsewhere already), else the calling thread's.
fn checked(ns: &NetnsRecord, here: Option<u64>) -> Result<Option<File>> {
    let target = ns.target()?;
    if target == NetnsTarget::Current {
        let inode = match here {
            Some(inode) => inode,
            None => target.open()?.1,
        };
        // Nothing to enter: check that this is still the namespace recorded.
        if inode != ns.inode {
            bail!(
                "this was recorded in the network namespace with inode {}, but tune runs in the one with inode {inode} now (made under `ip netns exec`, or in a container?); run it in that namespace, or name it with --netns / --netns-pid; nothing was changed",
                ns.inode
            );
        }
        return Ok(None);
    }
    let (file, inode) = target.open()?;
    if inode != ns.inode {
        bail!(
            "{ns} is no longer the namespace that was recorded (inode {} then, {inode} now): it was deleted and re-created, or the process was replaced; nothing was changed",
            ns.inode
        );
    }
    Ok(Some(file))
}

/// Moves the calling thread, which must be a namespace thread, into the namespace
/// `file` is open on (`ns` names it in the error).
fn enter(file: &File, ns: &NetnsRecord) -> Result<()> {
    // SAFETY: setns only reads the fd, which `file` keeps open; it changes the
    // namespace of this thread alone (CLONE_NEWNET), which was created for that.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        bail!("cannot enter {ns}: setns: {e} (entering a namespace needs root / CAP_SYS_ADMIN)");
    }
    Ok(())
}

/// A network namespace found on this host by [`enumerate`] (`plan --all-netns`).
/// The main thread's namespace is the process's: only namespace threads call setns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FoundNetns {
    /// Who it is: `host` (or `self`, tune's own when it cannot tell), its name under /run/netns, a container (`docker-<id>`,
    /// `podman-<id>`, `kubepods/...`), or `pid N (COMM)`.
    pub identity: String,
    pub inode: u64,
    /// The lowest pid holding it (for namespaces not named under /run/netns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// That process's cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// How to enter it; `None`: it is tune's own namespace.
    #[serde(skip)]
    pub record: Option<NetnsRecord>,
}

fn nsfs_inode(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Every distinct network namespace: tune's own, those named under /run/netns, and
/// each one a process holds (/proc/*/ns/net), once each by inode. Processes that exit
/// or cannot be inspected while scanning are skipped; one pass over /proc.
pub fn enumerate() -> Result<Vec<FoundNetns>> {
    let (nsfs_dev, own) =
        nsfs_inode("/proc/self/ns/net".as_ref()).context("cannot stat /proc/self/ns/net")?;
    let host = nsfs_inode("/proc/1/ns/net".as_ref()).map(|(_, ino)| ino);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    seen.insert(own);
    out.push(FoundNetns {
        // `self` when pid 1's namespace cannot be read (or is another one).
        identity: if host == Some(own) { "host" } else { "self" }.into(),
        inode: own,
        pid: None,
        cgroup: None,
        record: None,
    });
    let mut named: Vec<(String, u64)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // An unmounted leftover is a plain file on another file system.
            match nsfs_inode(&entry.path()) {
                Some((dev, ino)) if dev == nsfs_dev => named.push((name, ino)),
                _ => {}
            }
        }
    }
    named.sort();
    for (name, inode) in named {
        if seen.insert(inode) {
            out.push(FoundNetns {
                identity: name.clone(),
                inode,
                pid: None,
                cgroup: None,
                record: Some(NetnsTarget::Name(name).record(inode)),
            });
        }
    }
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .context("cannot read /proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut identities: std::collections::BTreeSet<String> =
        out.iter().map(|f| f.identity.clone()).collect();
    for pid in pids {
        let Some((dev, inode)) = nsfs_inode(format!("/proc/{pid}/ns/net").as_ref()) else {
            continue;
        };
        if dev != nsfs_dev || !seen.insert(inode) {
            continue;
        }
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|text| cgroup_path(&text));
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let mut identity = cgroup
            .as_deref()
            .and_then(container_identity)
            .unwrap_or_else(|| format!("pid {pid} ({})", comm.trim()));
        if !identities.insert(identity.clone()) {
            identity = format!("{identity} pid {pid}");
            identities.insert(identity.clone());
        }
        out.push(FoundNetns {
            identity,
            inode,
            pid: Some(pid),
            cgroup,
            record: Some(NetnsTarget::Pid(pid).record(inode)),
        });
    }
    Ok(out)
}

/// A process's cgroup from /proc/PID/cgroup: a container's path if any line has one,
/// else the v2 (`0::`) path, else the first line's.
pub fn cgroup_path(text: &str) -> Option<String> {
    let paths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .collect();
    paths
        .iter()
        .find(|p| container_identity(p).is_some())
        .or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .as_ref()
                .and_then(|v2| paths.iter().find(|p| *p == v2))
        })
        .or(paths.first())
        .map(|p| (*p).to_owned())
}

/// The container a cgroup path belongs to: `docker-<12 hex>`, `podman-<12 hex>`, or the
/// path from its `kubepods` component on (a pod).
pub fn container_identity(cgroup: &str) -> Option<String> {
    let parts: Vec<&str> = cgroup.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(i) = parts.iter().position(|p| p.starts_with("kubepods")) {
        return Some(parts[i..].join("/"));
    }
    let short = |id: &str| id.chars().take(12).collect::<String>();
    let is_id = |id: &str| id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit());
    for (i, part) in parts.iter().enumerate() {
        for (prefix, kind) in [("docker-", "docker"), ("libpod-", "podman")] {
            if let Some(id) = part
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(".scope"))
                && is_id(id)
            {
                return Some(format!("{kind}-{}", short(id)));
            }
        }
        if *part == "docker" && parts.get(i + 1).is_some_and(|id| is_id(id)) {
            return Some(format!("docker-{}", short(parts[i + 1])));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_named_from_their_cgroup() {
        let id = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b";
        let cases = [
            (
                format!("/system.slice/docker-{id}.scope"),
                Some("docker-4f3c2b1a0e9d"),
            ),
            (format!("/docker/{id}"), Some("docker-4f3c2b1a0e9d")),
            (
                format!("/machine.slice/libpod-{id}.scope"),
                Some("podman-4f3c2b1a0e9d"),
            ),
            (
                "/kubepods/burstable/pod1234/abcd".to_owned(),
                Some("kubepods/burstable/pod1234/abcd"),
            ),
            ("/system.slice/sshd.service".to_owned(), None),
            ("/docker-xyz.scope".to_owned(), None),
        ];
        for (path, want) in cases {
            assert_eq!(container_identity(&path).as_deref(), want, "{path}");
        }
        let v1 = format!("4:memory:/docker/{id}\n1:name=systemd:/docker/{id}\n0::/\n");
        assert_eq!(cgroup_path(&v1), Some(format!("/docker/{id}")));
        assert_eq!(
            cgroup_path("1:name=systemd:/user.slice\n0::/init.scope\n"),
            Some("/init.scope".into())
        );
        assert_eq!(cgroup_path(""), None);
    }

    #[test]
    fn enumeration_starts_with_our_own_namespace_once() {
        let found = enumerate().unwrap();
        let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(found[0].inode, own);
        assert!(found[0].record.is_none());
        let mut inodes: Vec<u64> = found.iter().map(|f| f.inode).collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), found.len(), "each namespace once");
    }

    #[test]
    fn names_that_are_not_plain_file_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "../etc"] {
            let err = NetnsTarget::Name(bad.into()).resolve().unwrap_err();
            assert!(err.to_string().contains("file name"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn missing_namespaces_are_clear_errors() {
        let err = NetnsTarget::Name("tune-no-such-namespace-xyz".into())
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = NetnsTarget::Pid(u32::MAX - 1).resolve().unwrap_err();
        assert!(err.to_string().contains("no process"), "{err}");
    }

    #[test]
    fn the_current_namespace_is_recorded_and_checked() {
        let here = current().unwrap();
        assert_eq!((here.name.as_deref(), here.pid), (None, None));
        assert_eq!(here.target().unwrap(), NetnsTarget::Current);
        assert_eq!(run_in(Some(&here), || Ok(7)).unwrap(), 7);
        let elsewhere = NetnsRecord {
            inode: here.inode + 1,
            ..here.clone()
        };
        let err = run_in(Some(&elsewhere), || Ok(())).unwrap_err();
        assert!(
            err.to_string().contains("runs in the one with inode"),
            "{err}"
        );
        assert_eq!(identity(None).unwrap(), here);
        assert!(here.to_string().contains("tune ran in"), "{here}");
    }

    #[test]
    fn own_namespace_is_resolved_and_entered() {
        let me = NetnsTarget::Pid(std::process::id()).resolve().unwrap();
        let inode = run_in(Some(&me), || {
            Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
        });
        match inode {
            Ok(inode) => assert_eq!(inode, me.inode),
            // setns into one's own namespace still needs CAP_SYS_ADMIN.
            Err(e) => assert!(e.to_string().contains("setns"), "{e}"),
        }
        let stale = NetnsRecord {
            inode: me.inode + 1,
            ..me
        };
        let err = run_in(Some(&stale), || Ok(())).unwrap_err();
        assert!(err.to_string().contains("no longer"), "{err}");
    }
}
