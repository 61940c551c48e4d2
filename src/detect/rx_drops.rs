//! The `rx_drops` condition: the growth of a link's receive-drop counters over the
//! sampling window, with its RX ring against the driver's maximum.
//!
//! Pure: no I/O (the readings were taken by `facts::rx_drops`, the rings by
//! `facts::ring`). Only the growth between the two readings counts, never the value
//! since the device was created. A snapshot without the second reading (older than
//! this condition) is unknown, never a guess. `plan::ring` uses [`matched_links`] to
//! choose the links a `set_rx_ring` raises.

use crate::facts::counters::min_growth;
use crate::facts::ring::RingSizes;
use crate::facts::rx_drops::{LinkDropSample, RxDropSamples, growth, value};
use crate::facts::{Fact, Facts, NOT_GATHERED};
use crate::finding::{Evidence, Truth};
use crate::playbook::{RingState, RxDropStat, RxDropsCondition, Vars};

use super::compare::{Measured, Outcome, compare, unknown};
use super::net::pattern;

/// How one link fared.
enum Verdict {
    Matched(Evidence),
    /// Did not match; the reason, for the summary when nothing matched.
    Quiet,
    Unknown(String),
}

fn samples(facts: &Facts) -> Result<&RxDropSamples, String> {
    match &facts.rx_drop_samples {
        Some(Fact::Value(s)) => Ok(s),
        Some(Fact::Unknown(why)) => Err(why.clone()),
        None if !matches!(&facts.links, Fact::Unknown(w) if w == NOT_GATHERED) => Err(
            "the facts hold one reading of the link drop counters, not two a window apart (a snapshot older than rx_drops sampling?): growth cannot be told; take it again with `tune facts`".to_owned(),
        ),
        None => Err(NOT_GATHERED.to_owned()),
    }
}

fn ring_text(r: &RingSizes) -> String {
    format!("rx ring {} of max {}", r.rx, r.rx_max)
}

/// The growth of one link's counter, in words: which counter grew by how much.
fn grew_text(
    link: &LinkDropSample,
    second: &crate::facts::net::RxDrops,
    stat: RxDropStat,
    window: f64,
) -> String {
    let one = |name: &str, a: u64, b: u64| {
        format!("{name} grew by {} in {window:.1} s", b.saturating_sub(a))
    };
    match stat {
        RxDropStat::Ring => {
            let missed = (link.first.rx_missed_errors, second.rx_missed_errors);
            let fifo = (link.first.rx_fifo_errors, second.rx_fifo_errors);
            if fifo.1.saturating_sub(fifo.0) > missed.1.saturating_sub(missed.0) {
                one("rx_fifo_errors", fifo.0, fifo.1)
            } else {
                one("rx_missed_errors", missed.0, missed.1)
            }
        }
        _ => one(stat.name(), value(&link.first, stat), value(second, stat)),
    }
}

fn judge(
    c: &RxDropsCondition,
    link: &LinkDropSample,
    s: &RxDropSamples,
    facts: &Facts,
    vars: &Vars,
    least: u64,
) -> Verdict {
    let since = value(&link.first, c.stat);
    let Some(second) = &link.second else {
        if s.sampled || since < least {
            // Gone or re-created during the window, or could not have grown enough.
            return Verdict::Quiet;
        }
        return Verdict::Unknown(format!(
            "link {}: {} is {since} since the device was created and was not sampled",
            link.name,
            c.stat.name()
        ));
    };
    let Some(grew) = growth(&link.first, second, c.stat) else {
        return Verdict::Unknown(format!(
            "link {}: {} went down during the window (the driver reset its statistics)",
            link.name,
            c.stat.name()
        ));
    };
    let observed = grew_text(link, second, c.stat, s.window);
    let fact = format!("link {} receive drops", link.name);
    let mut sub = Outcome::default();
    let label = format!("+{grew}");
    let truth = compare(
        &fact,
        &observed,
        &Measured::Number(grew as f64),
        &label,
        &c.compare(),
        vars,
        &mut sub,
    );
    match truth {
        Truth::False => return Verdict::Quiet,
        Truth::Unknown => return Verdict::Unknown(sub.unknown.join("; ")),
        Truth::True => {}
    }
    let Some(mut evidence) = sub.evidence.pop() else {
        return Verdict::Quiet;
    };
    let ring = facts.rings.get(&link.name);
    if let Some(Fact::Value(Some(r))) = ring {
        evidence.observed = format!("{} ({})", evidence.observed, ring_text(r));
    }
    let Some(want) = c.ring else {
        return Verdict::Matched(evidence);
    };
    match ring {
        None => Verdict::Unknown(format!("rings of {}: not gathered", link.name)),
        Some(Fact::Unknown(why)) => Verdict::Unknown(format!("rings of {}: {why}", link.name)),
        // No ring parameters (veth, loopback, bridges): no ring to be in any state.
        Some(Fact::Value(None)) => Verdict::Quiet,
        Some(Fact::Value(Some(r))) => {
            let below = r.rx < r.rx_max;
            let holds = match want {
                RingState::BelowMax => below,
                RingState::AtMax => !below,
            };
            if !holds {
                return Verdict::Quiet;
            }
            let sign = if below { "<" } else { "=" };
            evidence.test = format!(
                "{}, rx ring {} {sign} max {}",
                evidence.test, r.rx, r.rx_max
            );
            Verdict::Matched(evidence)
        }
    }
}

/// The samples, and each selected link with its verdict.
type Judged<'a> = (&'a RxDropSamples, Vec<(&'a LinkDropSample, Verdict)>);

/// Each selected link's verdict.
fn verdicts<'a>(c: &RxDropsCondition, facts: &'a Facts, vars: &Vars) -> Result<Judged<'a>, String> {
    let s = samples(facts)?;
    let glob = pattern(&c.link, vars)?;
    let least = min_growth(&c.compare(), vars);
    Ok((
        s,
        s.links
            .iter()
            .filter(|l| glob.matches(&l.name))
            .map(|l| (l, judge(c, l, s, facts, vars, least)))
            .collect(),
    ))
}

/// The links (ifindex, name) an `rx_drops` condition matched.
pub fn matched_links(
    c: &RxDropsCondition,
    facts: &Facts,
    vars: &Vars,
) -> Result<Vec<(u32, String)>, String> {
    let (_, all) = verdicts(c, facts, vars)?;
    Ok(all
        .into_iter()
        .filter(|(_, v)| matches!(v, Verdict::Matched(_)))
        .map(|(l, _)| (l.index, l.name.clone()))
        .collect())
}

/// Evaluates an `rx_drops` condition: true when a link matches; else unknown when a
/// link could not be decided; else false, with a summary.
pub fn eval(c: &RxDropsCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let glob = crate::playbook::expand(&c.link, vars).unwrap_or_else(|_| c.link.clone());
    let what = format!("receive drops ({}) on links {glob:?}", c.stat.name());
    let (s, all) = match verdicts(c, facts, vars) {
        Ok(v) => v,
        Err(why) => return unknown(out, &what, &why),
    };
    let selected = all.len();
    let mut matched = Vec::new();
    let mut undecided = Vec::new();
    for (_, v) in all {
        match v {
            Verdict::Matched(e) => matched.push(e),
            Verdict::Unknown(why) => undecided.push(why),
            Verdict::Quiet => {}
        }
    }
    if !matched.is_empty() {
        out.evidence.extend(matched);
        return Truth::True;
    }
    if !undecided.is_empty() {
        out.unknown
            .extend(undecided.into_iter().map(|u| format!("{what}: {u}")));
        return Truth::Unknown;
    }
    let observed = if s.sampled {
        format!("{selected} link(s) sampled over {:.1} s", s.window)
    } else {
        format!("{selected} link(s), not sampled")
    };
    let test = if s.sampled {
        let ring = match c.ring {
            Some(RingState::BelowMax) => " with an RX ring below its maximum",
            Some(RingState::AtMax) => " with an RX ring at its maximum",
            None => "",
        };
        format!("none grew as the condition asks{ring}")
    } else {
        format!(
            "no link dropped {} or more since the device was created",
            min_growth(&c.compare(), vars)
        )
    };
    out.evidence.push(Evidence {
        fact: what,
        observed,
        test,
    });
    Truth::False
}
