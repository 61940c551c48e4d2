//! /proc/net/stat/nf_conntrack: connection tracking's per-CPU event counters.
//!
//! A header line names the columns (`entries clashres found new invalid ignore delete
//! chainlength insert insert_failed drop early_drop icmp_error expect_new ...`; the set
//! depends on the kernel), then one row of hexadecimal values per possible CPU, in CPU
//! order. `drop` counts packets dropped because a new entry could not be made (the
//! table was full and nothing could be evicted), `early_drop` entries evicted to make
//! room, `insert_failed` entries that lost an insertion race or hit the hash chain
//! limit. The counters belong to the network namespace reading the file (read through
//! /proc/thread-self/net, as the counters of /proc/net/netstat are); `entries` is the
//! namespace's whole table, repeated on every row. Each counter is an `unsigned int`
//! (wraps at 2^32); the conditions compare growth over a sampling window
//! ([`super::cpu_tables`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Fact, describe_io_error};

const CONNTRACK_STAT: &str = "/proc/thread-self/net/stat/nf_conntrack";

/// The counters of one CPU, by column name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CpuCounters {
    pub cpu: u32,
    pub counters: BTreeMap<String, u64>,
}

/// A column summed over every CPU (`None`: no such column on some row).
pub fn total(rows: &[CpuCounters], column: &str) -> Option<u64> {
    rows.iter().map(|r| r.counters.get(column).copied()).sum()
}

/// Reads and parses the file; absent when the nf_conntrack module is not loaded.
pub fn read() -> Fact<Vec<CpuCounters>> {
    match super::procfs::read_text(CONNTRACK_STAT) {
        Ok(text) => match parse(&text) {
            Ok(rows) => Fact::Value(rows),
            Err(e) => Fact::Unknown(format!("/proc/net/stat/nf_conntrack: {e}")),
        },
        Err(e) => Fact::Unknown(format!(
            "/proc/net/stat/nf_conntrack: {} (is the nf_conntrack module loaded?)",
            describe_io_error(&e)
        )),
    }
}

/// Parses the header and the rows; a row whose width differs from the header's or a
/// value that is not hex is an error naming the line.
pub fn parse(text: &str) -> Result<Vec<CpuCounters>, String> {
    let mut lines = text.lines();
    let names: Vec<&str> = lines
        .next()
        .ok_or("empty file")?
        .split_whitespace()
        .collect();
    if names.is_empty() {
        return Err("no header line".into());
    }
    let mut rows = Vec::new();
    for (index, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = index + 2;
        let values = line
            .split_whitespace()
            .map(|c| u64::from_str_radix(c, 16))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| format!("line {at}: {e}"))?;
        if values.len() != names.len() {
            return Err(format!(
                "line {at}: {} values for {} columns",
                values.len(),
                names.len()
            ));
        }
        rows.push(CpuCounters {
            cpu: u32::try_from(rows.len()).map_err(|_| format!("line {at}: too many rows"))?,
            counters: names.iter().map(|n| (*n).to_owned()).zip(values).collect(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
        0000001f  00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000002 0000000a 00000000 00000000  00000000 00000000 00000000 00000000\n\
        0000001f  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000005 00000001 00000000  00000000 00000000 00000000 00000000\n";

    #[test]
    fn parses_header_and_rows() {
        let rows = parse(TEXT).expect("parse");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].counters["drop"], 10);
        assert_eq!(rows[0].counters["insert_failed"], 2);
        assert_eq!((rows[1].cpu, rows[1].counters["early_drop"]), (1, 1));
        assert_eq!(rows[1].counters["entries"], 31);
    }

    #[test]
    fn columns_sum_over_cpus() {
        let rows = parse(TEXT).expect("parse");
        assert_eq!(total(&rows, "drop"), Some(15));
        assert_eq!(total(&rows, "no_such"), None);
    }

    #[test]
    fn bad_rows_are_errors() {
        assert!(parse("").is_err());
        assert!(parse("a b\n1 zz\n").unwrap_err().contains("line 2"));
        assert!(parse("a b\n1\n").unwrap_err().contains("1 values for 2"));
    }

    #[test]
    fn this_host_parses() {
        if let Fact::Unknown(why) = read() {
            assert!(!why.contains("line"), "{why}");
        }
    }
}
