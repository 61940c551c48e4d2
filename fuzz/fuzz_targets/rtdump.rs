//! The netlink dump parser: datagrams of link and qdisc messages, as a hostile or
//! buggy kernel (or a truncated read) could hand them over.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tune::kernel::rtdump::{self, RTM_NEWLINK, RTM_NEWQDISC};

fuzz_target!(|data: &[u8]| {
    let seq = data
        .get(..4)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let _ = rtdump::read_datagram(data, seq, |kind, payload| {
        match kind {
            RTM_NEWLINK => {
                let _ = rtdump::parse_link(payload)?;
            }
            RTM_NEWQDISC => {
                if let Some(options) = rtdump::parse_qdisc(payload)?.options {
                    let _ = tune::domain::qdisc::summary("netem", options);
                }
            }
            _ => {}
        }
        Ok(())
    });
    // The payload parsers on their own, and the attribute walker.
    let _ = rtdump::parse_link(data);
    let _ = rtdump::parse_qdisc(data);
    for attr in rtdump::attributes(data) {
        if attr.is_err() {
            break;
        }
    }
});
