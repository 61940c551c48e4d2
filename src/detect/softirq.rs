//! The `softirq_cpu` condition: the largest share of a CPU's time spent in softirqs
//! (since boot), compared against the condition's operands. Report-only knowledge: the
//! evidence lists every CPU with its NET_RX count and, when the condition holds, the
//! exact `perf record` of the busiest CPU's ksoftirqd thread that the field notes use
//! next, and the related signals to look at.
//!
//! Pure: no I/O.

use crate::facts::{Fact, Facts};
use crate::finding::{Evidence, Truth};
use crate::playbook::{SoftirqCpuCondition, Vars};

use super::compare::{Measured, Outcome, compare, unknown};

pub fn eval(c: &SoftirqCpuCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact = "softirq share of the busiest CPU (/proc/stat since boot; host-wide)";
    let cpus = match facts.softirq_cpus() {
        Fact::Value(cpus) => cpus,
        Fact::Unknown(why) => return unknown(out, fact, &why),
    };
    let Some(busiest) = cpus.iter().max_by(|a, b| a.share().total_cmp(&b.share())) else {
        return unknown(out, fact, "no CPUs in /proc/stat");
    };
    let per_cpu: Vec<String> = cpus
        .iter()
        .map(|c| {
            let rx = c.net_rx.map_or(String::new(), |n| format!(" NET_RX {n}"));
            format!("cpu{} {:.1}%{rx}", c.cpu, c.share() * 100.0)
        })
        .collect();
    let share = format!("{:.3}", busiest.share());
    let observed = format!("cpu{} {share} ({})", busiest.cpu, per_cpu.join(", "));
    let truth = compare(
        fact,
        &observed,
        &Measured::Number(busiest.share()),
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
