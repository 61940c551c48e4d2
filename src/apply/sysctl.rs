//! The sysctl executor: procfs writes with the kernel's refusal spelled out.
//!
//! A refusal is explained by what it is, not guessed: a key that is read-only in this
//! namespace (the kernel gives global keys such as `nf_conntrack_max` mode 0444 outside
//! the initial network namespace) is a global sysctl; a writable key that is still
//! refused is a matter of privilege or policy, not of namespaces.

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, Result, anyhow};

use crate::kernel::sysctl::SysctlKey;

pub fn read(key: &str) -> Result<String> {
    let parsed = SysctlKey::parse(key).map_err(|e| anyhow!(e))?;
    crate::kernel::sysctl::read(&parsed)
        .with_context(|| format!("cannot read {}", parsed.path().display()))
}

pub fn write(key: &str, value: &str) -> Result<()> {
    let parsed = SysctlKey::parse(key).map_err(|e| anyhow!(e))?;
    crate::kernel::sysctl::write(&parsed, value).map_err(|e| match e.raw_os_error() {
        Some(libc::EINVAL) => anyhow!(
            "the kernel refused {value:?} for {key} (EINVAL: value out of range or malformed)"
        ),
        Some(libc::EPERM | libc::EACCES) => anyhow!(refusal(&parsed, &e)),
        Some(libc::EROFS) => anyhow!(
            "cannot write {key}: /proc/sys is mounted read-only here ({e}), as in many containers"
        ),
        _ => anyhow!("cannot write {value:?} to {}: {e}", parsed.path().display()),
    })
}

/// Why a write of `key` was not permitted, from the facts at hand.
fn refusal(key: &SysctlKey, e: &std::io::Error) -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return format!("not permitted to write {key} ({e}): writing sysctls needs root");
    }
    let mode = std::fs::metadata(key.path()).map(|m| m.permissions().mode());
    match mode {
        Ok(mode) if mode & 0o222 == 0 => format!(
            "not permitted to write {key} ({e}): it is read-only in this network namespace (mode {:o}), which is how the kernel marks a global sysctl outside the initial namespace; global sysctls are writable only from the initial network namespace",
            mode & 0o777
        ),
        _ => format!(
            "not permitted to write {key} ({e}) although it is writable here: the kernel or a security policy refused it (a container without CAP_NET_ADMIN or CAP_SYS_ADMIN over this namespace, or an LSM)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_per_namespace_key_is_not_called_global() {
        // net.core.somaxconn is per namespace and writable (0644) in every one.
        let key = SysctlKey::parse("net.core.somaxconn").unwrap();
        let eperm = std::io::Error::from_raw_os_error(libc::EPERM);
        let message = refusal(&key, &eperm);
        assert!(!message.contains("global"), "{message}");
        assert!(message.contains("net.core.somaxconn"), "{message}");
    }
}
