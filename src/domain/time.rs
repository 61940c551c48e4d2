//! Times read from files (facts snapshots, plans, journals) shown as RFC 3339.
//!
//! Those files are input: a time may be NaN, negative or in the year 30000, and
//! humantime panics on a `SystemTime` past 9999-12-31 (and `UNIX_EPOCH + d` panics on
//! overflow). So a time is checked before it becomes a `SystemTime`, and one out of
//! range is shown as the number it is.

/// 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
pub const MAX_UNIX_TIME: f64 = 253_402_300_799.0;

/// `t` (seconds since the Unix epoch) as `2026-12-01T19:05:13Z`, or the number with
/// "(not a valid time)" when it is not between 1970 and 9999.
pub fn rfc3339(t: f64) -> String {
    if !(0.0..=MAX_UNIX_TIME).contains(&t) {
        return format!("{t} (not a valid time)");
    }
    // In range, so the cast is exact to the second and the sum cannot overflow.
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_times_are_shown_not_panicked_on() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(MAX_UNIX_TIME), "9999-12-31T23:59:59Z");
        for bad in [1e12, 1e300, f64::INFINITY, f64::NAN, -1.0, f64::MAX] {
            assert!(rfc3339(bad).contains("not a valid time"), "{bad}");
        }
    }
}
