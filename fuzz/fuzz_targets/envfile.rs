//! The `KEY=VALUE` parser and editor, with the round-trip property: after `set` of a
//! key to a value succeeds, `get` of that key returns exactly that value, and every
//! other key keeps its value.
//!
//! Input: `CONTENT \0 KEY \0 VALUE`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tune::domain::envfile;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let content = parts.next().unwrap_or("");
    let key = parts.next().unwrap_or("KEY");
    let value = parts.next().unwrap_or("");
    let _ = envfile::get(content, key);
    let _ = envfile::unified_diff("/f", Some(content), None);
    let Ok(after) = envfile::set(content, key, value) else {
        return;
    };
    assert_eq!(
        envfile::get(&after, key),
        Ok(Some(value.to_owned())),
        "set then get of {key:?} = {value:?} in {content:?} gave {after:?}"
    );
    let _ = envfile::unified_diff("/f", Some(content), Some(&after));
});
