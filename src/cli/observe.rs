//! How facts are observed, beyond what the rules ask: a saved kernel log instead of
//! the live one (`--kernel-log`), the counter sampling window (`--sample-window`), and
//! what a network namespace means for the kernel log (host-wide; for `--netns-pid`,
//! only the container's OOM kills).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::Args;

use crate::facts::{GatherOptions, kmsg_file, scope};
use crate::kernel::netns::NetnsRecord;

#[derive(Debug, Default, Args)]
pub struct ObserveArgs {
    /// Read the kernel log from this saved file instead of the live one: raw `dmesg`,
    /// `dmesg -T`, syslog or /var/log/kern.log, or `journalctl -k` (short, short-iso,
    /// short-monotonic).
    #[arg(long, value_name = "FILE")]
    pub kernel_log: Option<PathBuf>,
    /// How long to sample counters whose rules ask for growth, e.g. 500ms or 2s
    /// (overrides the playbooks' `window`).
    #[arg(long, value_name = "DURATION", value_parser = parse_window)]
    pub sample_window: Option<Duration>,
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 2s, 500ms"))?;
    if d.is_zero() || d > Duration::from_secs(60) {
        return Err(format!(
            "{s:?}: the sampling window must be above 0 and at most 60s"
        ));
    }
    Ok(d)
}

impl ObserveArgs {
    pub fn given(&self) -> bool {
        self.kernel_log.is_some() || self.sample_window.is_some()
    }

    /// The gather options for facts read in `ns` (or tune's own namespace). A saved log
    /// that cannot be read or parsed is an error: nothing is planned from it.
    pub fn options(&self, ns: Option<&NetnsRecord>) -> Result<GatherOptions> {
        let kernel_log = match &self.kernel_log {
            Some(path) => {
                let saved = kmsg_file::open(path).map_err(|e| anyhow!(e))?;
                Some((path.display().to_string(), saved))
            }
            None => None,
        };
        let memcg = match ns.and_then(|n| n.pid) {
            Some(pid) => Some(scope::memcg_of_pid(pid).map_err(|e| {
                anyhow!("--netns-pid {pid}: cannot tell its memory cgroup, to count only its OOM kills: {e}")
            })?),
            None => None,
        };
        Ok(GatherOptions {
            kernel_log,
            sample_window: self.sample_window,
            netns: ns.map(ToString::to_string),
            memcg,
            recorded_samples: None,
            root: None,
            recorded_listeners: None,
            recorded_tables: None,
            recorded_rx_drops: None,
        })
    }
}
