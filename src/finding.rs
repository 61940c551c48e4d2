//! The words every stage shares: a rule's *finding*, the *evidence* that made it fire,
//! its status, and the three-valued [`Truth`] conditions evaluate to.
//!
//! Defined once here so that `detect` (which makes findings), `plan` (which carries
//! them into changes), `apply` (which journals their evidence) and `cli` (which shows
//! them) name the same types without importing each other.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A measured value that took part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// What was measured, e.g. `sysctl net.core.somaxconn`.
    pub fact: String,
    /// The value seen.
    pub observed: String,
    /// The test it was put to, e.g. `width 51 < 10000`.
    pub test: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// The rule's condition holds.
    Fired,
    /// The condition could not be decided: a fact it needs is unknown.
    Unknown,
}

/// A rule that fired, or could not be decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub playbook: String,
    pub rule: String,
    pub description: String,
    pub status: FindingStatus,
    pub evidence: Vec<Evidence>,
    /// Why facts were unknown (status `unknown`), e.g. `sysctl ...: permission denied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

/// The three-valued (Kleene) truth of a condition: unknown when a fact it needs is
/// unknown and the rest does not decide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}
