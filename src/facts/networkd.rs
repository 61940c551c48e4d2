//! Which network manager configures a link at boot, read under `--root`:
//! netplan YAML (`/etc/netplan`, `/run/netplan`, `/usr/lib/netplan`), NetworkManager
//! keyfiles (`interface-name=`), systemd-networkd `.network` files (`[Match] Name=`,
//! the first file in name order that matches wins, as in networkd), and ifupdown
//! (`iface NAME` in /etc/network/interfaces and interfaces.d).
//!
//! netplan comes first because it generates networkd or NetworkManager files under
//! /run: the YAML is the file to change, not what it generated.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::config::{ConfFile, list_dropins, read_file};

/// The manager whose configuration names the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Manager {
    Networkd,
    NetworkManager,
    Netplan,
    Ifupdown,
}

impl Manager {
    pub fn name(self) -> &'static str {
        match self {
            Manager::Networkd => "systemd-networkd",
            Manager::NetworkManager => "NetworkManager",
            Manager::Netplan => "netplan",
            Manager::Ifupdown => "ifupdown",
        }
    }
}

/// What configures a link at boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LinkOwner {
    /// `null`: no manager's configuration names the link.
    pub manager: Option<Manager>,
    /// The file that names it.
    pub file: Option<String>,
    /// For networkd: the drop-ins of that `.network` file, in reading order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropins: Vec<ConfFile>,
}

/// The systemd search path for `.network` files and their drop-ins.
pub const NETWORKD_DIRS: [&str; 4] = [
    "/etc/systemd",
    "/run/systemd",
    "/usr/local/lib/systemd",
    "/usr/lib/systemd",
];

/// Finds the manager of `link` under `root`.
pub fn owner(root: &Path, link: &str) -> Result<LinkOwner, String> {
    let found = |manager, file: &str| LinkOwner {
        manager: Some(manager),
        file: Some(file.to_owned()),
        dropins: Vec::new(),
    };
    for f in list_dropins(root, &["/etc", "/run", "/usr/lib"], "netplan", ".yaml")? {
        if netplan_names(&f.content, link) {
            return Ok(found(Manager::Netplan, &f.path));
        }
    }
    for f in list_dropins(
        root,
        &["/etc/NetworkManager", "/run/NetworkManager"],
        "system-connections",
        ".nmconnection",
    )? {
        if f.content
            .lines()
            .any(|l| l.trim().strip_prefix("interface-name=").map(str::trim) == Some(link))
        {
            return Ok(found(Manager::NetworkManager, &f.path));
        }
    }
    for f in list_dropins(root, &NETWORKD_DIRS, "network", ".network")? {
        if networkd_matches(&f.content, link) {
            let name = f.path.rsplit('/').next().unwrap_or_default().to_owned();
            let mut owner = found(Manager::Networkd, &f.path);
            owner.dropins =
                list_dropins(root, &NETWORKD_DIRS, &format!("network/{name}.d"), ".conf")?;
            return Ok(owner);
        }
    }
    let mut ifupdown = vec!["/etc/network/interfaces".to_owned()];
    ifupdown.extend(
        list_dropins(root, &["/etc/network"], "interfaces.d", "")?
            .into_iter()
            .map(|f| f.path),
    );
    for path in ifupdown {
        if let Some(text) = read_file(root, &path)?
            && text.lines().any(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some("iface") && w.next() == Some(link)
            })
        {
            return Ok(found(Manager::Ifupdown, &path));
        }
    }
    Ok(LinkOwner {
        manager: None,
        file: None,
        dropins: Vec::new(),
    })
}

/// Whether a `.network` file's `[Match]` section selects `link`: its `Name=` globs
/// match, or it has no match keys at all (then it matches every link).
pub fn networkd_matches(content: &str, link: &str) -> bool {
    let mut in_match = false;
    let mut names: Option<bool> = None;
    let mut other_keys = false;
    for line in content.lines().map(str::trim) {
        if line.starts_with('[') {
            in_match = line == "[Match]";
            continue;
        }
        if !in_match || line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if k.trim() == "Name" => {
                let hit = v.split_whitespace().any(|g| glob(g, link));
                // An empty `Name=` resets the list.
                names = if v.trim().is_empty() {
                    None
                } else {
                    Some(names.unwrap_or(false) || hit)
                };
            }
            Some(_) => other_keys = true,
            None => {}
        }
    }
    match names {
        Some(hit) => hit,
        None => !other_keys,
    }
}

fn netplan_names(content: &str, link: &str) -> bool {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(content) else {
        return false;
    };
    let Some(network) = doc.get("network") else {
        return false;
    };
    ["ethernets", "bonds", "bridges", "vlans", "wifis", "tunnels"]
        .iter()
        .filter_map(|kind| network.get(*kind).and_then(|v| v.as_mapping()))
        .flat_map(|m| m.iter())
        .any(|(id, def)| {
            id.as_str() == Some(link)
                || def.get("set-name").and_then(|v| v.as_str()) == Some(link)
                || def
                    .get("match")
                    .and_then(|m| m.get("name"))
                    .and_then(|v| v.as_str())
                    .is_some_and(|g| glob(g, link))
        })
}

/// Shell-style `*` and `?` matching (what `Name=` and netplan `match.name` use;
/// character classes are not supported and match literally).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_networkd() {
        assert!(networkd_matches(
            "[Match]\nName=en* veth0\n[Link]\nMTUBytes=1400\n",
            "veth0"
        ));
        assert!(networkd_matches("[Match]\nName=en*\n", "enp1s0"));
        assert!(!networkd_matches("[Match]\nName=en*\n", "veth0"));
        assert!(!networkd_matches("[Match]\nType=ether\n", "veth0"));
        assert!(networkd_matches("[Network]\nDHCP=yes\n", "veth0"));
        assert!(glob("e?h*", "eth0") && !glob("e?h", "eth0") && glob("*", ""));
    }

    #[test]
    fn netplan_ids_and_matches() {
        let y = "network:\n  ethernets:\n    eth0: {mtu: 1500}\n    lan:\n      match: {name: \"enp*\"}\n";
        assert!(netplan_names(y, "eth0"));
        assert!(netplan_names(y, "enp3s0"));
        assert!(!netplan_names(y, "veth0"));
        assert!(!netplan_names(": bad", "eth0"));
    }
}
