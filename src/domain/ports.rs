//! Port lists as `net.ipv4.ip_local_reserved_ports` writes them: comma-separated
//! ports and inclusive ranges (`8080,9000-9100`).
//!
//! The kernel stores the list as a bitmap and prints it back canonically (ascending,
//! adjacent ports merged into ranges, an empty list as an empty line), so
//! [`format()`] produces exactly that: what apply writes is what it reads back.

use std::collections::BTreeSet;

/// The ports of a list; `Err` names the first part that is not a port or range.
pub fn parse(list: &str) -> Result<BTreeSet<u16>, String> {
    let mut ports = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let port = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("{part:?} is not a port or a `low-high` range"))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (port(lo)?, port(hi)?),
            None => (port(part)?, port(part)?),
        };
        if lo > hi {
            return Err(format!("{part:?} is a range from high to low"));
        }
        ports.extend(lo..=hi);
    }
    Ok(ports)
}

/// The canonical list of a set of ports, as the kernel prints it.
pub fn format(ports: &BTreeSet<u16>) -> String {
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for &p in ports {
        match runs.last_mut() {
            Some((_, hi)) if u32::from(*hi) + 1 == u32::from(p) => *hi = p,
            _ => runs.push((p, p)),
        }
    }
    runs.iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_print_back_canonically() {
        let ports = parse("9000-9002, 8080,8081,22").unwrap();
        assert_eq!(format(&ports), "22,8080-8081,9000-9002");
        assert_eq!(format(&parse("").unwrap()), "");
        assert_eq!(format(&parse("65535").unwrap()), "65535");
        assert!(parse("70000").is_err());
        assert!(parse("9-1").unwrap_err().contains("high to low"));
        assert!(parse("a-b").is_err());
    }
}
