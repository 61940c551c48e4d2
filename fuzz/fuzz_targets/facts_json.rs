//! Facts snapshots as JSON (`plan --facts FILE`): parsed or refused, and a parsed
//! snapshot serializes, parses again and can be planned against with the bundled
//! playbooks.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tune::facts::Facts;

fuzz_target!(|data: &[u8]| {
    let Ok(facts) = serde_json::from_slice::<Facts>(data) else {
        return;
    };
    let text = serde_json::to_string(&facts).expect("parsed facts serialize");
    serde_json::from_str::<Facts>(&text).expect("serialized facts parse");
    let Ok(playbooks) = tune::playbook::load_bundled() else {
        return;
    };
    let (vars, _) = tune::playbook::check_set(&playbooks, &BTreeMap::new());
    let pairs: Vec<_> = playbooks
        .iter()
        .filter_map(|pb| vars.get(&pb.playbook.name).map(|v| (pb, v)))
        .collect();
    let plan = tune::plan::plan_from_facts(&pairs, &facts);
    let _ = serde_json::to_string(&plan);
});
