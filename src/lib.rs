//! `tune`: a declarative remediation and tuning engine for Linux.
//!
//! Data flows one way: playbooks + facts → findings → plan → apply (journal) → verify.
//! See ARCHITECTURE.md for the code map and the invariants of each module.

pub mod apply;
pub mod cli;
pub mod detect;
pub mod domain;
pub mod facts;
pub mod finding;
pub mod kernel;
pub mod plan;
pub mod playbook;
