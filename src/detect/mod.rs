//! Detection: evaluates each rule's condition over a facts snapshot.
//!
//! Pure: no I/O. Logic is three-valued (Kleene): a condition over an unknown fact is
//! unknown, `any` is true if one branch is true even when others are unknown, `all` is
//! false if one branch is false. A rule whose condition is true yields a *finding*
//! carrying its *evidence* — the measured values that made it fire; a rule whose
//! condition is unknown yields a finding with status `unknown` and the reasons.
//!
//! This file holds the logic (`all`, `any`, `not`) and the dispatch; each condition
//! family has its own file: `sysctl`, `counter` (since boot, or growth over a
//! window), `kmsg` (kernel-log lines), `net` (links and qdiscs), `jvm` (heaps and OOM
//! kills), `softnet` (per-CPU receive backlog drops and budget squeezes), `conntrack`
//! (`conntrack_stat`, per-CPU connection-tracking events), `softirq` (`softirq_cpu`,
//! the busiest CPU's softirq share), `listen` (`listen_queue`, which limit caps each
//! listener's accept queue), `rx_drops` (a link's receive-drop counters grown over the
//! window, with its RX ring); sockets are plain comparisons
//! ([`compare::count`]).

pub mod compare;
pub mod conntrack;
pub mod counter;
pub mod jvm;
pub mod kmsg;
pub mod listen;
pub mod net;
pub mod rx_drops;
pub mod softirq;
pub mod softnet;
pub mod sysctl;

use crate::facts::Facts;
use crate::finding::{Finding, FindingStatus, Truth};
use crate::playbook::{Condition, LoadedPlaybook, Vars};

use compare::{Outcome, count, unknown};

/// Evaluates every rule of every playbook; returns the fired and undecided ones.
pub fn detect(playbooks: &[(&LoadedPlaybook, &Vars)], facts: &Facts) -> Vec<Finding> {
    detect_among(playbooks, facts, None)
}

/// [`detect`], of only the rules among `open`: the findings (fired and undecided) of
/// an earlier detection over a part of these facts; `None`, all rules. Exact by the
/// three-valued logic: a rule that was false while some facts were unknown is false
/// whatever their values, so more facts cannot make it fire.
pub fn detect_among(
    playbooks: &[(&LoadedPlaybook, &Vars)],
    facts: &Facts,
    open: Option<&[Finding]>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (pb, vars) in playbooks {
        for rule in &pb.playbook.rules {
            if let Some(open) = open
                && !open
                    .iter()
                    .any(|f| f.playbook == pb.playbook.name && f.rule == rule.id)
            {
                continue;
            }
            let mut outcome = Outcome::default();
            let truth = eval(&rule.detect, vars, facts, &mut outcome);
            let status = match truth {
                Truth::True => FindingStatus::Fired,
                Truth::Unknown => FindingStatus::Unknown,
                Truth::False => continue,
            };
            findings.push(Finding {
                playbook: pb.playbook.name.clone(),
                rule: rule.id.clone(),
                description: rule.description.clone(),
                status,
                evidence: outcome.evidence,
                unknown: outcome.unknown,
            });
        }
    }
    findings
}

fn eval(c: &Condition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    match c {
        Condition::All(list) => {
            let mut sub = Outcome::default();
            let mut result = Truth::True;
            for c in list {
                match eval(c, vars, facts, &mut sub) {
                    Truth::False => {
                        result = Truth::False;
                        break;
                    }
                    Truth::Unknown => result = Truth::Unknown,
                    Truth::True => {}
                }
            }
            out.unknown.extend(sub.unknown);
            if result == Truth::True {
                out.evidence.extend(sub.evidence);
            }
            result
        }
        Condition::Any(list) => {
            let mut result = Truth::False;
            // Only this `any`'s own unknowns are dropped when it holds, not those an
            // enclosing `all` gathered before it.
            let mut unknown = Vec::new();
            for c in list {
                let mut sub = Outcome::default();
                match eval(c, vars, facts, &mut sub) {
                    Truth::True => {
                        result = Truth::True;
                        out.evidence.extend(sub.evidence);
                    }
                    Truth::Unknown => {
                        if result == Truth::False {
                            result = Truth::Unknown;
                        }
                        unknown.extend(sub.unknown);
                    }
                    Truth::False => {}
                }
            }
            if result != Truth::True {
                out.unknown.extend(unknown);
            }
            result
        }
        Condition::Not(inner) => {
            let mut sub = Outcome::default();
            let truth = eval(inner, vars, facts, &mut sub);
            out.unknown.extend(sub.unknown);
            match truth {
                Truth::True => Truth::False,
                Truth::Unknown => Truth::Unknown,
                Truth::False => {
                    // The inner condition's failing tests are what made `not` hold.
                    out.evidence.extend(sub.evidence.into_iter().map(|mut e| {
                        e.test = format!("not ({})", e.test);
                        e
                    }));
                    Truth::True
                }
            }
        }
        Condition::Sysctl(s) => sysctl::eval(s, vars, facts, out),
        Condition::Counter(cnt) => counter::eval(cnt, vars, facts, out),
        Condition::Sockets(s) => count(
            &format!("TCP sockets in {}", s.state.name()),
            facts.sockets_in(s.state),
            &s.compare(),
            vars,
            out,
        ),
        Condition::JvmHeap(j) => verdict(jvm::heap_verdict(j, vars, facts), out),
        Condition::OomKill(k) => verdict(jvm::oom_verdict(k, vars, facts), out),
        Condition::Link(l) => decided(out, "links", net::eval_link(l, facts, vars)),
        Condition::Qdisc(q) => decided(out, "qdiscs", net::eval_qdisc(q, facts, vars)),
        Condition::KernelLog(k) => kmsg::eval(k, vars, facts, out),
        Condition::Softnet(s) => softnet::eval(s, vars, facts, out),
        Condition::ConntrackStat(c) => conntrack::eval(c, vars, facts, out),
        Condition::SoftirqCpu(s) => softirq::eval(s, vars, facts, out),
        Condition::ListenQueue(l) => listen::eval(l, facts, out),
        Condition::RxDrops(d) => rx_drops::eval(d, vars, facts, out),
    }
}

/// Takes over the verdict of a JVM condition.
fn verdict(v: jvm::Verdict, out: &mut Outcome) -> Truth {
    out.unknown.extend(v.unknown);
    out.evidence.extend(v.evidence);
    match v.holds {
        Some(true) => Truth::True,
        Some(false) => Truth::False,
        None => Truth::Unknown,
    }
}

fn decided(out: &mut Outcome, fact: &str, result: net::Decided) -> Truth {
    match result {
        Ok((holds, evidence)) => {
            out.evidence.extend(evidence);
            if holds { Truth::True } else { Truth::False }
        }
        Err(why) => unknown(out, fact, &why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled playbooks with their default variables, and every golden case's
    /// facts.json (its path and text).
    fn bundled_and_golden() -> (Vec<LoadedPlaybook>, Vec<Vars>, Vec<(String, String)>) {
        let playbooks = crate::playbook::load_bundled().unwrap();
        let vars = playbooks
            .iter()
            .map(|pb| Vars::defaults(&pb.playbook))
            .collect();
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let mut cases = Vec::new();
        for case in std::fs::read_dir(golden).unwrap() {
            let path = case.unwrap().path().join("facts.json");
            if let Ok(text) = std::fs::read_to_string(&path) {
                cases.push((path.display().to_string(), text));
            }
        }
        assert!(cases.len() >= 20, "{} golden cases", cases.len());
        (playbooks, vars, cases)
    }

    /// No condition reads the configuration files (`facts.config`), which the plan
    /// adds after the lazy gathering's last detection: that is what lets the plan take
    /// that detection's findings (cli::gather_lazily). Every golden case's facts, with
    /// the bundled playbooks, give the same findings with and without a configuration
    /// read from a root whose sysctl.d sets the keys those playbooks check.
    #[test]
    fn findings_do_not_depend_on_the_configuration_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etc/sysctl.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("90-x.conf"),
            "net.netfilter.nf_conntrack_max = 1\nnet.core.somaxconn = 1\n\
             net.ipv4.ip_local_port_range = 1000 1001\nnet.ipv4.tcp_tw_reuse = 0\n",
        )
        .unwrap();
        let config = crate::facts::config::gather(root.path(), &["a.service".to_owned()]);
        let (playbooks, vars, cases) = bundled_and_golden();
        let pairs: Vec<(&LoadedPlaybook, &Vars)> = playbooks.iter().zip(&vars).collect();
        let mut fired = 0;
        for (path, text) in &cases {
            let mut facts: Facts = serde_json::from_str(text).unwrap();
            facts.config = None;
            let without = detect(&pairs, &facts);
            facts.config = Some(config.clone());
            assert_eq!(detect(&pairs, &facts), without, "{path}");
            fired += without.len();
        }
        assert!(fired > 0, "no findings in {} cases", cases.len());
    }

    /// What the lazy gathering relies on (cli::gather_lazily): detecting only the rules
    /// a detection over the cheap facts left open finds what detecting every rule over
    /// all the facts finds. For every golden case, the cheap facts are its facts
    /// without the costly ones (sock_diag, kernel log, processes, samples).
    #[test]
    fn detecting_the_open_rules_finds_what_detecting_all_finds() {
        // What FactRequest::split_costly leaves to the later rounds, as facts.json keys.
        const COSTLY: [&str; 12] = [
            "counter_samples",
            "sockets",
            "kernel_log",
            "kernel_log_origin",
            "processes",
            "oom_kills",
            "listen_ports",
            "listeners",
            "rx_drop_samples",
            "softnet",
            "conntrack_stat",
            "softirq_cpus",
        ];
        let (playbooks, vars, cases) = bundled_and_golden();
        let pairs: Vec<(&LoadedPlaybook, &Vars)> = playbooks.iter().zip(&vars).collect();
        let rules: usize = playbooks.iter().map(|pb| pb.playbook.rules.len()).sum();
        let (mut skipped, mut fired_late) = (0, 0);
        for (path, text) in &cases {
            let all: Facts = serde_json::from_str(text).unwrap();
            let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
            let object = value.as_object_mut().unwrap();
            for key in COSTLY {
                object.remove(key);
            }
            let cheap: Facts = serde_json::from_value(value).unwrap();
            let open = detect(&pairs, &cheap);
            let expected = detect(&pairs, &all);
            assert_eq!(detect_among(&pairs, &all, Some(&open)), expected, "{path}");
            skipped += rules - open.len();
            // Rules the cheap facts left undecided that the costly ones made fire.
            fired_late += expected
                .iter()
                .filter(|f| f.status == FindingStatus::Fired)
                .filter(|f| {
                    open.iter().any(|o| {
                        o.rule == f.rule
                            && o.playbook == f.playbook
                            && o.status == FindingStatus::Unknown
                    })
                })
                .count();
        }
        assert!(
            skipped > 0 && fired_late > 0,
            "{skipped} rules skipped, {fired_late} fired late"
        );
    }
}
