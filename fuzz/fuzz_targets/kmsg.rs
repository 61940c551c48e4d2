//! The kernel-log parsers: /dev/kmsg records and syslog(2) buffer lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tune::facts::kmsg;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = kmsg::parse_record(&text);
    if let Some(lines) = kmsg::parse_syslog(&text, 1.7e9) {
        let _ = tune::facts::oom::parse(&lines);
    }
});
