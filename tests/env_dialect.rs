//! The property of `domain::env_dialect`: for every dialect, after an edit the real
//! reader gets exactly the value the plan shows, and every other variable keeps the
//! value it had. Real readers: bash (`set -a; . FILE`) for the shell dialect, and
//! systemd's own `EnvironmentFile=` parser for the systemd dialect, run through the
//! environment.d generator (`30-systemd-environment-d-generator`, which loads
//! `$XDG_CONFIG_HOME/environment.d/*.conf` with the same `load_env_file` code) on a
//! temp dir. Docker has no reader on this machine; its rules are checked against the
//! documented behaviour in the unit tests. Unknown-dialect edits are checked with
//! both real readers.

mod support;

use std::path::Path;
use std::process::Command;

use support::{have, require};
use tune::domain::env_dialect::{Dialect, get_in, set_in};

const GENERATOR: &str =
    "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator";

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() as usize) % from.len()]
    }
}

fn bash_reads(file: &Path, keys: &[&str]) -> Vec<Option<String>> {
    let script = format!("set -a; . '{}' >/dev/null 2>&1;", file.display());
    print_with_bash(script, keys)
}

/// systemd's parser: the generator prints `KEY=VALUE` lines shell-quoted; bash
/// evaluates them.
fn systemd_reads(dir: &Path, file_content: &str, keys: &[&str]) -> Vec<Option<String>> {
    let conf = dir.join("environment.d");
    std::fs::create_dir_all(&conf).expect("mkdir");
    std::fs::write(conf.join("50-t.conf"), file_content).expect("write");
    let out = Command::new(GENERATOR)
        .env_clear()
        .env("XDG_CONFIG_HOME", dir)
        .env("HOME", dir)
        .output()
        .expect("generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut script = String::new();
    for line in printed.lines() {
        // Only our variables (the host's environment.d files add others).
        if keys.iter().any(|k| line.starts_with(&format!("{k}="))) {
            script.push_str(line);
            script.push('\n');
        }
    }
    print_with_bash(script, keys)
}

/// Runs `script` in a clean bash, then prints each key's value (or that it is unset).
fn print_with_bash(mut script: String, keys: &[&str]) -> Vec<Option<String>> {
    for k in keys {
        script.push_str(&format!(
            "\nif [ \"${{{k}+set}}\" = set ]; then printf 'S%s\\0' \"${k}\"; else printf 'U\\0'; fi\n"
        ));
    }
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .env_clear()
        .output()
        .expect("bash");
    split(&out.stdout)
}

fn split(out: &[u8]) -> Vec<Option<String>> {
    out.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = String::from_utf8_lossy(s).into_owned();
            s.strip_prefix('S').map(str::to_owned)
        })
        .collect()
}

/// A real reader: the file's content in, each of [`KEYS`]' value out.
type Reader<'a> = Box<dyn Fn(&str) -> Vec<Option<String>> + 'a>;

const KEYS: [&str; 3] = ["TUNE_T_A", "TUNE_T_JAVA", "TUNE_T_Z"];

/// A file whose target line comes in one of the styles found in the field.
fn file(rng: &mut Lcg) -> String {
    let target = rng.pick(&[
        "TUNE_T_JAVA=-Xmx1g\n",
        "TUNE_T_JAVA=\"-Xmx1g -Dq=a\"\n",
        "TUNE_T_JAVA='-Xmx1g -Dq'\n",
        "  TUNE_T_JAVA = -Xmx1g\n",
        "TUNE_T_JAVA=\"-Xmx1g\" # heap\n",
        "TUNE_T_JAVA=a\\ b\n",
        "",
    ]);
    let other = rng.pick(&[
        "TUNE_T_A=1\n",
        "TUNE_T_A=\"two words\"\n",
        "TUNE_T_A='x'\n",
        "# TUNE_T_JAVA=-Xmx9g\n",
        "\n",
    ]);
    let last = rng.pick(&["TUNE_T_Z=z\n", "TUNE_T_Z=\"z z\"\n", "; comment\n", ""]);
    format!("# test\n{other}{target}{last}")
}

fn value(rng: &mut Lcg) -> String {
    let parts = [
        "-Xmx256m",
        " ",
        "-Dx=1",
        "\"",
        "'",
        "\\",
        "#",
        ";",
        "%",
        "a",
        "=",
        "  ",
        "-XX:+UseG1GC",
        "*",
        "!",
        "`",
    ];
    let n = 1 + (rng.next() % 5) as usize;
    (0..n).map(|_| rng.pick(&parts)).collect()
}

#[test]
fn after_an_edit_the_real_readers_get_what_the_plan_says() {
    if !require(have("bash"), "needs bash")
        || !require(
            Path::new(GENERATOR).exists(),
            "needs systemd's environment.d generator (package systemd)",
        )
    {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = Lcg(11);
    let (mut checked, mut refused) = (0, 0);
    for case in 0..120 {
        let before = file(&mut rng);
        let new = value(&mut rng);
        for dialect in [Dialect::Shell, Dialect::Systemd, Dialect::Unknown] {
            let Ok(after) = set_in(dialect, &before, "TUNE_T_JAVA", &new) else {
                refused += 1;
                continue;
            };
            assert_eq!(
                get_in(dialect, &after, "TUNE_T_JAVA")
                    .ok()
                    .flatten()
                    .as_deref(),
                Some(new.as_str()),
                "{dialect:?} model, case {case}: {before:?} → {after:?}"
            );
            let dir = tmp.path().join(format!("c{case}-{}", dialect.name()));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let path = dir.join("env");
            let real: Vec<(&str, Reader)> = match dialect {
                Dialect::Shell => vec![(
                    "bash",
                    Box::new(|c: &str| {
                        std::fs::write(&path, c).expect("write");
                        bash_reads(&path, &KEYS)
                    }),
                )],
                Dialect::Systemd => {
                    vec![("systemd", Box::new(|c: &str| systemd_reads(&dir, c, &KEYS)))]
                }
                _ => vec![
                    (
                        "bash",
                        Box::new(|c: &str| {
                            std::fs::write(&path, c).expect("write");
                            bash_reads(&path, &KEYS)
                        }),
                    ),
                    ("systemd", Box::new(|c: &str| systemd_reads(&dir, c, &KEYS))),
                ],
            };
            for (name, read) in &real {
                let old = read(&before);
                let now = read(&after);
                assert_eq!(
                    now[1].as_deref(),
                    Some(new.as_str()),
                    "{name} ({dialect:?}), case {case}:\nbefore {before:?}\nafter  {after:?}"
                );
                assert_eq!(
                    (&old[0], &old[2]),
                    (&now[0], &now[2]),
                    "{name}: other variables changed, case {case}: {before:?} → {after:?}"
                );
            }
            checked += 1;
        }
    }
    eprintln!("{checked} edits checked with the real readers, {refused} refused");
    assert!(checked > 150, "too few edits were possible: {checked}");
    assert!(refused > 0, "the unknown dialect refuses some values");
}

#[test]
fn shell_references_stay_references() {
    if !require(have("bash"), "needs bash") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("env");
    let before = "TUNE_T_A=-Dbase\nTUNE_T_JAVA=\"$TUNE_T_A -Xmx1g\"\n";
    let got = get_in(Dialect::Shell, before, "TUNE_T_JAVA").expect("read");
    assert_eq!(got.as_deref(), Some("$TUNE_T_A -Xmx1g"));
    let after = set_in(Dialect::Shell, before, "TUNE_T_JAVA", "$TUNE_T_A -Xmx256m").expect("set");
    std::fs::write(&path, &after).expect("write");
    assert_eq!(
        bash_reads(&path, &KEYS)[1].as_deref(),
        Some("-Dbase -Xmx256m"),
        "{after}"
    );
}
