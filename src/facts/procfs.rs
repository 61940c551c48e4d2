//! Walks of /proc with few system calls, for the probes that look at every process
//! (`processes`, the socket owners of `sockets`): one directory fd for /proc, names
//! opened relative to it (openat(2), no path walk from `/` per file), directories
//! listed by getdents64(2) into one buffer, and small files read by one read(2) into
//! a caller's buffer (procfs hands a small file such as `comm` whole to one read
//! large enough for it), so reading a process's `comm` is openat, read, close.

use std::ffi::CStr;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Reads a /proc text file of any size (/proc/stat, netstat) in one or two read(2)
/// calls. The kernel reports these files' size as 0, so `read_to_string` alone would
/// grow its buffer from 32 bytes, a read(2) per doubling; most are a few KB (a 16 KiB
/// first buffer cost more page faults than it saved reads), and a larger one still
/// grows.
pub fn read_text(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(4 << 10);
    std::fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// An open directory (O_DIRECTORY), closed on drop.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// The size of the getdents64 buffer: a /proc listing of 5,000 processes is about
/// 120 KB, so a few calls.
const DENTS_BUFFER: usize = 32 << 10;

fn check(rc: libc::c_long) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

impl Dir {
    /// Opens the directory at `path`.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)?;
        Ok(Dir { fd: f.into() })
    }

    fn open_raw(&self, rel: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
        loop {
            // SAFETY: rel is NUL-terminated; the result is checked before use.
            let fd = unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    rel.as_ptr(),
                    flags | libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY,
                )
            };
            if fd >= 0 {
                // SAFETY: a fresh descriptor that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Opens the directory `rel` below this one.
    pub fn dir_at(&self, rel: &CStr) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.open_raw(rel, libc::O_DIRECTORY)?,
        })
    }

    /// Reads the file `rel` below this one with one read(2) into `buf`; the bytes
    /// read. A file larger than `buf` is an error (`InvalidData`), never cut short.
    pub fn read_small<'b>(&self, rel: &CStr, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
        let fd = self.open_raw(rel, 0)?;
        let n = loop {
            // SAFETY: buf is a live buffer of the given length.
            let rc = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match check(rc as libc::c_long) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {} bytes", buf.len()),
            ));
        }
        Ok(&buf[..n])
    }

    /// The target of the symbolic link `rel` below this one, into `buf`.
    pub fn read_link<'b>(&self, rel: &CStr, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
        // SAFETY: rel is NUL-terminated, buf a live buffer of the given length.
        let rc = unsafe {
            libc::readlinkat(
                self.fd.as_raw_fd(),
                rel.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = check(rc as libc::c_long)?;
        Ok(&buf[..n.min(buf.len())])
    }

    /// Hands the name of every entry but `.` and `..` to `each` (NUL-terminated).
    /// Consumes the directory's read position: call once per opened directory.
    pub fn entries(&self, mut each: impl FnMut(&CStr)) -> io::Result<()> {
        let mut buf = vec![0u8; DENTS_BUFFER];
        loop {
            // SAFETY: buf is a live buffer of the given length; the kernel writes
            // whole linux_dirent64 records into it.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            let n = match check(rc) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            if n == 0 {
                return Ok(());
            }
            for_each_dirent(&buf[..n], &mut each);
        }
    }
}

/// Walks the `struct linux_dirent64` records of one getdents64 result: d_ino (8
/// bytes), d_off (8), d_reclen (2), d_type (1), then the NUL-terminated name.
fn for_each_dirent(mut records: &[u8], each: &mut impl FnMut(&CStr)) {
    while records.len() >= 19 {
        let reclen = usize::from(u16::from_ne_bytes([records[16], records[17]]));
        if reclen < 19 || reclen > records.len() {
            return;
        }
        if let Ok(name) = CStr::from_bytes_until_nul(&records[19..reclen])
            && name.to_bytes() != b"."
            && name.to_bytes() != b".."
        {
            each(name);
        }
        records = &records[reclen..];
    }
}

/// A process id from a /proc entry name (`1234`); `None` for `self`, `sys`, ...
pub fn pid_of(name: &CStr) -> Option<u32> {
    let b = name.to_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Hands every process's pid and `comm` (without its newline) to `each`, in pid
/// order, until it breaks: per process one openat, read and close, relative to `dir`
/// (a /proc). A process gone before its `comm` is read is skipped.
pub fn comms(dir: &Dir, mut each: impl FnMut(u32, &[u8]) -> ControlFlow<()>) -> io::Result<()> {
    let mut pids = Vec::new();
    dir.entries(|name| pids.extend(pid_of(name)))?;
    pids.sort_unstable();
    let mut buf = [0u8; 128];
    for pid in pids {
        let Ok(comm) = dir.read_small(&pid_path(pid, "comm"), &mut buf) else {
            continue;
        };
        if each(pid, comm.strip_suffix(b"\n").unwrap_or(comm)).is_break() {
            break;
        }
    }
    Ok(())
}

/// `PID/NAME` as a C string, for [`Dir`]'s relative opens.
pub fn pid_path(pid: u32, name: &str) -> std::ffi::CString {
    // A decimal number and a name without NUL bytes cannot hold a NUL.
    std::ffi::CString::new(format!("{pid}/{name}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_reads_and_follows_links_relative_to_the_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("42/fd")).expect("mkdir");
        std::fs::write(tmp.path().join("42/comm"), "nginx\n").expect("comm");
        std::os::unix::fs::symlink("socket:[7]", tmp.path().join("42/fd/3")).expect("link");
        std::fs::create_dir(tmp.path().join("self")).expect("mkdir");
        let dir = Dir::open(tmp.path()).expect("open");
        let mut pids = Vec::new();
        dir.entries(|n| pids.extend(pid_of(n))).expect("list");
        assert_eq!(pids, [42]);
        let mut buf = [0u8; 64];
        assert_eq!(
            dir.read_small(&pid_path(42, "comm"), &mut buf)
                .expect("read"),
            b"nginx\n"
        );
        let mut small = [0u8; 6];
        assert!(
            dir.read_small(&pid_path(42, "comm"), &mut small).is_err(),
            "too large"
        );
        let fd = dir.dir_at(&pid_path(42, "fd")).expect("fd dir");
        let mut names = Vec::new();
        fd.entries(|n| names.push(n.to_owned())).expect("list fds");
        assert_eq!(names, [c"3".to_owned()]);
        assert_eq!(fd.read_link(c"3", &mut buf).expect("link"), b"socket:[7]");
        assert!(
            dir.read_small(&pid_path(43, "comm"), &mut buf).is_err(),
            "gone"
        );
    }

    #[test]
    fn dirent_records_are_bounded() {
        let mut rec = vec![0u8; 24];
        rec[16..18].copy_from_slice(&24u16.to_ne_bytes());
        rec[19..22].copy_from_slice(b"12\0");
        let mut seen = Vec::new();
        for_each_dirent(&rec, &mut |n: &CStr| seen.push(n.to_owned()));
        assert_eq!(seen, [c"12".to_owned()]);
        rec[16..18].copy_from_slice(&200u16.to_ne_bytes());
        for_each_dirent(&rec, &mut |_: &CStr| panic!("a record past the end"));
        assert_eq!(pid_of(c"self"), None);
        assert_eq!(pid_of(c"007"), Some(7));
    }
}
