//! The committed schemas (`schemas/`) as real clients use them: yaml-language-server
//! over LSP (stdio, driven by `tests/lsp/client.py`) completes every condition and
//! flags broken playbooks, and ajv-cli compiles every schema in its default strict
//! mode and validates the bundled playbooks, the golden facts snapshots and plans.
//!
//! The npm tools live in `$TUNE_NODE_TOOLS` (default `target/node-tools`), where
//! `.ci/run` installs them (`npm install --prefix target/node-tools
//! yaml-language-server@1.25.0 ajv-cli@5.0.0`); with `CI=true` their absence fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{have, require};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn node_tools() -> PathBuf {
    std::env::var_os("TUNE_NODE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/node-tools"))
}

/// The path of an installed npm tool, or `None` (a skip, or a failure in CI).
fn tool(path: &str, what: &str) -> Option<PathBuf> {
    let path = node_tools().join("node_modules").join(path);
    let ok = require(have("node"), "the schema client tests need node")
        && require(
            path.exists(),
            &format!(
                "{what} is not installed in {} (run .ci/run, or npm install --prefix target/node-tools yaml-language-server@1.25.0 ajv-cli@5.0.0)",
                node_tools().display()
            ),
        );
    ok.then_some(path)
}

/// playbooks/*.yml, sorted.
fn bundled_playbooks() -> Vec<PathBuf> {
    let mut playbooks: Vec<PathBuf> = std::fs::read_dir(root().join("playbooks"))
        .expect("playbooks/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    playbooks.sort();
    playbooks
}

fn schema(name: &str) -> PathBuf {
    root().join("schemas").join(format!("{name}.schema.json"))
}

/// The condition keys the committed playbook schema declares (one `oneOf` branch each).
fn condition_keys() -> Vec<String> {
    let text = std::fs::read_to_string(schema("playbook")).expect("playbook schema");
    let schema: Value = serde_json::from_str(&text).expect("json");
    let keys: Vec<String> = schema["definitions"]["Condition"]["oneOf"]
        .as_array()
        .expect("Condition is a oneOf")
        .iter()
        .map(|branch| branch["required"][0].as_str().expect("key").to_owned())
        .collect();
    assert!(keys.len() >= 11, "{keys:?}");
    keys
}

/// A document for the LSP client: its name in the workspace, its text, and where to
/// ask for completion (0-based line and character), if anywhere.
type Document<'a> = (&'a str, String, Option<(u32, u32)>);

/// Runs the LSP client over the documents.
fn lsp(documents: &[Document]) -> Option<Value> {
    let server = tool(
        "yaml-language-server/bin/yaml-language-server",
        "yaml-language-server",
    )?;
    if !require(have("python3"), "the LSP client needs python3") {
        return None;
    }
    let requests: Vec<Value> = documents
        .iter()
        .map(|(name, text, at)| {
            serde_json::json!({
                "name": name,
                "text": text,
                "complete": at.map(|(l, c)| [l, c]),
            })
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("requests.json");
    std::fs::write(&file, serde_json::to_vec(&requests).expect("json")).expect("write");
    let out = Command::new("python3")
        .arg(root().join("tests/lsp/client.py"))
        .arg(&server)
        .arg(schema("playbook"))
        .arg(&file)
        .output()
        .expect("run the LSP client");
    assert!(
        out.status.success(),
        "LSP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("client output"))
}

fn labels(result: &Value) -> Vec<String> {
    result["completion"]
        .as_array()
        .expect("a completion list")
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// (line, message) of each diagnostic; lines 1-based as editors show them.
fn diagnostics(result: &Value) -> Vec<(u64, String)> {
    result["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap_or_default() + 1,
                d["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

const HEAD: &str = "name: broken\ndescription: \"Symptom: test.\"\nrules:\n  - id: r\n    description: d\n    detect:\n";

#[test]
fn yaml_language_server_completes_every_condition() {
    let at_detect = format!("{HEAD}      \n    fix: []\n");
    let in_all = format!("{HEAD}      all:\n        - \n");
    let in_any = format!("{HEAD}      any:\n        - \n    fix: []\n");
    let condition = "      sysctl: {key: a.b, below: 1}\n";
    let in_fix = format!("{HEAD}{condition}    fix:\n      - \n");
    let in_set_sysctl =
        format!("{HEAD}{condition}    fix:\n      - set_sysctl:\n          key: a.b\n          \n");
    let in_sysctl = format!("{HEAD}      sysctl:\n        key: a.b\n        \n");
    let Some(result) = lsp(&[
        ("playbooks/detect.yml", at_detect, Some((6, 6))),
        ("playbooks/all.yml", in_all, Some((7, 10))),
        ("playbooks/any.yml", in_any, Some((7, 10))),
        ("playbooks/fix.yml", in_fix, Some((8, 8))),
        ("playbooks/set_sysctl.yml", in_set_sysctl, Some((10, 10))),
        ("playbooks/sysctl.yml", in_sysctl, Some((8, 8))),
    ]) else {
        return;
    };
    // Fix actions, the four set modes, and the sysctl condition's own properties
    // (`ratio_of` was the property whose `default: null` broke completion).
    for (doc, want) in [
        (
            "playbooks/fix.yml",
            &["set_sysctl", "set_env", "set_mtu", "delete_root_qdisc"][..],
        ),
        (
            "playbooks/set_sysctl.yml",
            &["value", "at_least", "at_most", "widen_to"][..],
        ),
        (
            "playbooks/sysctl.yml",
            &[
                "measure",
                "ratio_of",
                "equals",
                "not_equals",
                "below",
                "above",
                "at_least",
                "at_most",
            ][..],
        ),
    ] {
        let got = labels(&result[doc]);
        assert!(
            want.iter().all(|w| got.iter().any(|g| g == w)),
            "{doc}: want {want:?}, got {got:?}"
        );
    }
    for doc in [
        "playbooks/detect.yml",
        "playbooks/all.yml",
        "playbooks/any.yml",
    ] {
        let got = labels(&result[doc]);
        let keys = condition_keys();
        let missing: Vec<&String> = keys.iter().filter(|k| !got.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "{doc}: {missing:?} not offered; got {got:?}"
        );
    }
}

#[test]
fn yaml_language_server_flags_broken_playbooks_and_accepts_bundled_ones() {
    let broken = |detect: &str, fix: &str| format!("{HEAD}{detect}    fix:\n{fix}");
    let mut docs: Vec<(String, String)> = vec![
        (
            "playbooks/duration.yml".into(),
            broken(
                "      kernel_log: {pattern: oops, within: one hour}\n",
                "      []\n",
            ),
        ),
        (
            "playbooks/two-modes.yml".into(),
            broken(
                "      sysctl: {key: net.core.somaxconn, below: 4096}\n",
                "      - set_sysctl: {key: net.core.somaxconn, value: 4096, at_least: 4096}\n",
            ),
        ),
        (
            "playbooks/no-mode.yml".into(),
            broken(
                "      sysctl: {key: net.core.somaxconn, below: 4096}\n",
                "      - set_sysctl: {key: net.core.somaxconn}\n",
            ),
        ),
        (
            "playbooks/string-number.yml".into(),
            broken(
                "      sysctl: {key: net.core.somaxconn, below: lots}\n",
                "      - set_mtu: {value: big}\n",
            ),
        ),
        (
            "playbooks/unknown-key.yml".into(),
            broken(
                "      sysctl: {key: net.core.somaxconn, below: 4096, bogus: 1}\n",
                "      []\n",
            ),
        ),
        (
            "playbooks/with-vars.yml".into(),
            broken(
                "      kernel_log: {pattern: oops, within: \"${window}\"}\n",
                "      - set_sysctl: {key: net.core.somaxconn, at_least: \"${n}\"}\n",
            ),
        ),
    ];
    let bundled = bundled_playbooks();
    assert!(bundled.len() >= 7);
    for path in &bundled {
        let name = format!(
            "playbooks/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        docs.push((name, std::fs::read_to_string(path).expect("read")));
    }
    let requests: Vec<Document> = docs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone(), None))
        .collect();
    let Some(result) = lsp(&requests) else {
        return;
    };
    let flagged = |doc: &str, line: u64, needle: &str| {
        let got = diagnostics(&result[doc]);
        assert!(
            got.iter().any(|(l, m)| *l == line && m.contains(needle)),
            "{doc}: expected a diagnostic on line {line} containing {needle:?}; got {got:?}"
        );
    };
    flagged("playbooks/duration.yml", 7, "pattern");
    flagged(
        "playbooks/two-modes.yml",
        9,
        "Matches multiple schemas when only one must validate",
    );
    flagged("playbooks/no-mode.yml", 9, "Missing property");
    flagged("playbooks/string-number.yml", 7, "Incorrect type");
    flagged("playbooks/string-number.yml", 9, "Incorrect type");
    flagged(
        "playbooks/unknown-key.yml",
        7,
        "Property bogus is not allowed",
    );
    let clean = diagnostics(&result["playbooks/with-vars.yml"]);
    assert!(clean.is_empty(), "with-vars.yml: {clean:?}");
    for path in &bundled {
        let name = format!(
            "playbooks/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let got = diagnostics(&result[name.as_str()]);
        assert!(got.is_empty(), "{name}: {got:?}");
    }
}

/// Runs ajv-cli (default options: strict mode) and returns (success, output).
fn ajv(args: &[&str]) -> Option<(bool, String)> {
    let bin = tool("ajv-cli/dist/index.js", "ajv-cli")?;
    let out = Command::new("node")
        .arg(bin)
        .args(args)
        .output()
        .expect("run ajv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn ajv_compiles_every_schema_in_strict_mode() {
    for name in ["playbook", "plan", "facts"] {
        let path = schema(name);
        let Some((ok, out)) = ajv(&["compile", "-s", &path.display().to_string()]) else {
            return;
        };
        assert!(ok && out.contains("is valid"), "{name}: {out}");
        // Strict mode only logs some findings (strictTypes); there must be none.
        assert!(!out.contains("strict mode"), "{name}: {out}");
    }
}

#[test]
fn ajv_validates_playbooks_facts_and_plans() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ajv-cli takes repeated `-d` and checks each file.
    let validate = |schema_name: &str, files: &[PathBuf]| {
        let mut args = vec!["validate".to_owned(), "-s".to_owned()];
        args.push(schema(schema_name).display().to_string());
        for f in files {
            args.push("-d".to_owned());
            args.push(f.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ajv(&args)
    };
    let playbooks = bundled_playbooks();
    let Some((ok, out)) = validate("playbook", &playbooks) else {
        return;
    };
    assert!(
        ok && out.matches(" valid").count() == playbooks.len(),
        "{out}"
    );

    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        format!(
            "{HEAD}      kernel_log: {{pattern: oops, within: one hour}}\n    fix:\n      - set_sysctl: {{key: k, value: 1, at_most: 2}}\n"
        ),
    )
    .expect("write");
    let Some((ok, out)) = validate("playbook", &[broken]) else {
        return;
    };
    assert!(!ok && out.contains("must match pattern"), "{out}");

    // Every golden facts snapshot, and its plan, against the facts and plan schemas.
    let mut facts = Vec::new();
    let mut plans = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/golden")).expect("tests/golden") {
        let case = entry.expect("entry").path();
        if !case.join("facts.json").is_file() {
            continue;
        }
        facts.push(case.join("facts.json"));
        // expected.json is "exit: N" and then the plan (or an error message).
        let expected = std::fs::read_to_string(case.join("expected.json")).unwrap_or_default();
        if let Some((_, plan)) = expected.split_once('\n')
            && plan.trim_start().starts_with('{')
        {
            let file = dir.path().join(format!("plan-{}.json", plans.len()));
            std::fs::write(&file, plan).expect("write");
            plans.push(file);
        }
    }
    assert!(
        facts.len() >= 15 && plans.len() >= 10,
        "{facts:?} {plans:?}"
    );
    // And what `tune facts` writes on this host.
    let live = support::tune(dir.path())
        .args(["facts", "--format", "json"])
        .output()
        .expect("run tune facts");
    assert!(live.status.success(), "{}", support::text(&live));
    let file = dir.path().join("live-facts.json");
    std::fs::write(&file, &live.stdout).expect("write");
    facts.push(file);
    for (name, files) in [("facts", &facts), ("plan", &plans)] {
        let Some((ok, out)) = validate(name, files) else {
            return;
        };
        assert!(ok && out.matches(" valid").count() == files.len(), "{out}");
    }
}
