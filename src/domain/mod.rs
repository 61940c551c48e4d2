//! Pure knowledge that depends on no stage: HotSpot's heap arithmetic, `KEY=VALUE`
//! file editing, plain-text log patterns, port lists, qdisc data and netem options, times from files shown
//! without panicking.
//!
//! Nothing here does I/O or names `facts`, `detect`, `plan`, `apply`, `cli` or
//! `playbook`; every stage may use it.

pub mod env_dialect;
pub mod envfile;
pub mod jvm;
pub mod log_pattern;
pub mod ports;
pub mod qdisc;
pub mod sysctl_conf;
pub mod time;
pub mod unit;
