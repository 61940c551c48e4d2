//! Queueing disciplines as data: the raw TCA_OPTIONS bytes of a root qdisc, their
//! canonical text, and the parsed options of `netem`.
//!
//! Pure: no I/O. netlink-packet-route hands the options of most qdisc kinds over as
//! opaque bytes, which is what rollback needs anyway — re-creating a deleted qdisc
//! exactly means sending back the very bytes the kernel dumped. For `netem` the bytes
//! are `struct tc_netem_qopt` followed by netlink attributes (include/uapi/linux/
//! pkt_sched.h); [`parse_netem`] reads them so plans can show and rules can test the
//! loss, delay, duplication and corruption a leftover netem qdisc inflicts.
//!
//! A qdisc's *canonical* text ([`QdiscSpec::canonical`]) is what the apply engine
//! compares when it checks for drift and verifies a write: kind, handle, parent, a
//! human summary, and the option bytes in hex. Counters that the kernel reports inside
//! the options (htb's `direct_pkts`) are masked there, so traffic is not drift.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kernel::nlattr::{self, u32_at, u64_at};

/// `TC_H_ROOT`: the parent of a device's root qdisc.
pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;

/// Text shown for "no qdisc of ours": the device runs its default root qdisc.
pub const NONE: &str = "(none)";

/// A qdisc as it is (or was) attached, enough to re-create it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QdiscSpec {
    /// The qdisc kind, e.g. `netem`, `tbf`, `htb`.
    pub kind: String,
    /// The qdisc handle (major in the high 16 bits), e.g. 0x80010000 for `8001:`.
    pub handle: u32,
    /// The parent handle; 0xffffffff is the root.
    pub parent: u32,
    /// TCA_OPTIONS exactly as the kernel dumped them, in hex.
    pub options: String,
}

impl QdiscSpec {
    /// The raw option bytes (empty when the hex is malformed, which only a hand-edited
    /// plan or journal can cause; the kernel then refuses the re-creation).
    pub fn option_bytes(&self) -> Vec<u8> {
        from_hex(&self.options).unwrap_or_default()
    }

    /// The stable text that reads of this qdisc are compared with.
    /// [`QdiscSpec::canonical`] for people: without the raw option bytes when a
    /// summary of them (`limit 1000 loss 30%`) says what they are.
    pub fn short(&self) -> String {
        let canonical = self.canonical();
        let summarized = !summary(&self.kind, &self.option_bytes()).is_empty();
        match canonical.find(" options ") {
            Some(i) if summarized => canonical[..i].to_owned(),
            _ => canonical,
        }
    }

    pub fn canonical(&self) -> String {
        let bytes = self.option_bytes();
        let mut out = format!(
            "{} handle {} parent {}",
            self.kind,
            format_handle(self.handle),
            format_parent(self.parent)
        );
        let summary = summary(&self.kind, &bytes);
        if !summary.is_empty() {
            out.push(' ');
            out.push_str(&summary);
        }
        out.push_str(" options ");
        let masked = mask_counters(&self.kind, &bytes);
        if masked.is_empty() {
            out.push_str("(empty)");
        } else {
            out.push_str(&to_hex(&masked));
        }
        out
    }
}

/// `8001:` as tc prints handles.
pub fn format_handle(handle: u32) -> String {
    let (major, minor) = (handle >> 16, handle & 0xFFFF);
    if minor == 0 {
        format!("{major:x}:")
    } else {
        format!("{major:x}:{minor:x}")
    }
}

pub fn format_parent(parent: u32) -> String {
    if parent == TC_H_ROOT {
        "root".to_owned()
    } else {
        format_handle(parent)
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A short description of the options, for the kinds tune understands.
pub fn summary(kind: &str, options: &[u8]) -> String {
    match kind {
        "netem" => {
            parse_netem(options).map_or_else(|e| format!("(unparsed: {e})"), |n| n.describe())
        }
        _ => String::new(),
    }
}

/// The options with counters zeroed, so the canonical text does not change with
/// traffic. htb dumps `struct tc_htb_glob` (version, rate2quantum, defcls, debug,
/// direct_pkts) as attribute TCA_HTB_INIT; `direct_pkts` counts packets.
pub fn mask_counters(kind: &str, options: &[u8]) -> Vec<u8> {
    let mut out = options.to_vec();
    if kind == "htb" {
        const TCA_HTB_INIT: u16 = 2;
        let spans: Vec<_> = nlattr::spans(&out).map_while(Result::ok).collect();
        for (kind, value) in spans {
            if kind == TCA_HTB_INIT && value.len() >= 20 {
                out[value.start + 16..value.start + 20].fill(0);
            }
        }
    }
    out
}

/// The option bytes to send when re-creating a qdisc of this kind from what the
/// kernel dumped. Almost always the same bytes; htb dumps `tc_htb_glob.version` as
/// the full HTB_VER (0x30011) but its init accepts only the major version (3).
pub fn creation_options(kind: &str, dumped: &[u8]) -> Vec<u8> {
    let mut out = dumped.to_vec();
    if kind == "htb" {
        const TCA_HTB_INIT: u16 = 2;
        let spans: Vec<_> = nlattr::spans(&out).map_while(Result::ok).collect();
        for (kind, value) in spans {
            if kind == TCA_HTB_INIT
                && let Some(version) = u32_at(&out, value.start)
                && version > 0xFFFF
            {
                out[value.start..value.start + 4].copy_from_slice(&(version >> 16).to_ne_bytes());
            }
        }
    }
    out
}

/// The options of a netem qdisc, in the units people use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetemOptions {
    /// Queue limit, in packets.
    pub limit: u32,
    /// Random loss probability, percent.
    pub loss_percent: f64,
    /// Whether a loss model (Gilbert-Elliott or 4-state) replaces random loss.
    #[serde(default)]
    pub loss_model: bool,
    /// Added delay, microseconds.
    pub delay_us: f64,
    /// Delay jitter, microseconds.
    pub jitter_us: f64,
    /// Duplication probability, percent.
    pub duplicate_percent: f64,
    /// Corruption probability, percent.
    pub corrupt_percent: f64,
    /// Reordering probability, percent.
    pub reorder_percent: f64,
    /// Re-ordering gap (every Nth packet is sent at once).
    pub gap: u32,
    /// Rate limit in bytes per second, when one is set.
    #[serde(default)]
    pub rate_bytes_per_sec: Option<u64>,
}

const NETEM_QOPT_LEN: usize = 24;
const TCA_NETEM_CORRUPT: u16 = 4;
const TCA_NETEM_REORDER: u16 = 3;
const TCA_NETEM_LOSS: u16 = 5;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;

/// The kernel's probabilities are u32 fractions of 2^32 - 1.
fn percent(p: u32) -> f64 {
    (f64::from(p) / f64::from(u32::MAX) * 100.0 * 1e6).round() / 1e6
}

/// Parses TCA_OPTIONS of a netem qdisc: `struct tc_netem_qopt { latency, limit,
/// loss, gap, duplicate, jitter }` (u32 each; latency and jitter in 64 ns scheduler
/// ticks), then attributes. LATENCY64/JITTER64 (nanoseconds) override the tick fields.
pub fn parse_netem(bytes: &[u8]) -> Result<NetemOptions, String> {
    if bytes.len() < NETEM_QOPT_LEN {
        return Err(format!(
            "netem options are {} bytes, struct tc_netem_qopt needs {NETEM_QOPT_LEN}",
            bytes.len()
        ));
    }
    let field = |i: usize| u32_at(bytes, i * 4).unwrap_or(0);
    let ticks_to_us = |t: u32| f64::from(t) * 64.0 / 1000.0;
    let mut n = NetemOptions {
        delay_us: ticks_to_us(field(0)),
        limit: field(1),
        loss_percent: percent(field(2)),
        gap: field(3),
        duplicate_percent: percent(field(4)),
        jitter_us: ticks_to_us(field(5)),
        ..NetemOptions::default()
    };
    // A malformed attribute ends the walk: the fields read so far stand.
    for (kind, value) in nlattr::attributes(&bytes[NETEM_QOPT_LEN..]).map_while(Result::ok) {
        match kind {
            TCA_NETEM_LATENCY64 => {
                if let Some(ns) = u64_at(value, 0) {
                    n.delay_us = (ns as i64) as f64 / 1000.0;
                }
            }
            TCA_NETEM_JITTER64 => {
                if let Some(ns) = u64_at(value, 0) {
                    n.jitter_us = (ns as i64) as f64 / 1000.0;
                }
            }
            TCA_NETEM_REORDER => n.reorder_percent = percent(u32_at(value, 0).unwrap_or(0)),
            TCA_NETEM_CORRUPT => n.corrupt_percent = percent(u32_at(value, 0).unwrap_or(0)),
            TCA_NETEM_LOSS => n.loss_model = !value.is_empty(),
            TCA_NETEM_RATE => {
                let rate = u32_at(value, 0).unwrap_or(0);
                if rate > 0 && n.rate_bytes_per_sec.is_none() {
                    n.rate_bytes_per_sec = Some(u64::from(rate));
                }
            }
            TCA_NETEM_RATE64 => n.rate_bytes_per_sec = u64_at(value, 0),
            _ => {}
        }
    }
    Ok(n)
}

fn fmt_num(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn fmt_time(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{}s", fmt_num(us / 1_000_000.0))
    } else if us >= 1000.0 {
        format!("{}ms", fmt_num(us / 1000.0))
    } else {
        format!("{}us", fmt_num(us))
    }
}

impl NetemOptions {
    /// `limit 1000 loss 30% delay 100ms` in tc's words, impairments only when set.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("limit {}", self.limit)];
        if self.loss_model {
            parts.push("loss model".to_owned());
        }
        if self.loss_percent > 0.0 {
            parts.push(format!("loss {}%", fmt_num(self.loss_percent)));
        }
        if self.delay_us > 0.0 {
            let mut d = format!("delay {}", fmt_time(self.delay_us));
            if self.jitter_us > 0.0 {
                d.push_str(&format!(" {}", fmt_time(self.jitter_us)));
            }
            parts.push(d);
        }
        if self.duplicate_percent > 0.0 {
            parts.push(format!("duplicate {}%", fmt_num(self.duplicate_percent)));
        }
        if self.corrupt_percent > 0.0 {
            parts.push(format!("corrupt {}%", fmt_num(self.corrupt_percent)));
        }
        if self.reorder_percent > 0.0 {
            parts.push(format!("reorder {}%", fmt_num(self.reorder_percent)));
        }
        if self.gap > 0 {
            parts.push(format!("gap {}", self.gap));
        }
        if let Some(rate) = self.rate_bytes_per_sec {
            parts.push(format!("rate {}bit", rate.saturating_mul(8)));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = (4 + value.len()) as u16;
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    fn prob(pct: f64) -> u32 {
        (pct / 100.0 * f64::from(u32::MAX)).round() as u32
    }

    /// What `tc qdisc add dev X root netem limit 1000 loss 30% delay 100ms 10ms
    /// duplicate 1% corrupt 0.5% reorder 25%` makes the kernel dump (netem_dump):
    /// the qopt with tick-valued latency/jitter, then REORDER, CORRUPT, LATENCY64,
    /// JITTER64 and, on recent kernels, PRNG_SEED.
    fn kernel_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        for v in [
            100_000_000u32 / 64,
            1000,
            prob(30.0),
            0,
            prob(1.0),
            10_000_000 / 64,
        ] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        let mut reorder = prob(25.0).to_ne_bytes().to_vec();
        reorder.extend_from_slice(&0u32.to_ne_bytes());
        b.extend(nla(TCA_NETEM_REORDER, &reorder));
        let mut corrupt = prob(0.5).to_ne_bytes().to_vec();
        corrupt.extend_from_slice(&0u32.to_ne_bytes());
        b.extend(nla(TCA_NETEM_CORRUPT, &corrupt));
        b.extend(nla(TCA_NETEM_LATENCY64, &100_000_000i64.to_ne_bytes()));
        b.extend(nla(TCA_NETEM_JITTER64, &10_000_000i64.to_ne_bytes()));
        b.extend(nla(14, &0x1234_5678_9abc_def0u64.to_ne_bytes()));
        b
    }

    #[test]
    fn a_huge_rate_is_shown_saturated_not_overflowed() {
        // Found by fuzz/ (regression input fuzz/regressions/netem/): rate * 8 overflowed.
        let n = NetemOptions {
            rate_bytes_per_sec: Some(u64::MAX),
            ..parse_netem(&kernel_bytes()).unwrap()
        };
        assert!(n.describe().contains(&format!("rate {}bit", u64::MAX)));
    }

    #[test]
    fn parses_netem_as_the_kernel_dumps_it() {
        let n = parse_netem(&kernel_bytes()).unwrap();
        assert_eq!(n.limit, 1000);
        assert_eq!(n.loss_percent, 30.0);
        assert_eq!(n.delay_us, 100_000.0);
        assert_eq!(n.jitter_us, 10_000.0);
        assert_eq!(n.duplicate_percent, 1.0);
        assert_eq!(n.corrupt_percent, 0.5);
        assert_eq!(n.reorder_percent, 25.0);
        assert_eq!(n.rate_bytes_per_sec, None);
        assert_eq!(
            n.describe(),
            "limit 1000 loss 30% delay 100ms 10ms duplicate 1% corrupt 0.5% reorder 25%"
        );
    }

    #[test]
    fn netem_ticks_are_used_without_64_bit_attributes_and_rate64_wins() {
        let mut b = Vec::new();
        for v in [50_000u32 / 64 * 1000, 500, 0, 0, 0, 0] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        let mut rate = 1000u32.to_ne_bytes().to_vec();
        rate.extend_from_slice(&[0; 12]);
        b.extend(nla(TCA_NETEM_RATE, &rate));
        b.extend(nla(TCA_NETEM_RATE64, &10_000_000_000u64.to_ne_bytes()));
        let n = parse_netem(&b).unwrap();
        assert_eq!(n.limit, 500);
        assert_eq!(n.delay_us, 49_984.0);
        assert_eq!(n.loss_percent, 0.0);
        assert_eq!(n.rate_bytes_per_sec, Some(10_000_000_000));
        assert_eq!(n.describe(), "limit 500 delay 49.984ms rate 80000000000bit");
    }

    #[test]
    fn short_or_truncated_netem_options_do_not_panic() {
        assert!(parse_netem(&[0; 10]).is_err());
        let mut b = kernel_bytes();
        b.truncate(NETEM_QOPT_LEN + 6);
        let n = parse_netem(&b).unwrap();
        assert_eq!(n.loss_percent, 30.0);
        assert_eq!(n.reorder_percent, 0.0);
        let mut bad_len = vec![0u8; NETEM_QOPT_LEN];
        bad_len.extend_from_slice(&[0xff, 0xff, 10, 0]);
        assert!(parse_netem(&bad_len).is_ok());
    }

    #[test]
    fn canonical_text_names_kind_handle_parent_and_options() {
        let spec = QdiscSpec {
            kind: "netem".into(),
            handle: 0x800d_0000,
            parent: TC_H_ROOT,
            options: to_hex(&kernel_bytes()),
        };
        let text = spec.canonical();
        assert!(
            text.starts_with("netem handle 800d: parent root limit 1000 loss 30% delay 100ms"),
            "{text}"
        );
        assert!(text.ends_with(&to_hex(&kernel_bytes())), "{text}");
        assert_eq!(spec.option_bytes(), kernel_bytes());
    }

    #[test]
    fn htb_direct_packet_counter_is_not_drift() {
        let glob = |direct: u32| {
            let mut v = Vec::new();
            for x in [0x0003_0011u32, 10, 0x10, 0, direct] {
                v.extend_from_slice(&x.to_ne_bytes());
            }
            let mut b = nla(2, &v);
            b.extend(nla(4, &1000u32.to_ne_bytes()));
            b
        };
        let spec = |direct| QdiscSpec {
            kind: "htb".into(),
            handle: 0x0001_0000,
            parent: TC_H_ROOT,
            options: to_hex(&glob(direct)),
        };
        assert_eq!(spec(0).canonical(), spec(12345).canonical());
        assert_ne!(spec(0).options, spec(12345).options);
        let sent = creation_options("htb", &glob(7));
        assert_eq!(
            u32_at(&sent, 4),
            Some(3),
            "htb init wants the major version"
        );
        assert_eq!(sent[8..], glob(7)[8..]);
        assert_eq!(creation_options("tbf", &glob(7)), glob(7));
        assert!(
            spec(0)
                .canonical()
                .starts_with("htb handle 1: parent root options ")
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(format_handle(0x0001_0002), "1:2");
        assert_eq!(format_parent(TC_H_ROOT), "root");
    }
}
