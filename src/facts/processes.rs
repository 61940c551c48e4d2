//! Processes and their memory cgroups: pid, command name, command line, the JVM
//! option variables of their environment, and the memory limit that applies to them.
//!
//! Processes are picked by command name (`/proc/PID/comm`) so that only a handful of
//! files are read per matching process. A process that exits while it is being read
//! is skipped (it is not there to fix); one whose environment cannot be read (another
//! user's process, as non-root) keeps an unknown environment.
//!
//! The memory cgroup comes from `/proc/PID/cgroup`: the cgroup v1 `memory` controller
//! line when that hierarchy is mounted, else the v2 line (`0::PATH`). The path is
//! relative to the reader's cgroup namespace; it is mapped to a directory through the
//! hierarchy's mount in `/proc/self/mountinfo` (mount root stripped, mount point
//! prepended). The effective limit is the smallest `memory.limit_in_bytes` (v1) or
//! `memory.max` (v2) from the process's cgroup up to the mount's root: a parent's
//! limit caps its children.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Fact, describe_io_error, procfs};
use crate::domain::jvm::JVM_ENV_VARS;

/// A process picked by command name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessInfo {
    pub pid: u32,
    /// `/proc/PID/comm`, e.g. `java`.
    pub comm: String,
    /// The command line, one argument per item.
    pub cmdline: Vec<String>,
    /// The JVM option variables that are set in its environment (JAVA_TOOL_OPTIONS,
    /// JDK_JAVA_OPTIONS, _JAVA_OPTIONS, JAVA_OPTS, CATALINA_OPTS).
    pub env: Fact<BTreeMap<String, String>>,
    pub memory_cgroup: Fact<MemoryCgroup>,
}

/// The memory cgroup of a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryCgroup {
    /// The path as `/proc/PID/cgroup` gives it.
    pub path: String,
    /// 1 or 2.
    pub version: u8,
    /// The smallest limit from this cgroup up to the root, in bytes; none: unlimited.
    #[serde(default)]
    pub limit: Option<u64>,
    /// The cgroup (same notation as `path`) that sets that limit.
    #[serde(default)]
    pub limit_from: Option<String>,
    /// Current usage of the process's own cgroup, in bytes.
    #[serde(default)]
    pub usage: Option<u64>,
}

/// A cgroup hierarchy mounted on this system.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupMount {
    /// The cgroup path mounted (`/` outside containers).
    pub root: String,
    pub mount_point: PathBuf,
    pub version: u8,
}

/// The memory-controller hierarchies of a mountinfo file: v1 `cgroup` mounts whose
/// options name `memory`, and `cgroup2` mounts.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount_point), Some(fstype)) =
            (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let version = match *fstype {
            "cgroup"
                if right
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "memory")) =>
            {
                1
            }
            "cgroup2" => 2,
            _ => continue,
        };
        out.push(CgroupMount {
            root: unescape_mount(root),
            mount_point: PathBuf::from(unescape_mount(mount_point)),
            version,
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The (v1 memory, v2) paths of a `/proc/PID/cgroup` file.
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_owned());
        }
    }
    (v1, v2)
}

/// The directory of `path` in `mount`, or `None` when the mount does not show it.
pub fn cgroup_dir(mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        path.strip_prefix('/')?
    } else {
        let rest = path.strip_prefix(mount.root.as_str())?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest.trim_start_matches('/')
    };
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(mount.mount_point.join(rel))
}

/// v1 reports "no limit" as a huge page-aligned number (9223372036854771712).
const V1_UNLIMITED: u64 = 1 << 62;

fn read_number(path: &Path) -> std::io::Result<Option<u64>> {
    let text = std::fs::read_to_string(path)?;
    let text = text.trim();
    if text == "max" {
        return Ok(None);
    }
    text.parse::<u64>()
        .map(|v| (v < V1_UNLIMITED).then_some(v))
        .map_err(|e| {
            std::io::Error::new(ErrorKind::InvalidData, format!("{}: {e}", path.display()))
        })
}

/// Reads the limit and usage of the cgroup at `path` in `mount`.
pub fn read_memory_cgroup(mount: &CgroupMount, path: &str) -> Result<MemoryCgroup, String> {
    let dir = cgroup_dir(mount, path).ok_or_else(|| {
        format!(
            "cgroup {path} is outside the mounted hierarchy {}",
            mount.root
        )
    })?;
    let (limit_file, usage_file) = match mount.version {
        1 => ("memory.limit_in_bytes", "memory.usage_in_bytes"),
        _ => ("memory.max", "memory.current"),
    };
    if !dir.is_dir() {
        return Err(format!(
            "{}: not present (the process moved or exited)",
            dir.display()
        ));
    }
    let mut limit: Option<(u64, String)> = None;
    let mut current = dir.clone();
    let mut cg_path = path.to_owned();
    loop {
        match read_number(&current.join(limit_file)) {
            Ok(Some(v)) if limit.as_ref().is_none_or(|(l, _)| v < *l) => {
                limit = Some((v, cg_path.clone()));
            }
            Ok(_) => {}
            // v2: the root and cgroups without the memory controller have no file.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "{}: {}",
                    current.join(limit_file).display(),
                    describe_io_error(&e)
                ));
            }
        }
        if current == mount.mount_point || !current.pop() {
            break;
        }
        cg_path = match cg_path.rfind('/') {
            Some(0) | None => "/".to_owned(),
            Some(i) => cg_path[..i].to_owned(),
        };
    }
    let usage = read_number(&dir.join(usage_file)).ok().flatten();
    Ok(MemoryCgroup {
        path: path.to_owned(),
        version: mount.version,
        limit: limit.as_ref().map(|(v, _)| *v),
        limit_from: limit.map(|(_, p)| p),
        usage,
    })
}

/// The memory cgroup of a process, from its `/proc/PID/cgroup` text.
pub fn memory_cgroup_of(cgroup_text: &str, mounts: &[CgroupMount]) -> Fact<MemoryCgroup> {
    let (v1, v2) = parse_proc_cgroup(cgroup_text);
    let v1_mount = mounts.iter().find(|m| m.version == 1);
    let v2_mount = mounts.iter().find(|m| m.version == 2);
    let result = match (v1, v1_mount, v2, v2_mount) {
        (Some(path), Some(mount), _, _) => read_memory_cgroup(mount, &path),
        (_, _, Some(path), Some(mount)) => read_memory_cgroup(mount, &path),
        _ => Err("no memory cgroup hierarchy is mounted".to_owned()),
    };
    match result {
        Ok(c) => Fact::Value(c),
        Err(e) => Fact::Unknown(e),
    }
}

/// Splits `/proc/PID/environ` and keeps the JVM option variables.
pub fn jvm_env(environ: &[u8]) -> BTreeMap<String, String> {
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (k, v) = entry.split_once('=')?;
            JVM_ENV_VARS
                .contains(&k)
                .then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn exited(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Reads one process under `proc_root`; `None` when it is gone, is not one of
/// `comms`, or is a kernel thread or zombie (empty command line).
pub fn read_process(
    proc_root: &Path,
    pid: u32,
    comms: &BTreeSet<String>,
    mounts: &[CgroupMount],
) -> Option<ProcessInfo> {
    let dir = proc_root.join(pid.to_string());
    let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
    let comm = comm.trim_end_matches('\n').to_owned();
    if !comms.contains(&comm) {
        return None;
    }
    let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
    let cmdline: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if cmdline.is_empty() {
        return None;
    }
    let env = match std::fs::read(dir.join("environ")) {
        Ok(bytes) => Fact::Value(jvm_env(&bytes)),
        Err(e) if exited(&e) => return None,
        Err(e) => Fact::Unknown(format!("/proc/{pid}/environ: {}", describe_io_error(&e))),
    };
    let memory_cgroup = match std::fs::read_to_string(dir.join("cgroup")) {
        Ok(text) => memory_cgroup_of(&text, mounts),
        Err(e) if exited(&e) => return None,
        Err(e) => Fact::Unknown(format!("/proc/{pid}/cgroup: {}", describe_io_error(&e))),
    };
    Some(ProcessInfo {
        pid,
        comm,
        cmdline,
        env,
        memory_cgroup,
    })
}

/// Every process whose command name is one of `comms`, by pid.
pub fn gather(comms: &BTreeSet<String>) -> Fact<Vec<ProcessInfo>> {
    gather_in(Path::new("/proc"), comms)
}

/// [`gather`] under `proc_root`. Each process costs one openat, read and close (its
/// `comm`, relative to one /proc directory fd); only the matching ones are read
/// further, and mountinfo is read only once one matches.
pub fn gather_in(proc_root: &Path, comms: &BTreeSet<String>) -> Fact<Vec<ProcessInfo>> {
    let unknown = |e: std::io::Error| {
        Fact::Unknown(format!(
            "{}: {}",
            proc_root.display(),
            describe_io_error(&e)
        ))
    };
    let dir = match procfs::Dir::open(proc_root) {
        Ok(d) => d,
        Err(e) => return unknown(e),
    };
    let mut mounts: Option<Vec<CgroupMount>> = None;
    let mut found = Vec::new();
    let walked = procfs::comms(&dir, |pid, comm| {
        if std::str::from_utf8(comm).is_ok_and(|c| comms.contains(c)) {
            let mounts = mounts.get_or_insert_with(|| {
                std::fs::read_to_string("/proc/self/mountinfo")
                    .map(|text| parse_mountinfo(&text))
                    .unwrap_or_default()
            });
            found.extend(read_process(proc_root, pid, comms, mounts));
        }
        ControlFlow::Continue(())
    });
    match walked {
        Ok(()) => Fact::Value(found),
        Err(e) => unknown(e),
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn mem_total() -> Fact<u64> {
    match super::procfs::read_text("/proc/meminfo") {
        Ok(text) => parse_mem_total(&text)
            .map(Fact::Value)
            .unwrap_or_else(|| Fact::Unknown("no MemTotal in /proc/meminfo".into())),
        Err(e) => Fact::Unknown(format!("/proc/meminfo: {}", describe_io_error(&e))),
    }
}

pub fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:40 /docker/abc /mnt/my\\040cg rw shared:5 - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_memory_hierarchies_in_mountinfo() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(m[0].version, 1);
        assert_eq!(m[1].version, 2);
        assert_eq!(m[2].root, "/docker/abc");
        assert_eq!(m[2].mount_point, Path::new("/mnt/my cg"));
    }

    #[test]
    fn parses_proc_cgroup_and_maps_paths() {
        let (v1, v2) = parse_proc_cgroup("9:name=systemd:/\n4:memory:/a/b\n1:cpu:/\n0::/c\n");
        assert_eq!(v1.as_deref(), Some("/a/b"));
        assert_eq!(v2.as_deref(), Some("/c"));
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            cgroup_dir(&m[0], "/a/b"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/a/b"))
        );
        assert_eq!(
            cgroup_dir(&m[2], "/docker/abc/x"),
            Some(PathBuf::from("/mnt/my cg/x"))
        );
        assert_eq!(
            cgroup_dir(&m[2], "/docker/abcd"),
            None,
            "a sibling, not below the root"
        );
        assert_eq!(cgroup_dir(&m[0], "/a/../../etc"), None);
    }

    #[test]
    fn effective_limit_is_the_smallest_up_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let write = |rel: &str, file: &str, v: &str| {
            std::fs::create_dir_all(root.join(rel)).unwrap();
            std::fs::write(root.join(rel).join(file), v).unwrap();
        };
        // v2: the root has no memory.max; /a caps at 512 MiB; /a/b says max.
        write("", "cgroup.procs", "");
        write("a", "memory.max", "536870912\n");
        write("a/b", "memory.max", "max\n");
        write("a/b", "memory.current", "1234\n");
        let mount = CgroupMount {
            root: "/".into(),
            mount_point: root.to_path_buf(),
            version: 2,
        };
        let c = read_memory_cgroup(&mount, "/a/b").unwrap();
        assert_eq!(c.limit, Some(512 << 20));
        assert_eq!(c.limit_from.as_deref(), Some("/a"));
        assert_eq!(c.usage, Some(1234));
        // v1: unlimited is a huge number at every level.
        write("x", "memory.limit_in_bytes", "9223372036854771712\n");
        write("", "memory.limit_in_bytes", "9223372036854771712\n");
        let v1 = CgroupMount {
            version: 1,
            ..mount
        };
        let c = read_memory_cgroup(&v1, "/x").unwrap();
        assert_eq!((c.limit, c.limit_from), (None, None));
        assert!(read_memory_cgroup(&v1, "/gone").is_err());
    }

    #[test]
    fn keeps_only_jvm_variables_from_environ() {
        let env = jvm_env(b"PATH=/bin\0JAVA_TOOL_OPTIONS=-Xmx1g -Da=b=c\0_JAVA_OPTIONS=\0HOME=/\0");
        assert_eq!(env.len(), 2);
        assert_eq!(env["JAVA_TOOL_OPTIONS"], "-Xmx1g -Da=b=c");
        assert_eq!(env["_JAVA_OPTIONS"], "");
    }

    #[test]
    fn reads_this_process_and_skips_a_dead_one() {
        let comms = BTreeSet::from([std::fs::read_to_string("/proc/self/comm")
            .unwrap()
            .trim()
            .to_owned()]);
        let me = read_process(Path::new("/proc"), std::process::id(), &comms, &[]).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(
            matches!(me.memory_cgroup, Fact::Unknown(_)),
            "no mounts given"
        );
        let mine = gather(&comms);
        assert!(
            matches!(&mine, Fact::Value(ps) if ps.iter().any(|p| p.pid == std::process::id())),
            "{mine:?}"
        );
        // pid_max is at most 2^22: this pid cannot exist.
        assert_eq!(read_process(Path::new("/proc"), 1 << 23, &comms, &[]), None);
        assert_eq!(
            parse_mem_total("MemTotal:       24731648 kB\n"),
            Some(24731648 * 1024)
        );
    }
}
