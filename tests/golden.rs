//! Golden cases for detection and planning: one folder per case under tests/golden,
//! each with the facts the engine sees (`facts.json`), optional extra arguments
//! (`args`) and playbooks (`playbooks/`, else the bundled ones), and the expected
//! text and JSON plans. The binary runs offline with `plan --facts`, as a user would
//! replay a snapshot. `TUNE_BLESS=1 cargo test --test golden` rewrites the expectations.

mod support;

use std::path::Path;

fn run_case(dir: &Path) -> Result<(), String> {
    let mut args: Vec<String> = vec!["plan".into(), "--detailed-exitcode".into()];
    args.push("--facts".into());
    args.push(dir.join("facts.json").display().to_string());
    if dir.join("playbooks").is_dir() {
        args.push("-p".into());
        args.push(dir.join("playbooks").display().to_string());
    }
    if let Ok(extra) = std::fs::read_to_string(dir.join("args")) {
        args.extend(extra.split_whitespace().map(str::to_owned));
    }
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let run = |format: &str| {
        let out = support::tune(state.path())
            .args(&args)
            .args(["--format", format])
            .output()
            .expect("run tune");
        let text = support::text(&out).replace(&dir.display().to_string(), "CASE");
        let text = without_made_from(&text);
        format!("exit: {}\n{text}", out.status.code().unwrap_or(-1))
    };
    let mut failures = Vec::new();
    for (format, file) in [("text", "expected.txt"), ("json", "expected.json")] {
        let got = run(format);
        let path = dir.join(file);
        if std::env::var("TUNE_BLESS").is_ok() {
            std::fs::write(&path, &got).map_err(|e| e.to_string())?;
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}\n--- got\n{got}",
                path.display()
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// The plan without its last field, `made_from` (the playbooks' text and digests and the
/// namespace's inode): they are this host's and the bundled files', not the case's.
/// `tests/plan_trust.rs` checks that field.
fn without_made_from(text: &str) -> String {
    let Some(start) = text.find(",\n  \"made_from\": ") else {
        return text.to_owned();
    };
    match text[start..].find("\n}\n") {
        Some(len) => format!("{}{}", &text[..start], &text[start + len..]),
        None => text.to_owned(),
    }
}

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/golden")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("facts.json").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "golden cases went missing: {}",
        cases.len()
    );
    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
