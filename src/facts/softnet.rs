//! /proc/net/softnet_stat: the receive-side counters of each CPU's softnet data.
//!
//! One row per online CPU, space-separated hexadecimal columns. Column 1 is packets
//! processed, column 2 packets *dropped* because the CPU's input backlog already held
//! net.core.netdev_max_backlog packets, column 3 *time_squeeze*: times the receive
//! softirq stopped with work left because it used up net.core.netdev_budget packets or
//! netdev_budget_usecs. Since Linux 5.10 column 13 is the CPU's number (rows skip
//! offline CPUs); before, the row's position is taken as the CPU.
//!
//! The file is host-wide: every network namespace sees the same rows. The kernel keeps
//! and prints each counter as 32 bits, so they wrap at 2^32. The conditions compare
//! growth over a sampling window ([`super::cpu_tables`]), never since-boot values.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Fact, describe_io_error};

const SOFTNET_STAT: &str = "/proc/net/softnet_stat";

/// The counters of one CPU, as read (since boot, wrapping at 2^32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SoftnetCpu {
    pub cpu: u32,
    pub processed: u64,
    pub dropped: u64,
    pub time_squeeze: u64,
}

impl SoftnetCpu {
    /// A column by the name the playbooks use: `processed`, `dropped`, `time_squeeze`.
    pub fn column(&self, name: &str) -> Option<u64> {
        match name {
            "processed" => Some(self.processed),
            "dropped" => Some(self.dropped),
            "time_squeeze" => Some(self.time_squeeze),
            _ => None,
        }
    }
}

/// A column summed over every CPU (`None`: no such column).
pub fn total(rows: &[SoftnetCpu], column: &str) -> Option<u64> {
    rows.iter().map(|r| r.column(column)).sum()
}

/// Reads and parses the file.
pub fn read() -> Fact<Vec<SoftnetCpu>> {
    match super::procfs::read_text(SOFTNET_STAT) {
        Ok(text) => match parse(&text) {
            Ok(rows) => Fact::Value(rows),
            Err(e) => Fact::Unknown(format!("{SOFTNET_STAT}: {e}")),
        },
        Err(e) => Fact::Unknown(format!("{SOFTNET_STAT}: {}", describe_io_error(&e))),
    }
}

/// Parses the rows; a row with fewer than three columns or a column that is not hex
/// is an error naming the line.
pub fn parse(text: &str) -> Result<Vec<SoftnetCpu>, String> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cols = line
            .split_whitespace()
            .map(|c| u64::from_str_radix(c, 16))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| format!("line {}: {e}", index + 1))?;
        let [processed, dropped, time_squeeze, ..] = cols[..] else {
            return Err(format!("line {}: fewer than 3 columns", index + 1));
        };
        let cpu = cols
            .get(12)
            .copied()
            .unwrap_or(index as u64)
            .try_into()
            .map_err(|_| format!("line {}: CPU number out of range", index + 1))?;
        rows.push(SoftnetCpu {
            cpu,
            processed,
            dropped,
            time_squeeze,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_with_cpu_column() {
        let text = "0000af7c 00000010 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n\
                    000185c9 00000000 0000001f 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000000 00000000\n";
        let rows = parse(text).expect("parse");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].cpu, rows[0].dropped, rows[0].time_squeeze),
            (0, 16, 2)
        );
        assert_eq!(
            (rows[1].cpu, rows[1].processed, rows[1].time_squeeze),
            (3, 0x185c9, 31)
        );
    }

    #[test]
    fn columns_sum_over_cpus() {
        let rows =
            parse("00000001 00000002 00000003\n00000004 00000005 00000006\n").expect("parse");
        assert_eq!(total(&rows, "dropped"), Some(7));
        assert_eq!(total(&rows, "time_squeeze"), Some(9));
        assert_eq!(total(&rows, "nope"), None);
    }

    #[test]
    fn old_kernels_number_cpus_by_row() {
        let rows =
            parse("00000001 00000002 00000003\n00000004 00000005 00000006\n").expect("parse");
        assert_eq!(rows[1].cpu, 1);
        assert_eq!(rows[1].dropped, 5);
    }

    #[test]
    fn bad_rows_are_errors() {
        assert!(
            parse("00000001 zz 00000003\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            parse("00000001 00000002\n")
                .unwrap_err()
                .contains("fewer than 3")
        );
    }

    #[test]
    fn this_host_parses() {
        if let Fact::Unknown(why) = read() {
            assert!(!why.contains("line"), "{why}");
        }
    }
}
