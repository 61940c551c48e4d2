//! systemd units as far as a service's environment goes: the unit a cgroup path
//! names, containers, and the `Environment=`, `EnvironmentFile=` and `ExecStart=`
//! settings of a unit file and its drop-ins.
//!
//! Pure: no I/O. The rules (systemd.unit(5), systemd.exec(5)):
//!
//! - the fragment is read first, then its drop-ins in file-name order; a later
//!   assignment of a variable wins, and an empty `Environment=` / `EnvironmentFile=`
//!   / `ExecStart=` resets the list built so far;
//! - `Environment=` takes whitespace-separated `VAR=VALUE` words, with `"…"` / `'…'`
//!   quoting and C escapes; `%%` is a literal `%`;
//! - `EnvironmentFile=PATH` (a leading `-`: the file may be missing) is read when the
//!   service starts, and **overrides `Environment=`** for the same variable;
//! - a line ending in `\` continues on the next one; `#` and `;` start comments.

/// A cgroup path that belongs to a container rather than to a host service.
pub fn container_of(cgroup: &str) -> Option<String> {
    let parts: Vec<&str> = cgroup.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in parts.iter().enumerate() {
        for prefix in [
            "docker-",
            "libpod-",
            "cri-containerd-",
            "crio-",
            "containerd-",
        ] {
            if let Some(id) = c
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(".scope"))
            {
                return Some(id.to_owned());
            }
        }
        if (*c == "docker" || *c == "lxc" || *c == "machine.slice") && i + 1 < parts.len() {
            return Some(parts[i + 1].to_owned());
        }
        if c.starts_with("kubepods") {
            return Some(parts.last().copied().unwrap_or(c).to_owned());
        }
    }
    None
}

/// The systemd service a cgroup path names (`/system.slice/tomcat9.service` →
/// `tomcat9.service`): its innermost `.service` component.
pub fn service_of(cgroup: &str) -> Option<String> {
    cgroup
        .split('/')
        .rev()
        .find(|c| c.len() > ".service".len() && c.ends_with(".service"))
        .map(str::to_owned)
}

/// A value with the file and line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub value: String,
    pub path: String,
    pub line: usize,
}

/// What a unit's `[Service]` section says about the environment and the command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEnv {
    /// `Environment=` variables, last assignment winning.
    pub environment: Vec<(String, Sourced)>,
    /// `EnvironmentFile=` paths in order, `-` prefix removed (with `optional`).
    pub env_files: Vec<(String, bool)>,
    /// `ExecStart=` command lines (raw).
    pub exec_start: Vec<Sourced>,
}

impl ServiceEnv {
    pub fn variable(&self, name: &str) -> Option<&Sourced> {
        self.environment
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The logical lines of a unit file: (line number, text), continuations joined.
fn logical_lines(content: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in content.lines().enumerate() {
        let line = raw.trim();
        if pending.is_none() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        let (n, mut text) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(head) = line.strip_suffix('\\') {
            text.push_str(head);
            text.push(' ');
            pending = Some((n, text));
        } else {
            text.push_str(line);
            out.push((n, text));
        }
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

/// Reads `[Service]` of each file, in the order given (fragment, then drop-ins).
pub fn service_env<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> ServiceEnv {
    let mut env = ServiceEnv::default();
    for (path, content) in files {
        let mut in_service = false;
        for (line, text) in logical_lines(content) {
            if text.starts_with('[') {
                in_service = text == "[Service]";
                continue;
            }
            let Some((key, value)) = text.split_once('=') else {
                continue;
            };
            if !in_service {
                continue;
            }
            let value = value.trim();
            let sourced = |v: String| Sourced {
                value: v,
                path: path.to_owned(),
                line,
            };
            match key.trim() {
                "Environment" if value.is_empty() => env.environment.clear(),
                "Environment" => {
                    for word in unit_words(value) {
                        if let Some((k, v)) = word.split_once('=') {
                            env.environment.push((k.to_owned(), sourced(v.to_owned())));
                        }
                    }
                }
                "EnvironmentFile" if value.is_empty() => env.env_files.clear(),
                "EnvironmentFile" => {
                    let (p, optional) = match value.strip_prefix('-') {
                        Some(p) => (p, true),
                        None => (value, false),
                    };
                    env.env_files.push((p.to_owned(), optional));
                }
                "ExecStart" if value.is_empty() => env.exec_start.clear(),
                "ExecStart" => env.exec_start.push(sourced(value.to_owned())),
                _ => {}
            }
        }
    }
    env
}

/// Splits a unit setting into words: whitespace separates, `"…"` and `'…'` group,
/// backslash escapes (`\n`, `\t`, `\\`, `\"`, `\'`, `\ `), `%%` is `%`.
pub fn unit_words(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                let e = match chars.next() {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some(o) => o,
                    None => break,
                };
                word.get_or_insert_default().push(e);
            }
            (_, '%') if chars.peek() == Some(&'%') => {
                chars.next();
                word.get_or_insert_default().push('%');
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    out.push(w);
                }
            }
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    if let Some(w) = word {
        out.push(w);
    }
    out
}

/// One `Environment=` line that sets `name` to `value` exactly, as [`unit_words`]
/// reads it back.
pub fn environment_line(name: &str, value: &str) -> String {
    let mut quoted = String::new();
    for c in format!("{name}={value}").chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '%' => quoted.push_str("%%"),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    format!("Environment=\"{quoted}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_containers_from_cgroup_paths() {
        assert_eq!(
            service_of("/system.slice/tomcat9.service").as_deref(),
            Some("tomcat9.service")
        );
        assert_eq!(service_of("/user.slice/user-0.slice/session-3.scope"), None);
        assert_eq!(
            container_of("/system.slice/docker-0f2b3fcdd257.scope").as_deref(),
            Some("0f2b3fcdd257")
        );
        assert_eq!(
            container_of("/docker/0f2b3fcdd257").as_deref(),
            Some("0f2b3fcdd257")
        );
        assert!(
            container_of("/kubepods.slice/kubepods-burstable.slice/pod1/cri-containerd-ab.scope")
                .is_some()
        );
        assert_eq!(container_of("/system.slice/tomcat9.service"), None);
    }

    #[test]
    fn service_section_like_systemd() {
        let unit = "[Unit]\nEnvironment=X=unit\n[Service]\n# c\nEnvironment=\"JAVA_OPTS=-Xmx1g -Dq=a b\" CATALINA_OPTS=-Dz \\\n  K=v\nEnvironmentFile=-/etc/default/tomcat9\nExecStart=/usr/bin/java $JAVA_OPTS Main\n";
        let dropin =
            "[Service]\nEnvironment=JAVA_OPTS=-Xmx2g\nExecStart=\nExecStart=/bin/x -Xmx3g\n";
        let env = service_env([("/u", unit), ("/d", dropin)]);
        assert_eq!(
            env.variable("JAVA_OPTS").map(|s| s.value.as_str()),
            Some("-Xmx2g")
        );
        assert_eq!(env.variable("CATALINA_OPTS").map(|s| s.line), Some(5));
        assert_eq!(env.variable("K").map(|s| s.value.as_str()), Some("v"));
        assert_eq!(env.variable("X"), None);
        assert_eq!(
            env.env_files,
            vec![("/etc/default/tomcat9".to_owned(), true)]
        );
        assert_eq!(env.exec_start.len(), 1);
        assert_eq!(env.exec_start[0].value, "/bin/x -Xmx3g");
    }

    #[test]
    fn environment_lines_read_back_exactly() {
        for v in ["-Xmx256m -Dx=\"a b\"", "100%% \\ 'q'", "", "a\nb"] {
            let line = environment_line("JAVA_OPTS", v);
            let env = service_env([("/x", format!("[Service]\n{line}\n").as_str())]);
            assert_eq!(
                env.variable("JAVA_OPTS").map(|s| s.value.as_str()),
                Some(v),
                "{line}"
            );
        }
    }
}
