//! The sysctl executor: procfs writes with the kernel's refusal spelled out.

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
        Some(libc::EINVAL) => anyhow!("the kernel refused {value:?} for {key} (EINVAL: value out of range or malformed)"),
        Some(libc::EPERM) | Some(libc::EACCES) => anyhow!("not permitted to write {key} ({e}); global sysctls are writable only from the initial network namespace, and only as root"),
        _ => anyhow!("cannot write {value:?} to {}: {e}", parsed.path().display()),
    })
}
