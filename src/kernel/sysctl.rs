//! Sysctl keys and their files under /proc/sys.
//!
//! A key is written either dotted (`net.core.somaxconn`, as sysctl(8) prints it) or as
//! a path below /proc/sys (`net/ipv4/conf/eth0.100/rp_filter`), which is the only way
//! to name an interface whose name has a dot. Keys are validated here, once, before
//! anything touches the filesystem: only `[A-Za-z0-9_.-/]`, no empty or `.`/`..`
//! components, and the resolved file must stay below /proc/sys. Reads and writes go
//! straight to procfs (no `sysctl` subprocess, no crate that rewrites dots), so they
//! work unchanged on a thread that has entered another network namespace.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const PROC_SYS: &str = "/proc/sys";

/// A validated sysctl key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SysctlKey {
    /// The key as written in the playbook.
    text: String,
    /// Components below /proc/sys.
    components: Vec<String>,
}

impl SysctlKey {
    pub fn parse(text: &str) -> Result<SysctlKey, String> {
        if text.is_empty() {
            return Err("empty sysctl key".into());
        }
        if text.len() > 256 {
            return Err(format!("sysctl key is too long ({} bytes)", text.len()));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
        {
            return Err(format!(
                "sysctl key {text:?} contains {bad:?}; only letters, digits, `_`, `.`, `-` and `/` are allowed"
            ));
        }
        let components: Vec<String> = if text.contains('/') {
            text.split('/').map(str::to_owned).collect()
        } else {
            text.split('.').map(str::to_owned).collect()
        };
        for c in &components {
            if c.is_empty() || c == "." || c == ".." {
                return Err(format!(
                    "sysctl key {text:?} has an empty, `.` or `..` component; keys must name a file below {PROC_SYS}"
                ));
            }
        }
        Ok(SysctlKey {
            text: text.to_owned(),
            components,
        })
    }

    /// The file below /proc/sys.
    pub fn path(&self) -> PathBuf {
        self.path_under(Path::new(PROC_SYS))
    }

    /// The file below another root (tests use a temp dir laid out like /proc/sys).
    pub fn path_under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for c in &self.components {
            p.push(c);
        }
        p
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Whether two spellings name the same sysctl (`net.ipv4.x` and `net/ipv4/x`).
pub fn same_key(a: &str, b: &str) -> bool {
    match (SysctlKey::parse(a), SysctlKey::parse(b)) {
        (Ok(a), Ok(b)) => a.components == b.components,
        _ => false,
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for SysctlKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        SysctlKey::parse(&s)
    }
}

impl From<SysctlKey> for String {
    fn from(k: SysctlKey) -> String {
        k.text
    }
}

/// Collapses the whitespace of a sysctl value: procfs separates fields with tabs,
/// playbooks and plans with single spaces.
pub fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a sysctl's current value, normalized.
pub fn read(key: &SysctlKey) -> std::io::Result<String> {
    let mut file = open_below_proc_sys(&key.path(), libc::O_RDONLY)?;
    // Read to the end without the size probe (fstat, lseek) of `read_to_string`:
    // procfs reports size 0 for every sysctl file anyway.
    let mut raw = Vec::with_capacity(64);
    let mut chunk = [0u8; 512];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let raw = String::from_utf8(raw).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })?;
    Ok(normalize(&raw))
}

/// Writes a value in one `write(2)`, as the kernel expects, and returns the kernel's
/// refusal (EINVAL, EPERM, ...) as the error.
pub fn write(key: &SysctlKey, value: &str) -> std::io::Result<()> {
    let mut file = open_below_proc_sys(&key.path(), libc::O_WRONLY)?;
    file.write_all(format!("{value}\n").as_bytes())?;
    Ok(())
}

/// Opens a key's file, refusing any path that reaches a symbolic link: openat2(2) with
/// RESOLVE_NO_SYMLINKS, one system call that checks and opens at once (the path is
/// `/proc/sys/` and the key's components, which the syntax check keeps free of `..`).
/// Where openat2 is missing (Linux before 5.6, or a seccomp filter that refuses it),
/// the path is resolved first and must stay below /proc/sys, then opened.
fn open_below_proc_sys(path: &Path, flags: libc::c_int) -> std::io::Result<File> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: open_how is plain data; all-zero is its "nothing asked" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS;
    loop {
        // SAFETY: c_path is NUL-terminated and `how` a live open_how of the size given;
        // the result is checked before use.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                c_path.as_ptr(),
                &raw const how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor that nothing else owns (fd fits in c_int).
            return Ok(unsafe { File::from_raw_fd(fd as libc::c_int) });
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ELOOP) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} is reached through a symbolic link", path.display()),
                ));
            }
            Some(libc::ENOSYS | libc::EPERM) => {
                check_below_proc_sys(path)?;
                return std::fs::OpenOptions::new()
                    .read(flags == libc::O_RDONLY)
                    .write(flags == libc::O_WRONLY)
                    .open(path);
            }
            _ => return Err(e),
        }
    }
}

/// Resolves symlinks and refuses a key whose file is not below /proc/sys (the
/// fallback of [`open_below_proc_sys`]). The syntax check already forbids `..`; this
/// guards against anything procfs itself might link elsewhere.
fn check_below_proc_sys(path: &Path) -> std::io::Result<()> {
    let real = std::fs::canonicalize(path)?;
    if real.starts_with(PROC_SYS) {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} resolves outside {PROC_SYS}", path.display()),
        ))
    }
}

/// Whether the key names an existing file on this host.
pub fn exists(key: &SysctlKey) -> bool {
    key.path().is_file()
}

/// Parses a two-number range value such as `32768 60999`.
pub fn parse_range(value: &str) -> Option<(i64, i64)> {
    let mut it = value.split_whitespace();
    let low = it.next()?.parse().ok()?;
    let high = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_through_a_symbolic_link_is_refused_in_the_open_itself() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = tmp.path().join("value");
        std::fs::write(&real, "42\n").expect("write");
        std::os::unix::fs::symlink(&real, tmp.path().join("link")).expect("symlink");
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("dir")).expect("symlink");
        let mut text = String::new();
        open_below_proc_sys(&real, libc::O_RDONLY)
            .expect("a plain path opens")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "42\n");
        for through in [tmp.path().join("link"), tmp.path().join("dir/value")] {
            let e = open_below_proc_sys(&through, libc::O_RDONLY).expect_err("refused");
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{through:?}"
            );
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        let e =
            open_below_proc_sys(&tmp.path().join("missing"), libc::O_RDONLY).expect_err("missing");
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        open_below_proc_sys(&real, libc::O_WRONLY)
            .expect("opens for writing")
            .write_all(b"7\n")
            .expect("write");
        // Written over the start, not truncated (procfs takes one write(2) as is).
        assert_eq!(std::fs::read_to_string(&real).expect("read"), "7\n\n");
    }

    #[test]
    fn dotted_and_path_keys_resolve_below_proc_sys() {
        let k = SysctlKey::parse("net.core.somaxconn").unwrap();
        assert_eq!(k.path(), PathBuf::from("/proc/sys/net/core/somaxconn"));
        let k = SysctlKey::parse("net/ipv4/conf/eth0.100/rp_filter").unwrap();
        assert_eq!(
            k.path(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
    }

    #[test]
    fn hostile_keys_are_refused() {
        for bad in [
            "",
            "../../etc/passwd",
            "net/../../../etc/shadow",
            "net..core",
            "/etc/passwd",
            "net.core.somaxconn\n",
            "net core",
            "net/./core",
            "net.core.*",
            "kernel/",
        ] {
            assert!(SysctlKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn values_are_normalized_and_ranges_parsed() {
        assert_eq!(normalize("32768\t60999\n"), "32768 60999");
        assert_eq!(parse_range("32768\t60999"), Some((32768, 60999)));
        assert_eq!(parse_range("1"), None);
        assert_eq!(parse_range("1 2 3"), None);
    }
}
