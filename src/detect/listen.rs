//! The `listen_queue` condition: which limit caps the accept queue of a TCP listener,
//! its own listen(2) backlog or net.core.somaxconn. The kernel keeps only the result,
//! min(backlog, somaxconn) as `sk_max_ack_backlog` (sock_diag's `idiag_wqueue`), so a
//! backlog equal to somaxconn means the application asked for at least that much, and
//! one below it is the application's own choice. The listeners looked at are the
//! ones whose accept queue is full now; when none is (the burst has passed), the ones
//! on the ports the kernel's "Possible SYN flooding on port" lines name, if the kernel
//! log was read and some listener is on such a port; otherwise every listener, and the
//! evidence says which. Each one is named with its owner and port.
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
    let flooded = flooded_ports(facts);
    let logged: Vec<&Listener> = listeners
        .iter()
        .filter(|l| flooded.iter().any(|f| f.names(l)))
        .collect();
    let (looked, state) = if !full.is_empty() {
        (full, "full now".to_owned())
    } else if !logged.is_empty() {
        let ports: Vec<String> = flooded.iter().map(LoggedPort::to_string).collect();
        let state = format!(
            "no accept queue is full now; the kernel logged \"Possible SYN flooding\" on {}",
            ports.join(", ")
        );
        (logged, state)
    } else {
        let state = "no accept queue is full now, so every listener is named".to_owned();
        (listeners.iter().collect(), state)
    };
    let matching: Vec<&Listener> = looked
        .into_iter()
        .filter(|l| limit_of(l, somaxconn) == c.limit)
        .collect();
    if matching.is_empty() {
        return Truth::False;
    }
    for l in matching {
        out.evidence.push(Evidence {
            fact: format!("TCP listener {}", l.endpoint()),
            observed: describe(l, somaxconn),
            test: format!("accept queue {} of {}: {state}", l.queued, l.backlog),
        });
    }
    Truth::True
}

/// A listening port named by a "Possible SYN flooding on port" line: the port, and the
/// local address when the kernel printed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPort {
    pub address: Option<String>,
    pub port: u16,
}

impl LoggedPort {
    /// Whether `l` is the listener the line is about (same port, and the same address
    /// when one was logged).
    fn names(&self, l: &Listener) -> bool {
        self.port == l.port && self.address.as_ref().is_none_or(|a| *a == l.address)
    }
}

impl std::fmt::Display for LoggedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address.as_deref() {
            None | Some("0.0.0.0" | "::") => write!(f, "port {}", self.port),
            Some(a) if a.contains(':') => write!(f, "[{a}]:{}", self.port),
            Some(a) => write!(f, "{a}:{}", self.port),
        }
    }
}

const SYN_FLOOD: &str = "Possible SYN flooding on port ";

/// Reads the port (and address) from the kernel's SYN-flood line. Linux before 5.10
/// printed `Possible SYN flooding on port 80. Sending cookies.  Check SNMP counters.`;
/// later kernels print the local address too, `port 0.0.0.0:80.` or `port [::]:80.`.
/// Anything else is `None`.
pub fn parse_syn_flood(message: &str) -> Option<LoggedPort> {
    let rest = &message[message.find(SYN_FLOOD)? + SYN_FLOOD.len()..];
    let token = rest.split(". ").next()?.trim_end_matches('.');
    let (address, port) = match token.rsplit_once(':') {
        Some((addr, port)) => {
            let addr = addr
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(addr);
            (Some(addr.to_owned()), port)
        }
        None => (None, token),
    };
    Some(LoggedPort {
        address,
        port: port.parse().ok()?,
    })
}

/// The distinct ports of every SYN-flood line among the kernel-log matches gathered.
fn flooded_ports(facts: &Facts) -> Vec<LoggedPort> {
    let mut ports: Vec<LoggedPort> = Vec::new();
    for lines in facts.kernel_log.values() {
        let Fact::Value(lines) = lines else { continue };
        for p in lines.iter().filter_map(|l| parse_syn_flood(&l.message)) {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    ports
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
    fn syn_flood_lines_old_and_new() {
        let port = |a: Option<&str>, p| LoggedPort {
            address: a.map(str::to_owned),
            port: p,
        };
        assert_eq!(
            parse_syn_flood(
                "TCP: request_sock_TCP: Possible SYN flooding on port 80. Sending cookies.  Check SNMP counters."
            ),
            Some(port(None, 80))
        );
        assert_eq!(
            parse_syn_flood(
                "TCP: request_sock_TCP: Possible SYN flooding on port 10.0.0.1:8080. Dropping request."
            ),
            Some(port(Some("10.0.0.1"), 8080))
        );
        assert_eq!(
            parse_syn_flood("TCPv6: Possible SYN flooding on port [::]:443. Sending cookies."),
            Some(port(Some("::"), 443))
        );
        assert_eq!(
            parse_syn_flood("Possible SYN flooding on port 99999. x"),
            None
        );
        assert_eq!(parse_syn_flood("Possible SYN flooding on port "), None);
        assert_eq!(parse_syn_flood("nothing here"), None);
    }

    #[test]
    fn logged_ports_narrow_the_listeners_when_none_is_full() {
        let mut f = facts(
            vec![
                listener(22, 0, 128),
                listener(80, 0, 128),
                listener(443, 0, 8),
            ],
            "128",
        );
        f.kernel_log.insert(
            "Possible SYN flooding on port".into(),
            Fact::Value(vec![crate::facts::LogLine {
                time: 0.0,
                message: "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:80. Sending cookies.".into(),
            }]),
        );
        let cap = ListenQueueCondition {
            limit: ListenLimit::Somaxconn,
        };
        let own = ListenQueueCondition {
            limit: ListenLimit::OwnBacklog,
        };
        let mut out = Outcome::default();
        assert_eq!(eval(&cap, &f, &mut out), Truth::True);
        assert_eq!(out.evidence.len(), 1, "{:?}", out.evidence);
        assert_eq!(out.evidence[0].fact, "TCP listener :80");
        assert!(
            out.evidence[0]
                .test
                .ends_with("the kernel logged \"Possible SYN flooding\" on port 80"),
            "{}",
            out.evidence[0].test
        );
        // :443's own small backlog is not what the log is about.
        assert_eq!(eval(&own, &f, &mut Outcome::default()), Truth::False);
        // A logged port no listener holds any more: every listener again.
        f.listeners = Some(Fact::Value(vec![listener(22, 0, 128), listener(443, 0, 8)]));
        let mut out = Outcome::default();
        assert_eq!(eval(&own, &f, &mut out), Truth::True);
        assert!(out.evidence[0].test.ends_with("every listener is named"));
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
