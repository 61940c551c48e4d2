//! Which network manager configures a link at boot, read under `--root`:
//! netplan YAML (`/etc/netplan`, `/run/netplan`, `/usr/lib/netplan`), NetworkManager
//! keyfiles (`interface-name=`), systemd-networkd `.network` files (`[Match]` on
//! `Name=`, `MACAddress=`, `Type=`, `Kind=`; other keys make the answer "cannot
//! tell"; the first file in name order that matches wins, as in networkd), and ifupdown
//! (`iface NAME` in /etc/network/interfaces and interfaces.d).
//!
//! netplan comes first because it generates networkd or NetworkManager files under
//! /run: the YAML is the file to change, not what it generated.

use std::cell::OnceCell;
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
    /// Set when tune cannot tell whether `file` (a `.network` file, the first in
    /// networkd's order that may match) applies to the link: why
    /// (`matches on Driver=`). Then no manager is known to own the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cannot_tell: Option<String>,
}

/// The systemd search path for `.network` files and their drop-ins.
pub const NETWORKD_DIRS: [&str; 4] = [
    "/etc/systemd",
    "/run/systemd",
    "/usr/local/lib/systemd",
    "/usr/lib/systemd",
];

/// A listing, or a read, and why it failed.
type Read<T> = Result<T, String>;

/// A listing or read made at most once.
type Kept<T> = OnceCell<Read<T>>;

/// The files that decide which manager configures a link at boot, each source read
/// the first time a link's search reaches it and then kept: `tune facts` asks for
/// every link (a namespace may hold 30k), a plan only for the links it changes, which
/// netplan may already name. A listing or read that failed fails only the links whose
/// search reaches it, as a search file by file would.
pub struct OwnerFiles<'a> {
    root: &'a Path,
    netplan: Kept<Vec<ConfFile>>,
    network_manager: Kept<Vec<ConfFile>>,
    /// Each `.network` file, with its drop-ins once a link matches it.
    networkd: Kept<Vec<(ConfFile, Kept<Vec<ConfFile>>)>>,
    /// `/etc/network/interfaces`, then `interfaces.d/*`, each with its text.
    ifupdown: Kept<Vec<(String, Read<Option<String>>)>>,
}

/// A kept listing, or its error again for the next link that reaches it.
fn kept<T>(cell: &Kept<T>, read: impl FnOnce() -> Read<T>) -> Read<&T> {
    cell.get_or_init(read).as_ref().map_err(Clone::clone)
}

impl<'a> OwnerFiles<'a> {
    pub fn new(root: &'a Path) -> OwnerFiles<'a> {
        OwnerFiles {
            root,
            netplan: OnceCell::new(),
            network_manager: OnceCell::new(),
            networkd: OnceCell::new(),
            ifupdown: OnceCell::new(),
        }
    }

    /// What configures `id` at boot, searched as the managers would: netplan, then
    /// NetworkManager, then networkd (the first `.network` file that matches), then
    /// ifupdown.
    pub fn owner(&self, id: &LinkId) -> Result<LinkOwner, String> {
        let link = id.name.as_str();
        let found = |manager, file: &str| LinkOwner {
            manager: Some(manager),
            file: Some(file.to_owned()),
            dropins: Vec::new(),
            cannot_tell: None,
        };
        let root = self.root;
        let netplan = kept(&self.netplan, || {
            list_dropins(root, &["/etc", "/run", "/usr/lib"], "netplan", ".yaml")
        })?;
        for f in netplan {
            if netplan_names(&f.content, link) {
                return Ok(found(Manager::Netplan, &f.path));
            }
        }
        let network_manager = kept(&self.network_manager, || {
            list_dropins(
                root,
                &["/etc/NetworkManager", "/run/NetworkManager"],
                "system-connections",
                ".nmconnection",
            )
        })?;
        for f in network_manager {
            if f.content
                .lines()
                .any(|l| l.trim().strip_prefix("interface-name=").map(str::trim) == Some(link))
            {
                return Ok(found(Manager::NetworkManager, &f.path));
            }
        }
        let networkd = kept(&self.networkd, || {
            list_dropins(root, &NETWORKD_DIRS, "network", ".network")
                .map(|files| files.into_iter().map(|f| (f, OnceCell::new())).collect())
        })?;
        for (f, dropins) in networkd {
            let applies = networkd_matches(&f.content, id);
            if let Applies::CannotTell(why) = applies {
                // networkd takes the first file that matches: if this one might, no
                // later file (nor ifupdown) can be said to own the link.
                let mut owner = found(Manager::Networkd, &f.path);
                owner.cannot_tell = Some(why);
                return Ok(owner);
            }
            if applies == Applies::Yes {
                let mut owner = found(Manager::Networkd, &f.path);
                let name = f.path.rsplit('/').next().unwrap_or_default();
                owner.dropins = kept(dropins, || {
                    list_dropins(root, &NETWORKD_DIRS, &format!("network/{name}.d"), ".conf")
                })?
                .clone();
                return Ok(owner);
            }
        }
        let ifupdown = kept(&self.ifupdown, || {
            // The listing has read each `interfaces.d` file already.
            list_dropins(root, &["/etc/network"], "interfaces.d", "").map(|files| {
                let main = "/etc/network/interfaces".to_owned();
                let text = read_file(root, &main);
                std::iter::once((main, text))
                    .chain(files.into_iter().map(|f| (f.path, Ok(Some(f.content)))))
                    .collect()
            })
        })?;
        for (path, text) in ifupdown {
            if let Some(text) = text.as_ref().map_err(Clone::clone)?
                && text.lines().any(|l| {
                    let mut w = l.split_whitespace();
                    w.next() == Some("iface") && w.next() == Some(link)
                })
            {
                return Ok(found(Manager::Ifupdown, path));
            }
        }
        Ok(LinkOwner {
            manager: None,
            file: None,
            dropins: Vec::new(),
            cannot_tell: None,
        })
    }
}

/// What tune knows about a link that networkd's `[Match]` keys test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkId {
    pub name: String,
    /// The MAC address, lowercase with colons (`None`: not known).
    pub mac: Option<String>,
    /// tune's link kind (`facts::net::Link::kind`; `None`: not known).
    pub kind: Option<String>,
    /// Alternative names (`None`: not known, e.g. a snapshot older than them).
    pub altnames: Option<Vec<String>>,
}

impl LinkId {
    /// A link known only by its name.
    pub fn named(name: &str) -> LinkId {
        LinkId {
            name: name.to_owned(),
            ..LinkId::default()
        }
    }

    pub fn of(link: &super::net::Link) -> LinkId {
        LinkId {
            name: link.name.to_string(),
            mac: link.mac.map(|m| m.to_string()),
            kind: Some(link.kind.to_string()),
            altnames: Some(link.altnames().to_vec()),
        }
    }
}

/// Whether a `.network` file applies to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies {
    Yes,
    No,
    /// It depends on what tune cannot read; the reason names the keys
    /// (`matches on Driver=`).
    CannotTell(String),
}

/// A match key's list: each word a pattern, `!` marking inverted ones (a `!` before
/// the value inverts the whole assignment, as in systemd's `config_parse_match_strv`
/// and `net_condition_test_strv`, src/shared/net-condition.c).
#[derive(Default)]
struct Patterns(Vec<(bool, String)>);

impl Patterns {
    fn assign(&mut self, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            self.0.clear();
            return;
        }
        let (invert, words) = match value.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        // systemd stores `!WORD` for an inverted assignment and then reads any
        // leading `!` of a stored word as an inversion, so `Name=en* !veth0` inverts
        // only its second word.
        self.0.extend(words.split_whitespace().map(|w| {
            let stored = if invert {
                format!("!{w}")
            } else {
                w.to_owned()
            };
            match stored.strip_prefix('!') {
                Some(p) => (true, p.to_owned()),
                None => (false, stored),
            }
        }));
    }

    /// systemd's `net_condition_test_strv`: an inverted pattern that matches fails
    /// the test; with any positive pattern, one of them must match. `None` tests a
    /// link without the property (nothing matches it).
    fn test(&self, value: Option<&str>, matches: impl Fn(&str, &str) -> bool) -> bool {
        let mut positive = false;
        let mut hit = false;
        for (invert, p) in &self.0 {
            positive |= !invert;
            if value.is_some_and(|v| matches(p, v)) {
                if *invert {
                    return false;
                }
                hit = true;
            }
        }
        !positive || hit
    }
}

/// A MAC address in any form systemd accepts (`aa:bb:..`, `aa-bb-..`,
/// `aabb.ccdd.eeff`), as lowercase colon form.
fn parse_mac(text: &str) -> Option<String> {
    let groups: Vec<&str> = if text.contains('.') {
        let g: Vec<&str> = text.split('.').collect();
        if g.len() != 3 || g.iter().any(|g| g.len() != 4) {
            return None;
        }
        g.iter().flat_map(|g| [&g[..2], &g[2..]]).collect()
    } else {
        text.split([':', '-']).collect()
    };
    (groups.len() == 6
        && groups
            .iter()
            .all(|g| (1..=2).contains(&g.len()) && g.chars().all(|c| c.is_ascii_hexdigit())))
    .then(|| {
        groups
            .iter()
            .map(|g| format!("{:0>2}", g.to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(":")
    })
}

/// The values systemd's `Type=` could see for a link of tune's `kind`: the udev
/// DEVTYPE when the driver sets one, else the lowercased ARPHRD name. A physical
/// Ethernet-type NIC may be `ether`, `wlan` or `wwan` (tune does not read udev);
/// `None`: tune cannot say.
fn type_candidates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "loopback" => &["loopback"],
        "veth" | "dummy" | "macvlan" => &["ether"],
        "bridge" => &["bridge"],
        "vlan" => &["vlan"],
        "bond" => &["bond"],
        "vxlan" => &["vxlan"],
        "wireguard" => &["wireguard"],
        "ethernet" => &["ether", "wlan", "wwan"],
        _ => return None,
    })
}

/// Whether a `.network` file's `[Match]` section selects `link`, as systemd's
/// `net_match_config` decides: every key given must match (AND); each key's list
/// matches if one pattern does (OR), `!` inverts, an empty assignment resets the
/// key; no match keys at all match every link. Keys tune cannot evaluate (`Driver=`,
/// `Path=`, `Property=`, `Host=`, ...) make the answer [`Applies::CannotTell`]
/// unless another key already rules the link out.
pub fn networkd_matches(content: &str, link: &LinkId) -> Applies {
    let mut in_match = false;
    let (mut names, mut types, mut kinds) = (
        Patterns::default(),
        Patterns::default(),
        Patterns::default(),
    );
    let mut macs: Vec<String> = Vec::new();
    let mut other: std::collections::BTreeMap<String, bool> = Default::default();
    for line in content.lines().map(str::trim) {
        if line.starts_with('[') {
            in_match = line == "[Match]";
            continue;
        }
        if !in_match || line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "Name" => names.assign(v),
            "Type" => types.assign(v),
            "Kind" => kinds.assign(v),
            "MACAddress" if v.trim().is_empty() => macs.clear(),
            // systemd ignores an address it cannot parse.
            "MACAddress" => macs.extend(v.split_whitespace().filter_map(parse_mac)),
            key => {
                other.insert(format!("{key}="), !v.trim().is_empty());
            }
        }
    }
    let mut unknown: Vec<String> = other
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
    let mut no = false;
    if names.0.iter().any(|(_, p)| p.contains('[')) {
        unknown.push("Name= (a character class)".to_owned());
    } else if !names.test(Some(&link.name), glob) {
        // `net_condition_test_ifname`: the name or any alternative name passes.
        match &link.altnames {
            Some(alt) => no |= !alt.iter().any(|a| names.test(Some(a), glob)),
            None => unknown.push("Name= (the link's alternative names are not known)".to_owned()),
        }
    }
    if !macs.is_empty() {
        match &link.mac {
            Some(mac) => no |= !macs.contains(mac),
            None => unknown.push("MACAddress= (the link's address is not known)".to_owned()),
        }
    }
    if !types.0.is_empty() {
        match link.kind.as_deref().and_then(type_candidates) {
            Some(c) => {
                let results: Vec<bool> = c.iter().map(|t| types.test(Some(t), glob)).collect();
                if results.iter().all(|&r| !r) {
                    no = true;
                } else if results.iter().any(|&r| !r) {
                    unknown.push(format!(
                        "Type= (a {} link's udev device type may be any of {})",
                        link.kind.as_deref().unwrap_or_default(),
                        c.join(", ")
                    ));
                }
            }
            None => unknown.push("Type=".to_owned()),
        }
    }
    if !kinds.0.is_empty() {
        match link.kind.as_deref() {
            // IFLA_INFO_KIND: the links tune calls ethernet or loopback have none.
            Some("ethernet" | "loopback") => no |= !kinds.test(None, glob),
            Some(kind) => no |= !kinds.test(Some(kind), glob),
            None => unknown.push("Kind=".to_owned()),
        }
    }
    if no {
        Applies::No
    } else if unknown.is_empty() {
        Applies::Yes
    } else {
        Applies::CannotTell(format!("matches on {}", unknown.join(", ")))
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

    fn veth(name: &str) -> LinkId {
        LinkId {
            name: name.to_owned(),
            mac: Some("02:00:00:aa:bb:01".to_owned()),
            kind: Some("veth".to_owned()),
            altnames: Some(Vec::new()),
        }
    }

    fn yes(content: &str, link: &LinkId) -> bool {
        match networkd_matches(content, link) {
            Applies::Yes => true,
            Applies::No => false,
            Applies::CannotTell(why) => panic!("cannot tell: {why}"),
        }
    }

    #[test]
    fn matches_like_networkd() {
        let v = veth("veth0");
        assert!(yes("[Match]\nName=en* veth0\n[Link]\nMTUBytes=1400\n", &v));
        assert!(yes("[Match]\nName=en*\n", &veth("enp1s0")));
        assert!(!yes("[Match]\nName=en*\n", &v));
        assert!(yes("[Network]\nDHCP=yes\n", &v));
        assert!(yes("[Match]\n", &v));
        assert!(glob("e?h*", "eth0") && !glob("e?h", "eth0") && glob("*", ""));
        // Lists accumulate; an empty assignment resets.
        assert!(yes("[Match]\nName=en*\nName=veth*\n", &v));
        assert!(yes("[Match]\nName=en*\nName=\n", &v));
        assert!(!yes("[Match]\nName=veth*\nName=\nName=en*\n", &v));
        // `!` inverts the whole assignment; any inverted hit fails.
        assert!(!yes("[Match]\nName=!veth* lo\n", &v));
        assert!(yes("[Match]\nName=!en* lo\n", &v));
        assert!(!yes("[Match]\nName=veth0\nName=!veth*\n", &v));
        assert!(yes("[Match]\nName=!en*\nName=veth0\n", &v));
        assert!(!yes("[Match]\nName=!en*\nName=eth0\n", &v));
        // The name or an alternative name passes (systemd's net_condition_test_ifname).
        let alt = LinkId {
            altnames: Some(vec!["altveth0".to_owned()]),
            ..veth("veth0")
        };
        assert!(yes("[Match]\nName=altveth*\n", &alt));
        assert!(!yes("[Match]\nName=altveth*\n", &v));
        // So an inverted list excludes the link only if it excludes every name.
        assert!(yes("[Match]\nName=!veth0\n", &alt));
        assert!(!yes("[Match]\nName=!veth0 alt*\n", &alt));
        assert_eq!(
            networkd_matches("[Match]\nName=en*\n", &LinkId::named("veth0")),
            Applies::CannotTell(
                "matches on Name= (the link's alternative names are not known)".to_owned()
            )
        );
        assert!(yes("[Match]\nName=veth0\n", &LinkId::named("veth0")));
        // A `!` on one word inverts that word only.
        assert!(!yes("[Match]\nName=tp* !veth0\n", &v));
        assert!(yes("[Match]\nName=veth* !veth1\n", &v));
    }

    #[test]
    fn mac_address_is_a_case_insensitive_list_in_any_form() {
        let v = veth("veth0");
        assert!(yes("[Match]\nMACAddress=02:00:00:AA:BB:01\n", &v));
        assert!(yes(
            "[Match]\nMACAddress=11:22:33:44:55:66 02-00-00-aa-bb-01\n",
            &v
        ));
        assert!(yes("[Match]\nMACAddress=0200.00aa.bb01\n", &v));
        assert!(!yes("[Match]\nMACAddress=02:00:00:aa:bb:02\n", &v));
        assert!(yes(
            "[Match]\nMACAddress=02:00:00:aa:bb:02\nMACAddress=\n",
            &v
        ));
        // An address systemd cannot parse is ignored.
        assert!(yes("[Match]\nMACAddress=zz 02:00:00:aa:bb:01\n", &v));
        assert_eq!(
            parse_mac("2:0:0:AA:bb:1").as_deref(),
            Some("02:00:00:aa:bb:01")
        );
        assert_eq!(parse_mac("02:00:00:aa:bb"), None);
        assert_eq!(parse_mac("02:00:00:aa:bb:0g"), None);
        // Without the link's address, tune cannot tell.
        assert_eq!(
            networkd_matches(
                "[Match]\nMACAddress=02:00:00:aa:bb:01\n",
                &LinkId::named("veth0")
            ),
            Applies::CannotTell(
                "matches on MACAddress= (the link's address is not known)".to_owned()
            )
        );
    }

    #[test]
    fn keys_are_anded() {
        let v = veth("veth0");
        assert!(yes(
            "[Match]\nName=veth*\nMACAddress=02:00:00:aa:bb:01\n",
            &v
        ));
        assert!(!yes(
            "[Match]\nName=en*\nMACAddress=02:00:00:aa:bb:01\n",
            &v
        ));
        assert!(!yes(
            "[Match]\nName=veth*\nMACAddress=02:00:00:aa:bb:09\n",
            &v
        ));
        assert!(yes("[Match]\nName=veth*\nType=ether\nKind=veth\n", &v));
        assert!(!yes("[Match]\nName=veth*\nKind=bridge\n", &v));
    }

    #[test]
    fn type_and_kind_follow_what_the_kernel_reports() {
        let v = veth("veth0");
        assert!(yes("[Match]\nType=ether\n", &v));
        assert!(!yes("[Match]\nType=!ether\n", &v));
        assert!(!yes("[Match]\nType=bridge wlan\n", &v));
        let lo = LinkId {
            name: "lo".into(),
            mac: None,
            kind: Some("loopback".into()),
            altnames: Some(Vec::new()),
        };
        assert!(yes("[Match]\nType=loopback\n", &lo));
        assert!(!yes("[Match]\nType=ether\n", &lo));
        // A loopback has no IFLA_INFO_KIND: only inverted patterns can pass.
        assert!(!yes("[Match]\nKind=*\n", &lo));
        assert!(yes("[Match]\nKind=!veth\n", &lo));
        // A physical NIC may be ether or wlan to udev: tune cannot tell, unless no
        // candidate passes.
        let nic = LinkId {
            name: "enp1s0".into(),
            mac: Some("52:54:00:00:00:01".into()),
            kind: Some("ethernet".into()),
            altnames: Some(Vec::new()),
        };
        assert!(matches!(
            networkd_matches("[Match]\nType=ether\n", &nic),
            Applies::CannotTell(why) if why.contains("Type=")
        ));
        assert!(!yes("[Match]\nType=bridge\n", &nic));
        assert!(yes("[Match]\nType=ether wlan wwan\n", &nic));
    }

    #[test]
    fn keys_tune_cannot_read_make_it_cannot_tell() {
        let v = veth("veth0");
        assert_eq!(
            networkd_matches("[Match]\nName=veth0\nDriver=veth\n", &v),
            Applies::CannotTell("matches on Driver=".to_owned())
        );
        assert_eq!(
            networkd_matches("[Match]\nPath=pci-*\nHost=web1\n", &v),
            Applies::CannotTell("matches on Host=, Path=".to_owned())
        );
        // A key that already rules the link out decides.
        assert!(!yes("[Match]\nName=en*\nDriver=veth\n", &v));
        // A reset key is not a condition.
        assert!(yes("[Match]\nDriver=veth\nDriver=\nName=veth0\n", &v));
        // Keys of other sections are not match keys.
        assert!(yes("[Link]\nDriver=x\n[Match]\nName=veth0\n", &v));
    }

    #[test]
    fn netplan_ids_and_matches() {
        let y = "network:\n  ethernets:\n    eth0: {mtu: 1500}\n    lan:\n      match: {name: \"enp*\"}\n";
        assert!(netplan_names(y, "eth0"));
        assert!(netplan_names(y, "enp3s0"));
        assert!(!netplan_names(y, "veth0"));
        assert!(!netplan_names(": bad", "eth0"));
    }

    /// The managers' files are read once for many links and only as far as a search
    /// goes, and a directory that cannot be listed fails only the links whose search
    /// reaches it: a link netplan names is still found, one it does not name is
    /// refused with the reason.
    #[test]
    fn owner_files_are_read_once_and_a_failed_listing_fails_only_the_links_that_reach_it() {
        // No alternative names: a networkd `Name=` cannot match one.
        let known = |name: &str| LinkId {
            altnames: Some(Vec::new()),
            ..LinkId::named(name)
        };
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir_all(etc.join("netplan")).unwrap();
        std::fs::write(
            etc.join("netplan/50-cloud.yaml"),
            "network:\n  ethernets:\n    eth0: {mtu: 9001}\n",
        )
        .unwrap();
        std::fs::create_dir_all(etc.join("systemd/network")).unwrap();
        std::fs::write(
            etc.join("systemd/network/10-lan.network"),
            "[Match]\nName=lan*\n[Network]\nDHCP=yes\n",
        )
        .unwrap();
        std::fs::create_dir_all(etc.join("systemd/network/10-lan.network.d")).unwrap();
        std::fs::write(
            etc.join("systemd/network/10-lan.network.d/mtu.conf"),
            "[Link]\nMTUBytes=1400\n",
        )
        .unwrap();
        let files = OwnerFiles::new(root.path());
        let eth0 = files.owner(&LinkId::named("eth0")).expect("found");
        assert_eq!(
            (eth0.manager, eth0.file.as_deref()),
            (Some(Manager::Netplan), Some("/etc/netplan/50-cloud.yaml"))
        );
        // Found in netplan: nothing after it was read.
        assert!(files.network_manager.get().is_none() && files.networkd.get().is_none());
        for name in ["lan0", "lan1"] {
            let lan = files.owner(&LinkId::named(name)).expect("found");
            assert_eq!(lan.manager, Some(Manager::Networkd));
            assert_eq!(
                lan.dropins
                    .iter()
                    .map(|d| d.path.as_str())
                    .collect::<Vec<_>>(),
                ["/etc/systemd/network/10-lan.network.d/mtu.conf"]
            );
        }
        // Found by networkd: ifupdown was not read.
        assert!(files.ifupdown.get().is_none());
        assert_eq!(files.owner(&known("veth0")).expect("read").manager, None);
        // /etc/network/interfaces.d is a file, not a directory: ifupdown cannot be listed.
        std::fs::create_dir_all(etc.join("network")).unwrap();
        std::fs::write(etc.join("network/interfaces.d"), "").unwrap();
        let files = OwnerFiles::new(root.path());
        assert_eq!(
            files
                .owner(&LinkId::named("eth0"))
                .expect("netplan first")
                .manager,
            Some(Manager::Netplan)
        );
        let err = files
            .owner(&known("veth0"))
            .expect_err("ifupdown unreadable");
        assert!(err.starts_with("/etc/network/interfaces.d: "), "{err}");
    }

    #[test]
    fn ifupdown_owners_come_from_interfaces_and_its_drop_ins() {
        let root = tempfile::tempdir().unwrap();
        let net = root.path().join("etc/network");
        std::fs::create_dir_all(net.join("interfaces.d")).unwrap();
        std::fs::write(net.join("interfaces"), "auto lo\niface lo inet loopback\n").unwrap();
        std::fs::write(net.join("interfaces.d/eth9"), "iface eth9 inet dhcp\n").unwrap();
        let files = OwnerFiles::new(root.path());
        let owner = |name: &str| {
            let o = files.owner(&LinkId::named(name)).expect("read");
            (o.manager, o.file)
        };
        assert_eq!(
            owner("lo"),
            (
                Some(Manager::Ifupdown),
                Some("/etc/network/interfaces".into())
            )
        );
        assert_eq!(
            owner("eth9"),
            (
                Some(Manager::Ifupdown),
                Some("/etc/network/interfaces.d/eth9".into())
            )
        );
        assert_eq!(owner("eth8"), (None, None));
    }
}
