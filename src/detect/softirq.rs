//! The `softirq_cpu` condition: the largest share of a CPU's time spent in softirqs
//! over the sampling window (two readings of /proc/stat; a CPU with no tick in the
//! window has no share and is skipped), compared against the condition's operands. Report-only knowledge: the
//! evidence lists every CPU with its NET_RX count and, when the condition holds, the
//! exact `perf record` of the busiest CPU's ksoftirqd thread that the field notes use
//! next, and the related signals to look at.
//!
//! Pure: no I/O.

use crate::facts::softirq::over_window;
use crate::facts::{Fact, Facts};
use crate::finding::{Evidence, Truth};
use crate::playbook::{SoftirqCpuCondition, Vars};

use super::compare::{Measured, Outcome, compare, unknown};

pub fn eval(c: &SoftirqCpuCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact = "softirq share of the busiest CPU over the window (/proc/stat; host-wide)";
    let readings = match facts.softirq_cpus() {
        Fact::Value(r) => r,
        Fact::Unknown(why) => return unknown(out, fact, &why),
    };
    let sampled = match readings.sampled() {
        Ok(s) => s,
        Err(why) => return unknown(out, fact, why),
    };
    let Some(second) = &sampled.second else {
        return unknown(out, fact, "read once, not sampled over a window");
    };
    let (cpus, mut notes) = over_window(&sampled.first, second);
    let mut shares = Vec::new();
    for c in &cpus {
        match c.share() {
            Some(share) => shares.push((c, share)),
            None => notes.push(format!(
                "cpu{}: no tick counted in the window, skipped",
                c.cpu
            )),
        }
    }
    let Some(&(busiest, top)) = shares.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        let why = format!("no CPU has a share over the window ({})", notes.join("; "));
        return unknown(out, fact, &why);
    };
    let per_cpu: Vec<String> = shares
        .iter()
        .map(|(c, share)| {
            let rx = c.net_rx.map_or(String::new(), |n| format!(" NET_RX +{n}"));
            format!("cpu{} {:.1}%{rx}", c.cpu, share * 100.0)
        })
        .collect();
    let share = format!("{top:.3}");
    let mut observed = format!(
        "cpu{} {share} in {:.1}s ({})",
        busiest.cpu,
        sampled.window,
        per_cpu.join(", ")
    );
    if !notes.is_empty() {
        observed.push_str(&format!("; {}", notes.join("; ")));
    }
    let truth = compare(
        fact,
        &observed,
        &Measured::Number(top),
        &share,
        &c.compare(),
        vars,
        out,
    );
    if truth == Truth::True {
        let pid = busiest
            .ksoftirqd_pid
            .map_or(format!("<pid of ksoftirqd/{}>", busiest.cpu), |p| {
                p.to_string()
            });
        out.evidence.push(Evidence {
            fact: "next step".to_owned(),
            observed: format!("perf record -a -g -p {pid} -- sleep 30; perf report"),
            test: format!(
                "ksoftirqd/{} of the busiest CPU; related: the softnet and conntrack-sizing playbooks, NIC rx drops",
                busiest.cpu
            ),
        });
    }
    truth
}
