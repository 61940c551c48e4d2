//! The playbook loader: YAML text through the nesting bound, serde and every check.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pb) = tune::playbook::parse("fuzz.yml", text) {
        let _ = tune::playbook::check_set(&[pb], &BTreeMap::new());
    }
});
