//! `tune rollback` and `tune history`: the commands that read the journals.
//!
//! Rollback takes the lock before it reads the journals and picks its transaction, so
//! a concurrent apply cannot slip in between; history takes no lock and works while
//! an apply runs. Journals that cannot be read are skipped with a warning on stderr.

use std::io::Write;
use std::path::Path;

use anyhow::{Result, anyhow};

use super::{Format, NetnsArgs, check_same_netns, exit, print_out, render, require_root};
use crate::apply::journal::{StateDir, Status};
use crate::apply::{self, SystemExecutor};
use crate::kernel::netns;

fn warn(warnings: &[String]) {
    let mut err = anstream::stderr();
    for w in warnings {
        let _ = writeln!(err, "tune: warning: {w}");
    }
}

pub(super) fn rollback(
    state_dir: &Path,
    id: Option<u64>,
    force: bool,
    asked: &NetnsArgs,
) -> Result<i32> {
    require_root("rollback")?;
    let state = StateDir::existing(state_dir)?.ok_or_else(|| {
        anyhow!(
            "no transactions in {}: nothing to roll back",
            state_dir.display()
        )
    })?;
    let lock = state.lock()?;
    let journals = state.transactions()?;
    journals.refuse_untrusted()?;
    let transaction = apply::rollback_target(&journals, id)?;
    let what = format!("transaction {}", transaction.id);
    if let Some(recorded) = &transaction.netns {
        recorded.target()?.resolve().map_err(|e| {
            anyhow!("{what} was applied in {recorded}, which cannot be entered any more ({e:#}); nothing was changed")
        })?;
    }
    check_same_netns(asked, transaction.netns.as_ref(), &what)?;
    let ns = transaction.netns.as_ref();
    let warnings = journals.warnings();
    let report = netns::run_in(ns, || {
        apply::rollback(
            &state,
            &lock,
            &mut SystemExecutor,
            &transaction,
            force,
            warnings,
        )
    })?;
    // The exit code must tell what happened even when the report cannot be printed.
    let _ = print_out(&render::report("rollback", &report));
    Ok(match report.status {
        Status::RolledBack => exit::OK,
        _ => exit::NEEDS_ATTENTION,
    })
}

pub(super) fn history(state_dir: &Path, format: Format) -> Result<i32> {
    let journals = match StateDir::existing(state_dir)? {
        Some(state) => state.transactions()?,
        None => Default::default(),
    };
    warn(&journals.warnings());
    let transactions = &journals.transactions;
    let text = match format {
        Format::Json => render::history_json(transactions)? + "\n",
        Format::Text => render::history(transactions),
    };
    print_out(&text)?;
    Ok(exit::OK)
}
