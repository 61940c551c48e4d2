//! sysctl.d files as the two boot-time readers read them, and the file `tune` owns.
//!
//! Pure: no I/O. The readers (see `sysctl.d(5)` and systemd's `src/sysctl/sysctl.c`;
//! procps-ng `sysctl.c`, `--system`):
//!
//! - a line is `key = value`; blank lines and lines starting with `#` or `;` are
//!   comments; key and value are trimmed; a key starting with `-` means "ignore a
//!   failure to write it";
//! - a key whose first separator is `/` uses `/` between components
//!   (`net/ipv4/conf/eth0.100/rp_filter`), which both readers turn into dots;
//! - for a key set twice the last assignment wins, files being read in the order
//!   given ([`BootFile`]s are already in reader order).
//!
//! Keys with glob characters (`net.ipv4.conf.*.rp_filter`) are kept apart: systemd
//! applies them only where no explicit assignment exists, so they never override an
//! explicit key such as the ones `tune` writes.

use std::collections::BTreeMap;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Dotted key.
    pub key: String,
    pub value: String,
    /// 1-based line number.
    pub line: usize,
    /// `-key = value`: a write failure is ignored.
    pub ignore_failure: bool,
}

/// A file as its reader sees it: the path the reader names (not under `--root`) and
/// its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile<'a> {
    pub path: &'a str,
    pub content: &'a str,
}

/// Where boot sets a key, and to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub path: String,
    pub line: usize,
}

impl Setting {
    /// `PATH:LINE`.
    pub fn place(&self) -> String {
        format!("{}:{}", self.path, self.line)
    }
}

/// The assignments of one file, in order.
pub fn parse(content: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    for (i, raw) in content.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let (key, ignore_failure) = match key.strip_prefix('-') {
            Some(k) => (k.trim_start(), true),
            None => (key, false),
        };
        if key.is_empty() {
            continue;
        }
        out.push(Assignment {
            key: normalize_key(key),
            value: value.trim().to_owned(),
            line: i + 1,
            ignore_failure,
        });
    }
    out
}

/// Dots between components: `net/ipv4/ip_forward` → `net.ipv4.ip_forward`, and
/// `net/ipv4/conf/eth0.100/rp_filter` → `net.ipv4.conf.eth0/100.rp_filter` (the dot in
/// the interface name becomes a slash, as systemd's `sysctl_normalize` does).
pub fn normalize_key(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => key.to_owned(),
    }
}

/// Whether the key is a glob pattern rather than one key.
pub fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '['])
}

/// The explicit (non-glob) keys the files set, last assignment winning.
pub fn effective(files: &[BootFile<'_>]) -> BTreeMap<String, Setting> {
    let mut out = BTreeMap::new();
    for f in files {
        for a in parse(f.content) {
            if is_glob(&a.key) {
                continue;
            }
            out.insert(
                a.key,
                Setting {
                    value: a.value,
                    path: f.path.to_owned(),
                    line: a.line,
                },
            );
        }
    }
    out
}

/// The first line of the file `tune` owns.
pub const OWNED_HEADER: &str =
    "# Written by tune (tune apply --persist); `tune rollback` restores the previous file.\n";

/// The content of the owned file once `settings` are in it: lines setting other keys
/// stay as they are, a key already there is changed in place, new keys are appended.
pub fn with_settings(existing: Option<&str>, settings: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut done = vec![false; settings.len()];
    match existing {
        None => out.push_str(OWNED_HEADER),
        Some(text) => {
            for line in text.split_inclusive('\n') {
                let parsed = parse(line);
                let hit = parsed
                    .first()
                    .and_then(|a| settings.iter().position(|(k, _)| normalize_key(k) == a.key));
                match hit {
                    Some(i) => {
                        let (k, v) = &settings[i];
                        if !done[i] {
                            out.push_str(&format!("{k} = {v}\n"));
                        }
                        done[i] = true;
                    }
                    None => {
                        out.push_str(line);
                        if !line.ends_with('\n') {
                            out.push('\n');
                        }
                    }
                }
            }
        }
    }
    for (i, (k, v)) in settings.iter().enumerate() {
        if !done[i] {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out
}

/// The kernel module that creates a key, for keys that exist only once it is loaded.
pub fn module_for(key: &str) -> Option<&'static str> {
    if key.starts_with("net.netfilter.nf_conntrack_") {
        Some("nf_conntrack")
    } else if key.starts_with("net.bridge.") {
        Some("br_netfilter")
    } else {
        None
    }
}

/// Whether a modules-load.d file lists `module` (one name per line, `#`/`;` comments;
/// `-` and `_` are the same in module names).
pub fn lists_module(content: &str, module: &str) -> bool {
    let canon = |s: &str| s.replace('-', "_");
    content
        .lines()
        .map(str::trim)
        .any(|l| !l.starts_with('#') && !l.starts_with(';') && canon(l) == canon(module))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_readers() {
        let text = "# c\n; c\n\n net.core.somaxconn =  4096 \n-net.ipv4.tcp_tw_reuse=1\nnet/ipv4/conf/eth0.100/rp_filter = 2\nno equals\n=x\n";
        let a = parse(text);
        assert_eq!(a.len(), 3);
        assert_eq!(
            (a[0].key.as_str(), a[0].value.as_str(), a[0].line),
            ("net.core.somaxconn", "4096", 4)
        );
        assert!(a[1].ignore_failure);
        assert_eq!(a[2].key, "net.ipv4.conf.eth0/100.rp_filter");
    }

    #[test]
    fn last_assignment_wins_and_globs_do_not_count() {
        let files = [
            BootFile {
                path: "/usr/lib/sysctl.d/10-a.conf",
                content: "net.core.somaxconn = 1\nnet.ipv4.conf.*.rp_filter = 1\n",
            },
            BootFile {
                path: "/etc/sysctl.d/20-b.conf",
                content: "x = 0\nnet.core.somaxconn = 2\n",
            },
        ];
        let e = effective(&files);
        assert_eq!(e["net.core.somaxconn"].place(), "/etc/sysctl.d/20-b.conf:2");
        assert_eq!(e["net.core.somaxconn"].value, "2");
        assert!(!e.keys().any(|k| is_glob(k)));
    }

    #[test]
    fn owned_file_is_edited_in_place() {
        let set = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let new = with_settings(None, &set("net.core.somaxconn", "4096"));
        assert_eq!(new, format!("{OWNED_HEADER}net.core.somaxconn = 4096\n"));
        let edited = with_settings(
            Some("# mine\nnet.core.somaxconn=10\nkernel.x = 1"),
            &[
                ("net.core.somaxconn".into(), "4096".into()),
                ("a.b".into(), "1 2".into()),
            ],
        );
        assert_eq!(
            edited,
            "# mine\nnet.core.somaxconn = 4096\nkernel.x = 1\na.b = 1 2\n"
        );
        assert_eq!(
            module_for("net.netfilter.nf_conntrack_max"),
            Some("nf_conntrack")
        );
        assert_eq!(module_for("net.core.somaxconn"), None);
        assert!(lists_module("# x\nnf-conntrack\n", "nf_conntrack"));
        assert!(!lists_module("#nf_conntrack\n", "nf_conntrack"));
    }
}
