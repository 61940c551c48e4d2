//! Mutations: one resource going from an exact before-state to an after-state, with
//! the names, labels and inverse that journal, rollback and rendering use.
//!
//! Pure: no I/O.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::qdisc::QdiscSpec;

/// What changes, with the exact before and after values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mutation {
    Sysctl {
        key: String,
        before: String,
        after: String,
    },
    /// A configuration file, whole: its exact content before and after (`null`: the
    /// file does not exist). What reads it is its [`FileRole`]: an environment file
    /// takes effect when the program reading it restarts, a sysctl.d file at boot.
    /// (Plans and journals written before roles existed call it `env_file`.)
    #[serde(alias = "env_file")]
    File {
        /// The file's path (under `--root`; symlinks resolved at apply time).
        path: String,
        /// Who reads the file; absent: an environment file.
        #[serde(default, skip_serializing_if = "FileRole::is_env")]
        role: FileRole,
        /// The variables or keys this change sets.
        keys: Vec<String>,
        before: Option<String>,
        after: Option<String>,
        /// When the change takes effect, as shown in the plan (absent: the default of
        /// the role).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effect: Option<String>,
    },
    /// A link's MTU. The link is identified by index and name; a link that vanished
    /// or was renamed since the plan is an error, not a change to some other link.
    LinkMtu {
        link: String,
        ifindex: u32,
        before: u32,
        after: u32,
    },
    /// A link's RX ring size (ethtool netlink), identified like [`Mutation::LinkMtu`].
    RxRing {
        link: String,
        ifindex: u32,
        before: u32,
        after: u32,
    },
    /// A link's root qdisc: `None` is the kernel's default root qdisc. Deleting
    /// keeps the whole qdisc (kind, handle, parent, raw options) as `before`, so the
    /// inverse re-creates it exactly.
    RootQdisc {
        link: String,
        ifindex: u32,
        before: Option<QdiscSpec>,
        after: Option<QdiscSpec>,
    },
}

fn qdisc_label(spec: &Option<QdiscSpec>) -> String {
    spec.as_ref()
        .map_or_else(|| crate::domain::qdisc::NONE.to_owned(), QdiscSpec::short)
}

fn qdisc_text(spec: &Option<QdiscSpec>) -> String {
    spec.as_ref().map_or_else(
        || crate::domain::qdisc::NONE.to_owned(),
        QdiscSpec::canonical,
    )
}

/// Who reads a configuration file, which decides its resource name and when the
/// change takes effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// A `KEY=VALUE` environment file read by a service (resource `envfile:PATH`).
    #[default]
    Env,
    /// A sysctl.d file read at boot by systemd-sysctl and `sysctl --system`.
    SysctlD,
    /// A modules-load.d file read at boot by systemd-modules-load.
    ModulesLoad,
    /// A systemd unit drop-in (`UNIT.d/NAME.conf`).
    UnitDropIn,
    /// A systemd-networkd `.network` drop-in.
    NetworkDropIn,
}

impl FileRole {
    pub fn is_env(&self) -> bool {
        *self == FileRole::Env
    }

    /// The prefix of the resource name.
    pub fn resource_prefix(self) -> &'static str {
        match self {
            FileRole::Env => "envfile",
            _ => "file",
        }
    }

    /// When a change to such a file takes effect, unless the change says better.
    pub fn default_effect(self) -> &'static str {
        match self {
            FileRole::Env => "takes effect when the JVM (the service reading this file) restarts",
            FileRole::SysctlD => {
                "read at boot by systemd-sysctl and `sysctl --system`; the runtime value is set above"
            }
            FileRole::ModulesLoad => "read at boot by systemd-modules-load",
            FileRole::UnitDropIn => {
                "takes effect when the unit restarts (after `systemctl daemon-reload`)"
            }
            FileRole::NetworkDropIn => {
                "read by systemd-networkd when it (re)configures the link; the runtime value is set above"
            }
        }
    }
}

/// The canonical form of "the file does not exist" in [`Mutation::before`] /
/// [`Mutation::after`]. Files holding NUL bytes are refused, so no content equals it.
pub const ABSENT: &str = "\u{0}(absent)";

fn file_state(content: &Option<String>) -> String {
    content.clone().unwrap_or_else(|| ABSENT.to_owned())
}

impl Mutation {
    /// A stable name for the resource, e.g. `sysctl:net.core.somaxconn`.
    pub fn resource(&self) -> String {
        match self {
            Mutation::Sysctl { key, .. } => format!("sysctl:{key}"),
            Mutation::File { path, role, .. } => format!("{}:{path}", role.resource_prefix()),
            Mutation::LinkMtu { link, .. } => format!("link:{link}"),
            Mutation::RxRing { link, .. } => format!("ring:{link}"),
            Mutation::RootQdisc { link, .. } => format!("qdisc:{link} root"),
        }
    }

    /// The state before, as shown to people and compared when checking for drift.
    pub fn before(&self) -> String {
        match self {
            Mutation::Sysctl { before, .. } => before.clone(),
            Mutation::File { before, .. } => file_state(before),
            Mutation::LinkMtu { before, .. } => format!("mtu {before}"),
            Mutation::RxRing { before, .. } => format!("rx {before}"),
            Mutation::RootQdisc { before, .. } => qdisc_text(before),
        }
    }

    pub fn after(&self) -> String {
        match self {
            Mutation::Sysctl { after, .. } => after.clone(),
            Mutation::LinkMtu { after, .. } => format!("mtu {after}"),
            Mutation::RxRing { after, .. } => format!("rx {after}"),
            Mutation::RootQdisc { after, .. } => qdisc_text(after),
            Mutation::File { after, .. } => file_state(after),
        }
    }

    /// [`Mutation::before`] as one short line for logs and history.
    pub fn before_label(&self) -> String {
        match self {
            Mutation::File { before, .. } => label(before.as_deref()),
            Mutation::RootQdisc { before, .. } => qdisc_label(before),
            _ => self.before(),
        }
    }

    /// [`Mutation::after`] as one short line for logs and history.
    pub fn after_label(&self) -> String {
        match self {
            Mutation::File { after, .. } => label(after.as_deref()),
            Mutation::RootQdisc { after, .. } => qdisc_label(after),
            _ => self.after(),
        }
    }

    /// The mutation that undoes this one.
    pub fn inverse(&self) -> Mutation {
        match self {
            Mutation::Sysctl { key, before, after } => Mutation::Sysctl {
                key: key.clone(),
                before: after.clone(),
                after: before.clone(),
            },
            Mutation::File {
                path,
                role,
                keys,
                before,
                after,
                effect,
            } => Mutation::File {
                path: path.clone(),
                role: *role,
                keys: keys.clone(),
                before: after.clone(),
                after: before.clone(),
                effect: effect.clone(),
            },
            Mutation::LinkMtu {
                link,
                ifindex,
                before,
                after,
            } => Mutation::LinkMtu {
                link: link.clone(),
                ifindex: *ifindex,
                before: *after,
                after: *before,
            },
            Mutation::RxRing {
                link,
                ifindex,
                before,
                after,
            } => Mutation::RxRing {
                link: link.clone(),
                ifindex: *ifindex,
                before: *after,
                after: *before,
            },
            Mutation::RootQdisc {
                link,
                ifindex,
                before,
                after,
            } => Mutation::RootQdisc {
                link: link.clone(),
                ifindex: *ifindex,
                before: after.clone(),
                after: before.clone(),
            },
        }
    }
}

/// What earlier changes in the same plan leave a resource as, and which rules asked
/// for them: a later fix builds on that after-value rather than on the measured one.
#[derive(Clone, Copy)]
pub struct Earlier<'a> {
    pub mutation: &'a Mutation,
    pub rules: &'a [String],
}

/// A file's state in one short line: `(absent)` or its size.
pub fn label(content: Option<&str>) -> String {
    match content {
        None => "(absent)".to_owned(),
        Some(c) => format!("{} line(s), {} bytes", c.lines().count(), c.len()),
    }
}
