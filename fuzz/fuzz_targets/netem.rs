//! The netem option parser (struct tc_netem_qopt then attributes) and the other
//! functions that read raw TCA_OPTIONS bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tune::domain::qdisc;

fuzz_target!(|data: &[u8]| {
    if let Ok(options) = qdisc::parse_netem(data) {
        let _ = options.describe();
    }
    for kind in ["netem", "tbf", "htb", "fq_codel"] {
        let _ = qdisc::summary(kind, data);
        let _ = qdisc::mask_counters(kind, data);
        let _ = qdisc::creation_options(kind, data);
    }
    let hex = qdisc::to_hex(data);
    assert_eq!(
        qdisc::from_hex(&hex).as_deref(),
        Some(data),
        "hex round trip"
    );
});
