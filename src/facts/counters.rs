//! Counters of /proc/net/netstat and /proc/net/snmp.
//!
//! Both files hold pairs of lines: a header (`TcpExt: SyncookiesSent ListenOverflows ...`)
//! and the values (`TcpExt: 0 12 ...`). They are read through /proc/thread-self/net so
//! that a thread that entered another network namespace sees that namespace's counters
//! (/proc/self/net follows the thread-group leader instead).

use std::collections::{BTreeMap, BTreeSet};

use super::{Fact, describe_io_error};

const COUNTER_FILES: [&str; 2] = [
    "/proc/thread-self/net/netstat",
    "/proc/thread-self/net/snmp",
];

/// Reads the requested `Section.Name` counters.
pub fn read_counters(names: &BTreeSet<String>) -> BTreeMap<String, Fact<u64>> {
    let mut all = BTreeMap::new();
    let mut errors = Vec::new();
    for file in COUNTER_FILES {
        match std::fs::read_to_string(file) {
            Ok(text) => all.extend(parse_counter_file(&text)),
            Err(e) => errors.push(format!("{file}: {}", describe_io_error(&e))),
        }
    }
    names
        .iter()
        .map(|name| {
            let fact = match all.get(name) {
                Some(v) => Fact::Value(*v),
                None if errors.is_empty() => Fact::Unknown(format!(
                    "no counter {name} in /proc/net/netstat or /proc/net/snmp"
                )),
                None => Fact::Unknown(errors.join("; ")),
            };
            (name.clone(), fact)
        })
        .collect()
}

/// Parses header/value line pairs into `Section.Name → value`. Lines that do not pair
/// up, and values that are not unsigned numbers (snmp's `Tcp: ... MaxConn -1`), are
/// skipped.
pub fn parse_counter_file(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [header, values] = pair else { continue };
        let (Some((section, names)), Some((section2, nums))) =
            (header.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if section != section2 {
            continue;
        }
        for (name, num) in names.split_whitespace().zip(nums.split_whitespace()) {
            if let Ok(v) = num.parse::<u64>() {
                out.insert(format!("{section}.{name}"), v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netstat_pairs() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 17 17\nIpExt: InNoRoutes\nIpExt: 3\n";
        let c = parse_counter_file(text);
        assert_eq!(c.get("TcpExt.ListenOverflows"), Some(&17));
        assert_eq!(c.get("IpExt.InNoRoutes"), Some(&3));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn skips_negative_and_unpaired_values() {
        let text = "Tcp: RtoAlgorithm MaxConn ActiveOpens\nTcp: 1 -1 5\nUdp: InDatagrams\n";
        let c = parse_counter_file(text);
        assert_eq!(c.get("Tcp.MaxConn"), None);
        assert_eq!(c.get("Tcp.ActiveOpens"), Some(&5));
        assert_eq!(c.get("Udp.InDatagrams"), None);
    }
}
