//! The `listen_queue` condition: which limit caps the accept queue of a TCP listener,
//! its own listen(2) backlog or net.core.somaxconn. The kernel keeps only the result,
//! min(backlog, somaxconn) as `sk_max_ack_backlog` (sock_diag's `idiag_wqueue`), so a
//! backlog equal to somaxconn means the application asked for at least that much, and
//! one below it is the application's own choice. The listeners looked at are the
//! ones whose accept queue is full now; when none is (the burst has passed), every
//! listener, and the evidence says so. Each one is named with its owner and port.
//!
//! Pure: no I/O.

use crate::facts::sockets::{Listener, SOMAXCONN};
use crate::facts::{Fact, Facts};
use crate::finding::{Evidence, Truth};
use crate::playbook::{ListenLimit, ListenQueueCondition};

use super::compare::{Outcome, unknown};

/// The limit that caps `l`'s accept queue under the current somaxconn.
pub fn limit_of(l: &Listener, somaxconn: u64) -> ListenLimit {
    if u64::from(l.backlog) == somaxconn {
        ListenLimit::Somaxconn
    } else {
        ListenLimit::OwnBacklog
    }
}

/// "nginx (pid 1234) listens on :80 with backlog 128, capped by somaxconn 128 ...".
pub fn describe(l: &Listener, somaxconn: u64) -> String {
    let who = l.owner.as_ref().map_or_else(
        || "an unknown process".to_owned(),
        |o| format!("{} (pid {})", o.comm, o.pid),
    );
    let why = match limit_of(l, somaxconn) {
        ListenLimit::Somaxconn => format!(
            ", capped by somaxconn {somaxconn} (it asked for at least {somaxconn}; the kernel does not keep the requested value)"
        ),
        ListenLimit::OwnBacklog if u64::from(l.backlog) < somaxconn => {
            format!(" (its own limit; somaxconn {somaxconn})")
        }
        ListenLimit::OwnBacklog => {
            format!(" (its own limit, set when somaxconn was higher; somaxconn now {somaxconn})")
        }
    };
    format!(
        "{who} listens on {} with backlog {}{why}",
        l.endpoint(),
        l.backlog
    )
}

pub fn eval(c: &ListenQueueCondition, facts: &Facts, out: &mut Outcome) -> Truth {
    let listeners = match facts.listeners() {
        Fact::Value(l) => l,
        Fact::Unknown(why) => return unknown(out, "TCP listeners (sock_diag)", &why),
    };
    let key = format!("sysctl {SOMAXCONN}");
    let somaxconn = match facts.sysctl(SOMAXCONN) {
        Fact::Value(v) => match v.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => return unknown(out, &key, &format!("not a number: {v:?}")),
        },
        Fact::Unknown(why) => return unknown(out, &key, &why),
    };
    let full: Vec<&Listener> = listeners.iter().filter(|l| l.full()).collect();
    let any_full = !full.is_empty();
    let looked: Vec<&Listener> = if any_full {
        full
    } else {
        listeners.iter().collect()
    };
    let matching: Vec<&Listener> = looked
        .into_iter()
        .filter(|l| limit_of(l, somaxconn) == c.limit)
        .collect();
    if matching.is_empty() {
        return Truth::False;
    }
    for l in matching {
        let state = if any_full {
            "full now"
        } else {
            "no accept queue is full now, so every listener is named"
        };
        out.evidence.push(Evidence {
            fact: format!("TCP listener {}", l.endpoint()),
            observed: describe(l, somaxconn),
            test: format!("accept queue {} of {}: {state}", l.queued, l.backlog),
        });
    }
    Truth::True
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::sockets::SocketOwner;

    fn listener(port: u16, queued: u32, backlog: u32) -> Listener {
        Listener {
            address: "0.0.0.0".into(),
            port,
            queued,
            backlog,
            inode: 1,
            owner: Some(SocketOwner {
                pid: 1234,
                comm: "nginx".into(),
            }),
        }
    }

    #[test]
    fn describes_the_cap_and_the_own_limit() {
        assert_eq!(
            describe(&listener(80, 0, 128), 128),
            "nginx (pid 1234) listens on :80 with backlog 128, capped by somaxconn 128 (it asked for at least 128; the kernel does not keep the requested value)"
        );
        assert_eq!(
            describe(&listener(80, 0, 8), 4096),
            "nginx (pid 1234) listens on :80 with backlog 8 (its own limit; somaxconn 4096)"
        );
        let mut l = listener(80, 0, 511);
        l.owner = None;
        assert!(describe(&l, 128).starts_with(
            "an unknown process listens on :80 with backlog 511 (its own limit, set when"
        ));
    }

    fn facts(listeners: Vec<Listener>, somaxconn: &str) -> Facts {
        let mut f = Facts {
            listeners: Some(Fact::Value(listeners)),
            ..Facts::default()
        };
        f.sysctls
            .insert(SOMAXCONN.into(), Fact::Value(somaxconn.into()));
        f
    }

    #[test]
    fn only_full_queues_count_when_some_are_full() {
        // :22 is at the cap but idle; :80 overflows with its own backlog.
        let f = facts(vec![listener(22, 0, 128), listener(80, 9, 8)], "128");
        let cap = ListenQueueCondition {
            limit: ListenLimit::Somaxconn,
        };
        let own = ListenQueueCondition {
            limit: ListenLimit::OwnBacklog,
        };
        assert_eq!(eval(&cap, &f, &mut Outcome::default()), Truth::False);
        let mut out = Outcome::default();
        assert_eq!(eval(&own, &f, &mut out), Truth::True);
        assert_eq!(out.evidence.len(), 1);
        assert_eq!(out.evidence[0].test, "accept queue 9 of 8: full now");
        // Nothing full: every listener is looked at.
        let f = facts(vec![listener(22, 0, 128), listener(80, 0, 8)], "128");
        assert_eq!(eval(&cap, &f, &mut Outcome::default()), Truth::True);
    }

    #[test]
    fn unknown_without_listeners_or_somaxconn() {
        let cap = ListenQueueCondition {
            limit: ListenLimit::Somaxconn,
        };
        assert_eq!(
            eval(&cap, &Facts::default(), &mut Outcome::default()),
            Truth::Unknown
        );
        let f = facts(vec![listener(80, 9, 8)], "lots");
        assert_eq!(eval(&cap, &f, &mut Outcome::default()), Truth::Unknown);
    }
}
