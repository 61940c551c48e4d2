//! Plan files as JSON: any input is parsed or refused, a parsed plan serializes and
//! parses again, and its resources, labels and times can be shown.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tune::plan::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = serde_json::from_slice::<Plan>(data) else {
        return;
    };
    let text = serde_json::to_string(&plan).expect("a parsed plan serializes");
    serde_json::from_str::<Plan>(&text).expect("a serialized plan parses");
    let _ = tune::domain::time::rfc3339(plan.created_at);
    for change in &plan.changes {
        let m = &change.mutation;
        let _ = (
            m.resource(),
            m.before_label(),
            m.after_label(),
            m.before(),
            m.after(),
        );
    }
});
