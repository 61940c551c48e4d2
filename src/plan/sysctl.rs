//! Planning of `set_sysctl`: the value a sysctl should have, from the value measured
//! (or the one an earlier change in the plan leaves) and the action's mode.
//!
//! Pure: no I/O. `at_least` never lowers, `at_most` never raises, `widen_to` never
//! narrows; two different exact values for one key are an error.
//!
//! Widening `net.ipv4.ip_local_port_range` over ports that services listen on would
//! let an outgoing connection take such a port while its service is down, so that the
//! service cannot bind it when it restarts. The plan therefore first adds those ports
//! to `net.ipv4.ip_local_reserved_ports` (merged with the ports already there), then
//! widens: the kernel never hands out a reserved port as an ephemeral one, while
//! bind(2) on it still works. When the listening ports cannot be read, the widening
//! is refused rather than guessed.

use std::collections::BTreeSet;

use crate::domain::ports;
use crate::facts::sockets::{PORT_RANGE, RESERVED_PORTS, widens_port_range};
use crate::facts::{Fact, Facts};
use crate::finding::Evidence;
use crate::kernel::sysctl::{normalize, parse_range, same_key};
use crate::playbook::{SetMode, SetSysctl, Vars, scalar_text};

use super::mutation::{Earlier, Mutation};

/// The sysctl change a `set_sysctl` asks for, or `None` when it is already in effect.
pub fn plan_set_sysctl<'a>(
    s: &SetSysctl,
    vars: &Vars,
    facts: &Facts,
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
) -> Result<Option<Mutation>, String> {
    let measured = match facts.sysctl(&s.key) {
        Fact::Value(v) => crate::kernel::sysctl::normalize(v),
        Fact::Unknown(why) => {
            return Err(format!(
                "cannot plan {}: current value unknown ({why})",
                s.key
            ));
        }
    };
    let resource = format!("sysctl:{}", s.key);
    // An earlier rule may already plan this key: build on its after-value, and refuse
    // to overwrite an exact value with a different exact value.
    let earlier = earlier(&resource);
    let current = earlier.map_or(measured.clone(), |c| c.mutation.after());
    let (mode, operand) = s.mode()?;
    let operand = crate::kernel::sysctl::normalize(&scalar_text(operand, vars)?);
    let target = match mode {
        SetMode::Value => operand,
        SetMode::AtLeast | SetMode::AtMost => {
            let want: i64 = operand
                .parse()
                .map_err(|_| format!("{}: {operand:?} is not an integer", s.key))?;
            let have: i64 = current.parse().map_err(|_| {
                format!(
                    "{}: at_least/at_most need a single-number value, the value is {current:?}",
                    s.key
                )
            })?;
            let keep = if mode == SetMode::AtLeast {
                have >= want
            } else {
                have <= want
            };
            if keep {
                current.clone()
            } else {
                want.to_string()
            }
        }
        SetMode::WidenTo => {
            let (lo, hi) = crate::kernel::sysctl::parse_range(&operand)
                .ok_or_else(|| format!("{}: widen_to {operand:?} is not a range", s.key))?;
            let (clo, chi) = crate::kernel::sysctl::parse_range(&current).ok_or_else(|| {
                format!("{}: the value {current:?} is not a `low high` range", s.key)
            })?;
            format!("{} {}", clo.min(lo), chi.max(hi))
        }
    };
    if let Some(earlier) = earlier
        && mode == SetMode::Value
        && target != current
    {
        return Err(format!(
            "{} is set to {current:?} by {} and to {target:?} by this rule",
            s.key,
            earlier.rules.join(", ")
        ));
    }
    if target == current {
        return Ok(None);
    }
    Ok(Some(Mutation::Sysctl {
        key: s.key.clone(),
        before: measured,
        after: target,
    }))
}

/// The changes a `set_sysctl` asks for, in the order to apply them: when it widens the
/// ephemeral port range over listening ports, reserving those ports comes first.
pub fn plan_set_sysctl_reserving<'a>(
    s: &SetSysctl,
    vars: &Vars,
    facts: &Facts,
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
) -> Vec<Result<Option<Mutation>, String>> {
    let planned = plan_set_sysctl(s, vars, facts, earlier);
    let Ok(Some(Mutation::Sysctl { before, after, .. })) = &planned else {
        return vec![planned];
    };
    if !widens_port_range(s) {
        return vec![planned];
    }
    match reserve_listening(before, after, facts, earlier) {
        Ok(None) => vec![planned],
        Ok(Some(reserve)) => vec![Ok(Some(reserve)), planned],
        Err(e) => vec![Err(e)],
    }
}

/// The change to `ip_local_reserved_ports` that keeps the listening ports a widening
/// from `old` to `new` newly covers out of the ephemeral range; `None` when none are.
fn reserve_listening<'a>(
    old: &str,
    new: &str,
    facts: &Facts,
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
) -> Result<Option<Mutation>, String> {
    let refuse = |why: String| {
        format!(
            "cannot widen {PORT_RANGE} from {old:?} to {new:?}: {why}; a service restarting later could find its port taken by an outgoing connection"
        )
    };
    let range = |text: &str| {
        parse_range(text).ok_or_else(|| refuse(format!("{text:?} is not a `low high` range")))
    };
    let ((olo, ohi), (nlo, nhi)) = (range(old)?, range(new)?);
    let listening = match &facts.listen_ports {
        Some(Fact::Value(ports)) => ports,
        Some(Fact::Unknown(why)) => {
            return Err(refuse(format!("the listening ports are unknown ({why})")));
        }
        None => return Err(refuse("the listening ports were not gathered".to_owned())),
    };
    let covered: BTreeSet<u16> = listening
        .iter()
        .copied()
        .filter(|&p| {
            let p = i64::from(p);
            (nlo..=nhi).contains(&p) && !(olo..=ohi).contains(&p)
        })
        .collect();
    if covered.is_empty() {
        return Ok(None);
    }
    let measured = match facts.sysctl(RESERVED_PORTS) {
        Fact::Value(v) => normalize(v),
        Fact::Unknown(why) => {
            return Err(refuse(format!("{RESERVED_PORTS} is unknown ({why})")));
        }
    };
    let resource = format!("sysctl:{RESERVED_PORTS}");
    let current = earlier(&resource).map_or(measured.clone(), |c| c.mutation.after());
    let mut reserved =
        ports::parse(&current).map_err(|e| refuse(format!("{RESERVED_PORTS}: {e}")))?;
    let before = reserved.len();
    reserved.extend(covered);
    if reserved.len() == before {
        return Ok(None);
    }
    Ok(Some(Mutation::Sysctl {
        key: RESERVED_PORTS.to_owned(),
        before: measured,
        after: ports::format(&reserved),
    }))
}

/// For a change that reserves ports, the evidence naming them.
pub fn reserved_ports_evidence(m: &Mutation) -> Option<Evidence> {
    let Mutation::Sysctl { key, before, after } = m else {
        return None;
    };
    if !same_key(key, RESERVED_PORTS) {
        return None;
    }
    let (Ok(before), Ok(after)) = (ports::parse(before), ports::parse(after)) else {
        return None;
    };
    let added: BTreeSet<u16> = after.difference(&before).copied().collect();
    Some(Evidence {
        fact: "TCP LISTEN sockets (sock_diag)".to_owned(),
        observed: format!("port(s) {}", ports::format(&added)),
        test: format!("inside the widened {PORT_RANGE}, so reserved first"),
    })
}
