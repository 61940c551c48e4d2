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
    let target = ns.target()?;
    let (file, inode) = target.open()?;
    if target == NetnsTarget::Current {
        // Nothing to enter: check that this is still the namespace recorded.
        if inode != ns.inode {
            bail!(
                "this was recorded in the network namespace with inode {}, but tune runs in the one with inode {inode} now (made under `ip netns exec`, or in a container?); run it in that namespace, or name it with --netns / --netns-pid; nothing was changed",
                ns.inode
            );
        }
        drop(file);
        return work();
    }
    if inode != ns.inode {
        bail!(
            "{ns} is no longer the namespace that was recorded (inode {} then, {inode} now): it was deleted and re-created, or the process was replaced; nothing was changed",
            ns.inode
        );
    }
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("tune-netns".into())
            .spawn_scoped(scope, move || {
                // SAFETY: setns only reads the fd, which `file` keeps open; it changes
                // the namespace of this thread alone (CLONE_NEWNET), which this thread
                // was created for.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    let e = std::io::Error::last_os_error();
                    bail!("cannot enter {ns}: setns: {e} (entering a namespace needs root / CAP_SYS_ADMIN)");
                }
                drop(file);
                work()
            })
            .context("cannot start the namespace thread")?;
        thread
            .join()
            .map_err(|_| anyhow!("the namespace thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
