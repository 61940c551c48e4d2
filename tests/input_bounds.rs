//! Input bounds: deeply nested YAML is refused before serde_yaml sees it, with a
//! `file:line:column` error, quickly (the bound is checked in one linear pass). The
//! time limits are generous enough for a loaded 2-core CI machine; before the bound,
//! 520k `[` took 473 s and 100k levels 27 s.

mod support;

use std::time::{Duration, Instant};

use support::text;

/// Runs `tune validate` on `yaml`; it must exit 1 within `limit` with a located
/// nesting error.
fn refused_quickly(name: &str, yaml: &str, limit: Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{name}.yml"));
    std::fs::write(&path, yaml).expect("write");
    for command in [&["validate"][..], &["plan", "-p"][..]] {
        let started = Instant::now();
        let out = support::tune(&dir.path().join("state"))
            .args(command)
            .arg(&path)
            .output()
            .expect("run tune");
        let took = started.elapsed();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {t}");
        let located = format!("{}:", path.display());
        assert!(t.contains(&located), "{name}: {t}");
        assert!(
            t.contains("a playbook may nest at most 64 levels"),
            "{name}: {t}"
        );
        assert!(took < limit, "{name}: {command:?} took {took:?}");
        eprintln!("{name}: {command:?} refused in {took:?}");
    }
}

#[test]
fn deep_flow_nesting_is_refused_fast() {
    // 520k `[` is about 1 MiB, the largest playbook read.
    let yaml = format!("name: x\ndescription: {}", "[".repeat(520_000));
    assert!(yaml.len() <= 1024 * 1024);
    refused_quickly("brackets", &yaml, Duration::from_secs(2));
    let yaml = format!("name: x\nrules: {}", "{a: ".repeat(100_000));
    refused_quickly("braces", &yaml, Duration::from_secs(2));
}

#[test]
fn deep_block_nesting_is_refused_fast() {
    // 100k levels of block sequences on one line, and as many mapping levels as fit.
    let yaml = format!("name: x\nrules:\n{}x\n", "- ".repeat(100_000));
    refused_quickly("dashes", &yaml, Duration::from_secs(2));
    let mut yaml = String::from("name: x\nrules:\n");
    for level in 1..1200 {
        yaml.push_str(&" ".repeat(level));
        yaml.push_str("k:\n");
    }
    assert!(yaml.len() <= 1024 * 1024);
    refused_quickly("indent", &yaml, Duration::from_secs(2));
}

#[test]
fn nesting_at_the_limit_is_still_parsed() {
    // 60 levels of flow nesting is not refused for its depth (it is not a playbook).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sixty.yml");
    let yaml = format!("name: x\nfoo: {}{}\n", "[".repeat(60), "]".repeat(60));
    std::fs::write(&path, yaml).expect("write");
    let out = support::tune(&dir.path().join("state"))
        .arg("validate")
        .arg(&path)
        .output()
        .expect("run tune");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!t.contains("may nest at most"), "{t}");
    assert!(t.contains("unknown field `foo`"), "{t}");
}
