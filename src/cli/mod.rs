//! The command line: clap definitions, dispatch, exit codes.
//!
//! The only module that knows about terminals, output formats and exit codes. Errors
//! are returned up to [`run`] and printed once, with their whole chain.

mod all_netns;
mod annotate;
mod ansible;
mod confirm;
mod observe;
mod openmetrics;
mod persist;
mod render;
pub mod schema;
mod test_cmd;
mod transactions;
mod validate;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::apply::journal::{DEFAULT_STATE_DIR, StateDir, Status};
use crate::apply::{self, SystemExecutor};
use crate::facts::{self, FactRequest, Facts};
use crate::kernel::netns::{self, NetnsRecord, NetnsTarget};
use crate::plan::{self, Plan};
use crate::playbook::{self, Diagnostics, LoadedPlaybook, Vars};
use observe::ObserveArgs;

/// Exit codes (documented in the README).
pub mod exit {
    /// Success; for `plan --detailed-exitcode`: no changes pending.
    pub const OK: i32 = 0;
    /// An error; nothing was changed.
    pub const ERROR: i32 = 1;
    /// `plan --detailed-exitcode`: changes are pending, or a finding needs input.
    pub const CHANGES: i32 = 2;
    /// Apply failed; every completed step was rolled back.
    pub const ROLLED_BACK: i32 = 3;
    /// Apply or rollback failed and some step could not be undone: look at the system.
    pub const NEEDS_ATTENTION: i32 = 4;
}

#[derive(Debug, Parser)]
#[command(
    name = "tune",
    version,
    about = "Declarative remediation and tuning for Linux: detect, plan, apply, roll back."
)]
struct Cli {
    /// Where transaction journals and the apply lock live.
    #[arg(long, env = "TUNE_STATE_DIR", default_value = DEFAULT_STATE_DIR, global = true)]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what would change, with evidence. Read-only; works as any user.
    Plan(Lazy<PlanArgs>),
    /// Apply a saved plan, or plan and apply (asks first unless --yes). Needs root.
    Apply(Lazy<ApplyArgs>),
    /// Undo the last applied transaction, or the one given.
    Rollback(Lazy<RollbackArgs>),
    /// Keep a transaction applied with --confirm-within (default: the pending one).
    Confirm(Lazy<ConfirmArgs>),
    /// The watchdog of a --confirm-within apply (started by apply itself).
    #[command(hide = true)]
    Watchdog(Lazy<WatchdogArgs>),
    /// List applied transactions.
    History(Lazy<HistoryArgs>),
    /// Check playbooks: schema, meaning, and sysctl keys on this host; warn about
    /// rules that never fire, conflicting fixes, descriptions without a symptom.
    Validate(Lazy<ValidateArgs>),
    /// Run the playbook test cases of each directory (PATH/tests/<case>/: facts.json and
    /// expect.yml); one line per case, exit 1 with a diff when one fails.
    Test(Lazy<TestArgs>),
    /// Print a JSON Schema (draft-07).
    Schema(Lazy<SchemaArgs>),
    /// Print the facts the loaded playbooks need, as the engine sees them.
    Facts(Lazy<FactsArgs>),
    /// Run as an Ansible binary module: read ARGS_FILE, print one JSON result
    /// (see contrib/ansible/).
    Ansible(Lazy<AnsibleArgs>),
}

#[derive(Debug, Args)]
struct RollbackArgs {
    /// Transaction id (see `tune history`).
    id: Option<u64>,
    /// Restore the before-values even where they changed since the apply.
    #[arg(long)]
    force: bool,
    /// Rollback always returns to the namespace recorded in the journal; these
    /// only confirm it (a different namespace is refused).
    #[command(flatten)]
    netns: NetnsArgs,
}

#[derive(Debug, Args)]
struct ConfirmArgs {
    /// Transaction id (see `tune history`).
    id: Option<u64>,
}

#[derive(Debug, Args)]
struct WatchdogArgs {
    id: u64,
}

#[derive(Debug, Args)]
struct HistoryArgs {
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Playbook files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// text, github (workflow commands: annotations on the PR diff) or junit (XML).
    #[arg(long, value_enum, default_value_t = annotate::ReportFormat::Text)]
    format: annotate::ReportFormat,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Playbook directories (all their cases) or case directories. Default: `.`.
    paths: Vec<PathBuf>,
    /// Write each case's outcome into its expect.yml instead of comparing.
    #[arg(long)]
    bless: bool,
    /// text, github (workflow commands for failing cases) or junit (XML).
    #[arg(long, value_enum, default_value_t = annotate::ReportFormat::Text)]
    format: annotate::ReportFormat,
}

#[derive(Debug, Args)]
struct SchemaArgs {
    #[arg(value_enum, default_value_t = SchemaKind::Playbook)]
    kind: SchemaKind,
}

#[derive(Debug, Args)]
struct AnsibleArgs {
    /// The JSON file of module arguments Ansible passes.
    args_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FactsArgs {
    #[command(flatten)]
    sources: Sources,
    #[command(flatten)]
    observe: ObserveArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// A subcommand's arguments whose clap definitions are made only when that subcommand
/// is parsed or its help shown (`Command::defer`): every subcommand's, which a run of
/// another subcommand built and dropped for nothing (plan's, apply's and facts' are the
/// big ones).
#[derive(Debug)]
struct Lazy<T>(T);

impl<T: clap::FromArgMatches> clap::FromArgMatches for Lazy<T> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Lazy)
    }

    // The derived `from_arg_matches` clones the matches to call this one.
    fn from_arg_matches_mut(matches: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(matches).map(Lazy)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl<T: Args> Args for Lazy<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(|cmd| keep_about(cmd, T::augment_args))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(|cmd| keep_about(cmd, T::augment_args_for_update))
    }

    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

/// Runs a deferred `augment`, keeping the subcommand's own about: run eagerly, the
/// arguments came before it, and a flattened group's doc (NetnsArgs') would replace it.
fn keep_about(cmd: clap::Command, augment: fn(clap::Command) -> clap::Command) -> clap::Command {
    let about = cmd.get_about().cloned();
    let long_about = cmd.get_long_about().cloned();
    let cmd = augment(cmd);
    let cmd = match about {
        Some(about) => cmd.about(about),
        None => cmd.about(None::<&'static str>),
    };
    match long_about {
        Some(long) => cmd.long_about(long),
        None => cmd.long_about(None::<&'static str>),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// `tune plan --format`: also OpenMetrics, for node_exporter's textfile collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
    #[value(name = "openmetrics")]
    OpenMetrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SchemaKind {
    Playbook,
    Plan,
    Facts,
}

#[derive(Debug, Args)]
struct Sources {
    /// Playbook file or directory (repeatable). Default: the bundled playbooks.
    #[arg(short = 'p', long = "playbooks", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Override a playbook variable.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    #[command(flatten)]
    netns: NetnsArgs,
    #[command(flatten)]
    config: persist::ConfigArgs,
}

/// Which network namespace to work in.
#[derive(Debug, Args)]
struct NetnsArgs {
    /// Work inside the network namespace /run/netns/NAME (made by `ip netns add NAME`).
    #[arg(long, value_name = "NAME", conflicts_with = "netns_pid")]
    netns: Option<String>,
    /// Work inside the network namespace of process PID (e.g. a container's).
    #[arg(long, value_name = "PID")]
    netns_pid: Option<u32>,
}

impl NetnsArgs {
    fn given(&self) -> bool {
        self.netns.is_some() || self.netns_pid.is_some()
    }

    /// The namespace asked for, opened now to record its identity.
    fn resolve(&self) -> Result<Option<NetnsRecord>> {
        let target = match (&self.netns, self.netns_pid) {
            (Some(name), _) => NetnsTarget::Name(name.clone()),
            (None, Some(pid)) => NetnsTarget::Pid(pid),
            (None, None) => return Ok(None),
        };
        target.resolve().map(Some)
    }
}

/// Refuses when the user named a namespace other than the recorded one.
fn check_same_netns(asked: &NetnsArgs, recorded: Option<&NetnsRecord>, what: &str) -> Result<()> {
    if !asked.given() {
        return Ok(());
    }
    let asked = asked.resolve()?;
    match (asked, recorded) {
        (Some(a), Some(r)) if a.inode == r.inode => Ok(()),
        (Some(a), Some(r)) => {
            bail!("{what} belongs to {r}, not to {a}; nothing was changed")
        }
        (Some(a), None) => {
            bail!("{what} belongs to tune's own network namespace, not to {a}; nothing was changed")
        }
        (None, _) => Ok(()),
    }
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    sources: Sources,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// Exit 0 when nothing would change, 2 when changes are pending or a finding needs
    /// input, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Also write the plan as JSON to this file, for `tune apply FILE`.
    #[arg(short = 'o', long = "out", value_name = "PLAN_FILE")]
    out: Option<PathBuf>,
    /// Plan against a facts snapshot (from `tune facts --format json`) instead of this host.
    #[arg(long, value_name = "FILE")]
    facts: Option<PathBuf>,
    #[command(flatten)]
    observe: ObserveArgs,
    /// Plan every network namespace on the host (/run/netns and each one a process
    /// holds), one section each. Needs root to enter them.
    // Refused with the flags it would otherwise ignore: --persist (one host's boot
    // files cannot hold every namespace's values), --kernel-log, --sample-window.
    #[arg(long, conflicts_with_all = ["facts", "netns", "netns_pid", "persist", "kernel_log", "sample_window"])]
    all_netns: bool,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// A plan written by `tune plan -o`; applied exactly, or refused if the system drifted.
    plan_file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    sources: Sources,
    #[command(flatten)]
    confirm: confirm::ConfirmArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// Plan and apply every network namespace on the host, one transaction each.
    // Refused with the flags it would otherwise ignore, commit-confirmed's above all:
    // a user who asks for an automatic rollback must not get an apply without one.
    #[arg(long, conflicts_with_all = ["plan_file", "netns", "netns_pid", "persist", "kernel_log", "sample_window", "confirm_within", "probes", "probe_cmds", "probe_netns"])]
    all_netns: bool,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return exit::OK;
            }
            let _ = writeln!(anstream::stderr(), "tune: error: {e:#}");
            exit::ERROR
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn dispatch(cli: Cli) -> Result<i32> {
    if confirm::settles(&cli.command)
        && let Some(code) = confirm::settle_overdue(&cli.state_dir, &cli.command)?
    {
        return Ok(code);
    }
    match cli.command {
        Command::Plan(Lazy(args)) => cmd_plan(args),
        Command::Apply(Lazy(args)) => cmd_apply(&cli.state_dir, args),
        Command::Rollback(Lazy(RollbackArgs { id, force, netns })) => {
            transactions::rollback(&cli.state_dir, id, force, &netns)
        }
        Command::History(Lazy(HistoryArgs { format })) => {
            transactions::history(&cli.state_dir, format)
        }
        Command::Confirm(Lazy(ConfirmArgs { id })) => confirm::cmd_confirm(&cli.state_dir, id),
        Command::Watchdog(Lazy(WatchdogArgs { id })) => confirm::cmd_watchdog(&cli.state_dir, id),
        Command::Validate(Lazy(ValidateArgs {
            paths,
            format,
            strict,
        })) => validate::run(&paths, format, strict),
        Command::Test(Lazy(TestArgs {
            paths,
            bless,
            format,
        })) => test_cmd::run(&paths, bless, format),
        Command::Ansible(Lazy(AnsibleArgs { args_file })) => {
            ansible::run(&cli.state_dir, args_file.as_deref())
        }
        Command::Schema(Lazy(SchemaArgs { kind })) => {
            let text = match kind {
                SchemaKind::Playbook => schema::playbook_schema(),
                SchemaKind::Plan => schema::plan_schema(),
                SchemaKind::Facts => schema::facts_schema(),
            };
            print_out(&text)?;
            Ok(exit::OK)
        }
        Command::Facts(Lazy(FactsArgs {
            sources,
            observe,
            format,
        })) => {
            let set = load(&sources)?;
            let ns = sources.netns.resolve()?;
            let mut options = observe.options(ns.as_ref())?;
            let root = sources.config.root()?;
            options.root = Some(root.clone());
            let facts = netns::run_in(ns.as_ref(), || {
                let mut facts =
                    facts::gather_with(&FactRequest::for_playbooks(&set.pairs()), &options);
                persist::gather_for_snapshot(&mut facts, &root);
                Ok(facts)
            })?;
            let text = match format {
                Format::Json => serde_json::to_string_pretty(&facts)? + "\n",
                Format::Text => render::facts(&facts),
            };
            print_out(&text)?;
            Ok(exit::OK)
        }
    }
}

/// Loaded, checked playbooks with their resolved variables.
struct PlaybookSet {
    playbooks: Vec<LoadedPlaybook>,
    vars: BTreeMap<String, Vars>,
    /// The `--var`s given, recorded in saved plans.
    overrides: BTreeMap<String, String>,
}

impl PlaybookSet {
    fn pairs(&self) -> Vec<(&LoadedPlaybook, &Vars)> {
        self.playbooks
            .iter()
            .filter_map(|pb| self.vars.get(&pb.playbook.name).map(|v| (pb, v)))
            .collect()
    }

    /// What a plan made from this set in namespace `ns` records about its inputs.
    fn made_from(
        &self,
        ns: Option<&NetnsRecord>,
        facts: Option<Facts>,
        observed: Observed,
        config: &persist::ConfigArgs,
    ) -> Result<plan::MadeFrom> {
        Ok(plan::MadeFrom {
            netns: netns::identity(ns)?,
            playbooks: self
                .playbooks
                .iter()
                .map(|pb| plan::PlanPlaybook::of(&pb.source, &pb.text))
                .collect(),
            vars: self.overrides.clone(),
            facts,
            persist: config.persist,
            root: (config.root != Path::new("/")).then(|| config.root.display().to_string()),
            counter_samples: observed.counters,
            listeners: observed.listeners,
            cpu_tables: observed.cpu_tables,
            rx_drops: observed.rx_drops,
        })
    }
}

fn load(sources: &Sources) -> Result<PlaybookSet> {
    let playbooks = if sources.paths.is_empty() {
        playbook::load_bundled()?
    } else {
        playbook::load_paths(&sources.paths)?
    };
    let overrides: BTreeMap<String, String> = sources.vars.iter().cloned().collect();
    resolve_set(playbooks, &overrides)
}

/// Checks loaded playbooks with the `--var` overrides and resolves their variables.
fn resolve_set(
    playbooks: Vec<LoadedPlaybook>,
    overrides: &BTreeMap<String, String>,
) -> Result<PlaybookSet> {
    for name in overrides.keys() {
        let declared = playbooks
            .iter()
            .any(|pb| pb.playbook.variables.contains_key(name));
        if !declared {
            bail!("--var {name}: no loaded playbook declares a variable named {name:?}");
        }
    }
    let (vars, problems) = playbook::check_set(&playbooks, overrides);
    if !problems.is_empty() {
        return Err(Diagnostics(problems).into());
    }
    Ok(PlaybookSet {
        playbooks,
        vars,
        overrides: overrides.clone(),
    })
}

fn print_out(text: &str) -> Result<()> {
    let mut out = anstream::stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Reads a JSON file of ours (facts or plan) and checks its format version.
fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    format_of: impl Fn(&T) -> u32,
    supported: u32,
) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} file {}", path.display()))?;
    let value: T = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a tune {what} file", path.display()))?;
    let format = format_of(&value);
    if format != supported {
        bail!(
            "{}: {what} format {format} is not supported (expected {supported})",
            path.display()
        );
    }
    Ok(value)
}

fn read_facts_file(path: &Path) -> Result<Facts> {
    let facts = read_versioned(path, "facts", |f: &Facts| f.format, facts::FACTS_FORMAT)?;
    verify::check_time(path, "collected_at", facts.collected_at)?;
    Ok(facts)
}

/// Plans against a snapshot, or against this host's facts gathered now (with the
/// configuration under `--root` that persistence needs).
fn make_plan(
    set: &PlaybookSet,
    snapshot: Option<&Facts>,
    options: &facts::GatherOptions,
    config: &persist::ConfigArgs,
    configs: &persist::ConfigOnce,
) -> Result<Plan> {
    Ok(make_plan_sampled(set, snapshot, options, config, configs)?.0)
}

/// What [`make_plan_sampled`] observed over the sampling window of the live system:
/// the counters sampled and the listeners read meanwhile (recorded in plan files).
#[derive(Default)]
struct Observed {
    counters: BTreeMap<String, facts::Fact<facts::counters::CounterSample>>,
    listeners: Option<facts::Fact<Vec<facts::sockets::Listener>>>,
    cpu_tables: facts::cpu_tables::Recorded,
    rx_drops: Option<facts::Fact<facts::rx_drops::RxDropSamples>>,
}

fn make_plan_sampled(
    set: &PlaybookSet,
    snapshot: Option<&Facts>,
    options: &facts::GatherOptions,
    config: &persist::ConfigArgs,
    configs: &persist::ConfigOnce,
) -> Result<(Plan, Observed)> {
    let pairs = set.pairs();
    let root = config.root()?;
    let (mut facts, findings) = match snapshot {
        Some(facts) => (facts.clone(), None),
        None => {
            let (mut facts, findings) = gather_lazily(&pairs, options);
            // The configuration files are for persistence: no condition reads them.
            persist::gather(&mut facts, &root, configs);
            (facts, Some(findings))
        }
    };
    let mut plan = match findings {
        Some(findings) => plan::plan(&pairs, &facts, findings),
        None => plan::plan_from_facts(&pairs, &facts),
    };
    persist::finish(
        &mut plan,
        &pairs,
        &mut facts,
        config.persist,
        snapshot.is_some(),
    );
    let samples = if snapshot.is_some() {
        Observed::default()
    } else {
        Observed {
            cpu_tables: facts::cpu_tables::Recorded::of(&facts),
            counters: facts.counter_samples,
            listeners: facts.listeners,
            rx_drops: facts.rx_drop_samples,
        }
    };
    Ok((plan, samples))
}

/// Gathers the cheap facts, decides what rules it can, then gathers the costly facts
/// (sock_diag dumps, the kernel log, processes) only for the rules still undecided —
/// and for the rules that fired, so their evidence is complete (a conntrack rule that
/// fired on the fill ratio also shows the "table full" lines). Three-valued logic makes
/// this exact: a rule decided while a fact is unknown is decided whatever that fact's
/// value. On a healthy host the costly probes of rules that cannot fire are skipped.
/// The TCP listeners come last: `listen_queue` sits beside overflow signals that the
/// costly facts decide. Returns the findings too: each round's detection evaluates only
/// the rules the round before left fired or undecided (a false rule stays false), and
/// the last round's is the plan's when nothing was gathered after it.
fn gather_lazily(
    pairs: &[(&LoadedPlaybook, &Vars)],
    options: &facts::GatherOptions,
) -> (Facts, Vec<crate::finding::Finding>) {
    let (cheap, costly) = FactRequest::for_playbooks(pairs).split_costly();
    let (costly, last) = costly.split_listeners();
    // The growth counters' first readings come along with the cheap counters when
    // they sit in the same files, so a costly round that samples them reads no file
    // again (its window starts at that reading).
    let growth: BTreeSet<String> = costly.counter_growth.keys().cloned().collect();
    let (mut facts, prefetched) = facts::gather_first(&cheap, options, &growth);
    // The findings of the last detection, and whether facts were gathered since.
    let mut open: Option<Vec<crate::finding::Finding>> = None;
    let mut stale = true;
    for later in [costly, last] {
        if later.is_empty() {
            continue;
        }
        // `detect` returns only the rules that fired or are undecided.
        let now = crate::detect::detect_among(pairs, &facts, open.as_deref());
        let needed = FactRequest::for_rules(pairs, |pb, rule| {
            now.iter().any(|f| f.playbook == pb && f.rule == rule)
        })
        .intersect(&later);
        stale = !needed.is_empty();
        if stale {
            facts.merge(facts::gather_more(&needed, options, Some(&prefetched)));
        }
        open = Some(now);
    }
    let findings = match open {
        Some(findings) if !stale => findings,
        open => crate::detect::detect_among(pairs, &facts, open.as_deref()),
    };
    (facts, findings)
}

fn cmd_plan(args: PlanArgs) -> Result<i32> {
    if args.all_netns {
        return all_netns::cmd_plan(&args);
    }
    let set = load(&args.sources)?;
    let ns = args.sources.netns.resolve()?;
    if ns.is_some() && args.facts.is_some() {
        bail!("--facts replays a snapshot; it cannot be combined with --netns or --netns-pid");
    }
    if args.observe.sample_window.is_some() && args.facts.is_some() {
        bail!(
            "--facts replays a snapshot (its counter samples included); it cannot be combined with --sample-window"
        );
    }
    let mut options = args.observe.options(ns.as_ref())?;
    options.root = Some(args.sources.config.root()?);
    let mut snapshot = args.facts.as_deref().map(read_facts_file).transpose()?;
    // A snapshot with a saved kernel log: the log's lines replace the snapshot's, read
    // as of the snapshot's time (playbook test cases, post-mortems of a dead host).
    if let Some(facts) = &mut snapshot
        && options.kernel_log.is_some()
    {
        facts::replay_kernel_log(facts, &FactRequest::for_playbooks(&set.pairs()), &options);
    }
    let (mut plan, samples) = netns::run_in(ns.as_ref(), || {
        make_plan_sampled(
            &set,
            snapshot.as_ref(),
            &options,
            &args.sources.config,
            &Default::default(),
        )
    })?;
    // What the plan was made from (each playbook's text and SHA-256, the samples) is
    // for a plan that is kept or read by a program; the text and OpenMetrics reports
    // do not show it, so they do not compute it.
    if args.out.is_some() || matches!(args.format, PlanFormat::Json) {
        plan.made_from =
            Some(set.made_from(ns.as_ref(), snapshot, samples, &args.sources.config)?);
    }
    plan.netns = ns;
    if let Some(path) = &args.out {
        write_plan_file(path, &plan)?;
    }
    let text = match args.format {
        PlanFormat::Json => serde_json::to_string_pretty(&plan)? + "\n",
        PlanFormat::Text => render::plan(&plan, set.playbooks.len()),
        PlanFormat::OpenMetrics => {
            let label = plan.netns.as_ref().map(openmetrics::netns_label);
            let planned = openmetrics::Planned {
                netns: label.as_deref(),
                plan: &plan,
            };
            openmetrics::render(&[planned], &[])
        }
    };
    print_out(&text)?;
    Ok(if !plan.errors.is_empty() {
        exit::ERROR
    } else if args.detailed_exitcode && (!plan.changes.is_empty() || plan.needs_input()) {
        exit::CHANGES
    } else {
        exit::OK
    })
}

fn write_plan_file(path: &Path, plan: &Plan) -> Result<()> {
    let text = serde_json::to_string_pretty(plan)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write plan to {}", path.display()))
}

fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!(
            "tune {what} needs root (it writes /proc/sys and {DEFAULT_STATE_DIR}); you are uid {euid}. Nothing was changed."
        );
    }
    Ok(())
}

fn cmd_apply(state_dir: &Path, args: ApplyArgs) -> Result<i32> {
    if args.all_netns {
        return all_netns::cmd_apply(state_dir, &args);
    }
    require_root("apply")?;
    let plan = match &args.plan_file {
        Some(path) => {
            if !args.sources.paths.is_empty()
                || !args.sources.vars.is_empty()
                || args.observe.given()
                || args.sources.config.persist
            {
                bail!(
                    "a saved plan is applied exactly as reviewed; -p, --var, --kernel-log, --sample-window and --persist cannot be combined with PLAN_FILE"
                );
            }
            let refused = || format!("{} is refused; nothing was changed", path.display());
            let plan = verify::read_plan_file(path).with_context(refused)?;
            let host = facts::hostname();
            if plan.hostname != host {
                bail!(
                    "{} was made on host {:?}, this is {host:?}; nothing was changed",
                    path.display(),
                    plan.hostname
                );
            }
            check_same_netns(
                &args.sources.netns,
                plan.made_from.as_ref().map(|m| &m.netns),
                &format!("the plan {}", path.display()),
            )?;
            let recorded = verify::recorded(path, &plan).with_context(refused)?;
            // The kernel log's scope (host-wide, a container's memcg) follows the
            // namespace the plan was made in, as it did when it was made.
            let mut options = args.observe.options(Some(&recorded.netns))?;
            options.recorded_samples = plan.made_from.as_ref().map(|m| m.counter_samples.clone());
            options.root = Some(recorded.config.root()?);
            options.recorded_listeners = plan.made_from.as_ref().and_then(|m| m.listeners.clone());
            options.recorded_tables = plan.made_from.as_ref().map(|m| m.cpu_tables.clone());
            options.recorded_rx_drops = plan.made_from.as_ref().and_then(|m| m.rx_drops.clone());
            verify::rederive(path, &plan, &recorded, &options).with_context(refused)?;
            print_out(&render::plan(&plan, recorded.set.playbooks.len()))?;
            print_out(&format!(
                "\nRe-derived in {} from the playbooks it records:\n  {}\n",
                recorded.netns,
                recorded.provenance.join("\n  ")
            ))?;
            plan
        }
        None => {
            let set = load(&args.sources)?;
            let ns = args.sources.netns.resolve()?;
            let mut options = args.observe.options(ns.as_ref())?;
            options.root = Some(args.sources.config.root()?);
            let (mut plan, samples) = netns::run_in(ns.as_ref(), || {
                make_plan_sampled(
                    &set,
                    None,
                    &options,
                    &args.sources.config,
                    &Default::default(),
                )
            })?;
            plan.made_from =
                Some(set.made_from(ns.as_ref(), None, samples, &args.sources.config)?);
            plan.netns = ns;
            print_out(&render::plan(&plan, set.playbooks.len()))?;
            plan
        }
    };
    if !plan.errors.is_empty() {
        bail!(
            "the plan has errors and cannot be applied:\n  {}",
            plan.errors.join("\n  ")
        );
    }
    if plan.changes.is_empty() {
        print_out(&render::nothing_to_apply(&plan))?;
        return Ok(exit::OK);
    }
    if !args.yes && !confirm(plan.changes.len())? {
        print_out("Not applied.\n")?;
        return Ok(exit::OK);
    }
    // Persisted files would survive a reboot before the confirm, and the watchdog's
    // rollback would then race the boot: refused until they can be written at confirm
    // time (the `on_confirmed` hook of apply::confirm).
    if args.confirm.confirms()
        && plan.changes.iter().any(|c| {
            matches!(
                &c.mutation,
                plan::Mutation::File {
                    role: plan::mutation::FileRole::SysctlD
                        | plan::mutation::FileRole::ModulesLoad
                        | plan::mutation::FileRole::NetworkDropIn,
                    ..
                }
            )
        })
    {
        bail!(
            "--confirm-within cannot be combined with persisted configuration files (--persist): they would be written before the confirm, so a reboot before it would keep the change; apply without --persist under --confirm-within, then persist after confirming. Nothing was changed"
        );
    }
    let mut checks = confirm::preflight(&args.confirm, state_dir)?;
    let state = StateDir::open(state_dir)?;
    // The namespace the plan was made in, also when none was named, so the journal
    // (and rollback) know it.
    let recorded = plan.made_from.as_ref().map(|m| m.netns.clone());
    let ns = recorded.as_ref().or(plan.netns.as_ref());
    let report = netns::run_in(ns, || {
        apply::apply(
            &state,
            &mut SystemExecutor,
            &plan.hostname,
            ns,
            &plan.changes,
        )
    })?;
    confirm::arm(&state, &mut checks, &report)?;
    // The exit code must tell what happened even when the report cannot be printed.
    let _ = print_out(&render::report("apply", &report));
    Ok(match report.status {
        Status::Applied => confirm::after_apply(&state, &checks, report.transaction)?,
        Status::FailedRolledBack => exit::ROLLED_BACK,
        _ => exit::NEEDS_ATTENTION,
    })
}

fn confirm(n: usize) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "standard input is not a terminal, so tune cannot ask before applying {n} change(s); review it first (`tune plan -o FILE`, then `tune apply --yes FILE` applies exactly that) or pass --yes to apply without asking. Nothing was changed."
        );
    }
    let mut err = anstream::stderr();
    write!(err, "Apply {n} change(s)? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    stdin.read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
