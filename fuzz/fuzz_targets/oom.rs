//! The memcg OOM-kill parser, over kernel-log lines with arbitrary text and times.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tune::facts::LogLine;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<LogLine> = text
        .lines()
        .enumerate()
        .map(|(i, line)| LogLine {
            // Times from files can be anything: huge, negative, NaN.
            time: match i % 4 {
                0 => 1.7e9 + i as f64,
                1 => 1e300,
                2 => -1.0,
                _ => f64::NAN,
            },
            message: line.to_owned(),
        })
        .collect();
    for kill in tune::facts::oom::parse(&lines) {
        let _ = kill.describe();
    }
});
