//! Environment files in the dialect of their reader. The three real readers disagree
//! (measured against bash `set -a; .`, systemd 252's `EnvironmentFile=` parser and
//! docker's `--env-file`), so a file is read and written by its reader's rules:
//!
//! - **systemd** (`EnvironmentFile=`): `KEY=VALUE` with the key trimmed; `export KEY=`
//!   is an invalid name and the line is ignored; a value may start with `"…"`
//!   (escapes `\" \\ \$` and backquote) or `'…'`; **text after the closing quote is
//!   part of the value** (`KEY="-Xmx1g" # heap` reads `-Xmx1g# heap`); a bare value
//!   takes `\x` as `x` and loses trailing blanks; `$VAR` is expanded.
//! - **shell** (`/etc/default/*` sourced by an init script; a `;` line is a syntax
//!   error that stops the source, not a comment): one shell word
//!   concatenating bare text, `"…"` and `'…'`; an unquoted blank ends it, and only a
//!   `#` comment may follow (anything else would run as a command); `export` is fine;
//!   `$VAR` references are expanded by the shell and are kept verbatim here.
//! - **docker** (`--env-file`): `KEY=` and the rest of the line, raw: no quote
//!   processing; a key with blanks (`export KEY`) makes docker reject the whole file.
//! - **unknown**: a line is edited only when all three read it the same, and the new
//!   value is written only in a form all three read the same (a bare word without
//!   quotes, blanks, `\`, `$` or `#`); otherwise the edit is refused with the reason.
//!
//! A quoted value that spans lines is skipped over (lines inside it are not
//! assignments) and refused when it is the key's own. Every write is checked by
//! reading it back with the reader's rules: the value the plan shows is the one the
//! reader will get. Values are compared with `$VAR` references as text.
//!
//! Pure: no I/O.

/// Who reads an environment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Systemd,
    Shell,
    Docker,
    Unknown,
}

impl Dialect {
    /// `systemd`, `shell` (or `sh`), `docker`, `unknown`.
    pub fn parse(text: &str) -> Result<Dialect, String> {
        match text {
            "systemd" => Ok(Dialect::Systemd),
            "shell" | "sh" => Ok(Dialect::Shell),
            "docker" => Ok(Dialect::Docker),
            "unknown" => Ok(Dialect::Unknown),
            other => Err(format!(
                "env dialect {other:?} is not one of systemd, shell, docker, unknown"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Systemd => "systemd",
            Dialect::Shell => "shell",
            Dialect::Docker => "docker",
            Dialect::Unknown => "unknown",
        }
    }

    /// The dialect a path implies when nobody said: files under /etc/default and
    /// /etc/sysconfig are sourced by init scripts.
    pub fn for_path(path: &str) -> Dialect {
        // `contains`: the path may be under `--root`.
        if path.contains("/etc/default/") || path.contains("/etc/sysconfig/") {
            Dialect::Shell
        } else {
            Dialect::Unknown
        }
    }
}

const KNOWN: [Dialect; 3] = [Dialect::Systemd, Dialect::Shell, Dialect::Docker];

/// One assignment as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
struct Assign {
    key: String,
    /// Index of the line.
    line: usize,
    /// Byte range of the value text in the line (quotes included; for systemd and
    /// docker: to the end of the line).
    value: std::ops::Range<usize>,
    /// The value as the reader gets it; `Err`: it spans several lines.
    read: Result<String, String>,
    /// The value was written bare (no quote at all).
    bare: bool,
    single: bool,
}

fn valid_key(key: &str) -> bool {
    super::envfile::valid_key(key)
}

/// Lines without their `\n`.
fn lines(content: &str) -> Vec<&str> {
    content
        .split_inclusive('\n')
        .map(|l| l.strip_suffix('\n').unwrap_or(l))
        .collect()
}

/// A line without a final `\r`, which is kept as part of the line ending. systemd
/// and docker drop it; sh keeps it at the end of the value (`KEY=x\r` reads `x\r`),
/// which JVM options ignore as blank. So in a CRLF file sh's value has one more `\r`
/// than the one shown.
fn body(_d: Dialect, line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// Reads a double- or single-quoted run starting after the opening quote; returns the
/// text and the byte offset after the closing quote, or `None` when it is not closed
/// on this line.
fn quoted(text: &str, q: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == q => return Some((out, i + 1)),
            '\\' if q == '"' => match chars.next() {
                Some((_, e @ ('"' | '\\' | '$' | '`'))) => out.push(e),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// Every assignment a reader sees, in order. `Err`: the reader rejects the file.
fn assignments(d: Dialect, content: &str) -> Result<Vec<Assign>, String> {
    let all = lines(content);
    let mut out = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let line = body(d, all[i]);
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        i += 1;
        if d == Dialect::Shell && trimmed.starts_with(';') {
            return Err(format!(
                "line {i}: sh stops reading the file here (`;` is a syntax error, not a comment)"
            ));
        }
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || (d != Dialect::Docker && trimmed.starts_with(';'))
        {
            continue;
        }
        let Some(eq) = trimmed.find('=') else {
            if d == Dialect::Docker && valid_key(trimmed.trim_end()) {
                continue; // `KEY`: passed through from docker's own environment
            }
            continue;
        };
        let raw_key = &trimmed[..eq];
        let key = match d {
            Dialect::Shell => raw_key
                .strip_prefix("export")
                .filter(|r| r.starts_with([' ', '\t']))
                .map_or(raw_key, str::trim_start),
            Dialect::Systemd => raw_key.trim(),
            Dialect::Docker | Dialect::Unknown => raw_key,
        };
        if !valid_key(key) {
            if d == Dialect::Docker && raw_key.contains([' ', '\t']) {
                return Err(format!(
                    "line {i}: docker rejects the whole file: variable {raw_key:?} contains whitespace"
                ));
            }
            continue; // systemd: "invalid variable name", line ignored
        }
        let start = indent + eq + 1;
        let after = &line[start..];
        let (value, read, bare, single) = match d {
            Dialect::Docker | Dialect::Unknown => {
                (start..line.len(), Ok(after.to_owned()), true, false)
            }
            Dialect::Systemd => {
                let lead = after.len() - after.trim_start().len();
                let v = &after[lead..];
                let (read, bare, single) = match v.chars().next() {
                    Some(q @ ('"' | '\'')) => match quoted(&v[1..], q) {
                        Some((text, end)) => {
                            // The rest of the line joins the value (blanks after the
                            // quote dropped, trailing blanks trimmed).
                            let rest = v[1 + end..].trim();
                            (Ok(format!("{text}{rest}")), false, q == '\'')
                        }
                        None => (Err(multi(key)), false, false),
                    },
                    _ => {
                        let mut s = String::new();
                        let mut chars = v.trim_end().chars();
                        let mut open = false;
                        while let Some(c) = chars.next() {
                            if c == '\\' {
                                match chars.next() {
                                    Some(e) => s.push(e),
                                    None => open = true,
                                }
                            } else {
                                s.push(c);
                            }
                        }
                        if open {
                            (Err(multi(key)), true, false)
                        } else {
                            (Ok(s), true, false)
                        }
                    }
                };
                (start..line.len(), read, bare, single)
            }
            Dialect::Shell => {
                let (read, end, bare, single) = shell_word(after);
                let read = read.and_then(|v| {
                    let rest = after[end..].trim_start_matches([' ', '\t']);
                    if rest.is_empty() || rest.starts_with('#') {
                        Ok(v)
                    } else {
                        Err(format!(
                            "{key}: sh would run {:?} as a command after the assignment; edit it by hand",
                            rest
                        ))
                    }
                });
                (start..start + end, read, bare, single)
            }
        };
        // A quote left open swallows the following lines: skip to its end.
        if let Err(e) = &read
            && e.ends_with(MULTI)
        {
            let q = if after.contains('"') { '"' } else { '\'' };
            while i < all.len() && !all[i].contains(q) {
                i += 1;
            }
            i += 1;
        }
        out.push(Assign {
            key: key.to_owned(),
            line: i.saturating_sub(1),
            value,
            read,
            bare,
            single,
        });
    }
    Ok(out)
}

const MULTI: &str = "continues on the next line; edit it by hand";

fn multi(key: &str) -> String {
    format!("{key}: the value {MULTI}")
}

/// One shell word: (value, end offset, bare, single-quoted).
fn shell_word(text: &str) -> (Result<String, String>, usize, bool, bool) {
    let mut out = String::new();
    let mut bare = true;
    let mut single = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().unwrap_or(' ');
        match c {
            ' ' | '\t' => break,
            '"' | '\'' => {
                bare = false;
                single = c == '\'';
                match quoted(&text[i + 1..], c) {
                    Some((t, end)) => {
                        out.push_str(&t);
                        i += 1 + end;
                    }
                    None => return (Err(format!("the value {MULTI}")), text.len(), false, false),
                }
            }
            '\\' => match text[i + 1..].chars().next() {
                Some(e) => {
                    out.push(e);
                    i += 1 + e.len_utf8();
                }
                None => return (Err(format!("the value {MULTI}")), text.len(), true, false),
            },
            c => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    (Ok(out), i, bare, single)
}

/// The value the reader gets for `key` (the last assignment), `None` when unset.
pub fn get_in(d: Dialect, content: &str, key: &str) -> Result<Option<String>, String> {
    if d == Dialect::Unknown {
        let mut seen: Vec<(Dialect, Option<String>)> = Vec::new();
        for k in KNOWN {
            seen.push((k, get_in(k, content, key)?));
        }
        if seen.iter().all(|(_, v)| *v == seen[0].1) {
            return Ok(seen[0].1.clone());
        }
        return Err(disagree(key, &seen));
    }
    let all = assignments(d, content)?;
    match all.iter().rev().find(|a| a.key == key) {
        Some(a) => a.read.clone().map(Some).map_err(|e| prefix(key, e)),
        None => Ok(None),
    }
}

fn prefix(key: &str, e: String) -> String {
    if e.starts_with(&format!("{key}:")) {
        e
    } else {
        format!("{key}: {e}")
    }
}

fn disagree(key: &str, seen: &[(Dialect, Option<String>)]) -> String {
    let shown: Vec<String> = seen
        .iter()
        .map(|(d, v)| {
            format!(
                "{} reads {}",
                d.name(),
                v.as_deref()
                    .map_or("nothing".to_owned(), |v| format!("{v:?}"))
            )
        })
        .collect();
    format!(
        "{key}: the file's reader is unknown and they disagree on this line ({}); say which reads it (systemd, shell or docker) and plan again",
        shown.join(", ")
    )
}

/// A value in a form all three readers take literally: nothing sh would treat
/// specially (which covers quotes, `\\`, `$` and `#` for systemd and docker too).
fn common_bare(value: &str) -> bool {
    !super::envfile::needs_quotes(value)
}

/// Double quotes that systemd and sh read back as `value`, `$NAME` / `${NAME}`
/// references kept as references.
fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\\' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '$' => {
                let reference = chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_' || *n == '{');
                if !reference {
                    out.push('\\');
                }
                out.push('$');
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn written(d: Dialect, value: &str, old: Option<&Assign>) -> Result<String, String> {
    match d {
        Dialect::Docker => Ok(value.to_owned()),
        Dialect::Unknown => {
            if common_bare(value) {
                Ok(value.to_owned())
            } else {
                Err(format!(
                    "the file's reader is unknown, and {value:?} needs quoting, which systemd, sh and docker read differently (docker keeps the quotes); say which reads it (systemd, shell or docker) and plan again"
                ))
            }
        }
        Dialect::Systemd | Dialect::Shell => {
            let bare_ok = common_bare(value)
                || (!value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=+@%".contains(c)));
            match old {
                Some(a) if a.single && !value.contains(['\'', '$']) => Ok(format!("'{value}'")),
                Some(a) if a.bare && bare_ok => Ok(value.to_owned()),
                None if bare_ok => Ok(value.to_owned()),
                _ => Ok(double_quoted(value)),
            }
        }
    }
}

/// The content with `key` set to `value` as the reader will read it; every other
/// line is kept byte for byte. Refused (with the reason) when that is not possible.
pub fn set_in(d: Dialect, content: &str, key: &str, value: &str) -> Result<String, String> {
    super::envfile::check_assignment(key, value)?;
    let readers: Vec<Dialect> = if d == Dialect::Unknown {
        KNOWN.to_vec()
    } else {
        vec![d]
    };
    // The line to edit: the key's last assignment, the same one for every reader.
    let mut target: Option<Assign> = None;
    for (n, r) in readers.iter().enumerate() {
        let all = assignments(*r, content)?;
        let found = all.into_iter().rev().find(|a| a.key == key);
        if let Some(a) = &found {
            a.read.clone().map_err(|e| prefix(key, e))?;
        }
        if n == 0 {
            target = found;
        } else if target.as_ref().map(|a| a.line) != found.as_ref().map(|a| a.line) {
            return Err(format!(
                "{key}: the file's reader is unknown and they do not agree on which line sets it (an `export` line?); say which reads it (systemd, shell or docker) and plan again"
            ));
        }
    }
    if d == Dialect::Unknown {
        get_in(d, content, key)?;
    }
    let text = written(d, value, target.as_ref())?;
    let all = lines(content);
    let mut out = String::with_capacity(content.len() + text.len());
    match &target {
        Some(a) => {
            for (i, raw) in content.split_inclusive('\n').enumerate() {
                if i == a.line {
                    let line = all[i];
                    let b = body(d, line);
                    let lead = if d == Dialect::Systemd {
                        let after = &b[a.value.start..];
                        after.len() - after.trim_start().len()
                    } else {
                        0
                    };
                    out.push_str(&b[..a.value.start + lead]);
                    out.push_str(&text);
                    out.push_str(&b[a.value.end.min(b.len())..]);
                    out.push_str(&raw[b.len()..]);
                } else {
                    out.push_str(raw);
                }
            }
        }
        None => {
            let eol = if content.contains("\r\n") {
                "\r\n"
            } else {
                "\n"
            };
            out.push_str(content);
            if !content.is_empty() && !content.ends_with('\n') {
                out.push_str(eol);
            }
            out.push_str(&format!("{key}={text}"));
            out.push_str(eol);
        }
    }
    // Read it back the way the reader will.
    for r in readers {
        let back = get_in(r, &out, key)?;
        if back.as_deref() != Some(value) {
            return Err(format!(
                "{key}: cannot write {value:?} so that {} reads it back (it would read {back:?}); edit it by hand",
                r.name()
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::*;

    #[test]
    fn the_readers_disagree_as_measured() {
        let f = "export A=1\nB=\"-Xmx1g\" # heap\nC=a\\ b\nD='x y'\n";
        assert_eq!(get_in(Systemd, f, "A").unwrap(), None);
        assert_eq!(get_in(Shell, f, "A").unwrap().as_deref(), Some("1"));
        assert!(get_in(Docker, f, "A").is_err());
        assert_eq!(
            get_in(Systemd, f, "B").unwrap().as_deref(),
            Some("-Xmx1g# heap")
        );
        assert_eq!(get_in(Shell, f, "B").unwrap().as_deref(), Some("-Xmx1g"));
        assert_eq!(get_in(Systemd, f, "C").unwrap().as_deref(), Some("a b"));
        assert_eq!(get_in(Shell, f, "C").unwrap().as_deref(), Some("a b"));
        assert_eq!(get_in(Systemd, f, "D").unwrap().as_deref(), Some("x y"));
        assert_eq!(
            get_in(Docker, "D='x y'\n", "D").unwrap().as_deref(),
            Some("'x y'")
        );
        assert!(
            get_in(Unknown, "D='x y'\n", "D")
                .unwrap_err()
                .contains("docker reads")
        );
        assert_eq!(
            get_in(Unknown, "K=-Xmx1g\n", "K").unwrap().as_deref(),
            Some("-Xmx1g")
        );
    }

    #[test]
    fn lines_inside_a_multi_line_value_are_not_assignments() {
        let f = "A=\"one\nB=two\nthree\"\nC=3\n";
        assert_eq!(get_in(Shell, f, "B").unwrap(), None);
        assert_eq!(get_in(Systemd, f, "B").unwrap(), None);
        assert_eq!(get_in(Shell, f, "C").unwrap().as_deref(), Some("3"));
        assert!(get_in(Shell, f, "A").unwrap_err().contains("next line"));
        assert!(set_in(Shell, f, "B", "x").unwrap().ends_with("C=3\nB=x\n"));
    }

    #[test]
    fn edits_keep_references_and_quote_what_needs_it() {
        let f = "JAVA_OPTS=\"$JAVA_OPTS -Xmx1g\"\n";
        let out = set_in(Shell, f, "JAVA_OPTS", "$JAVA_OPTS -Xmx256m").unwrap();
        assert_eq!(out, "JAVA_OPTS=\"$JAVA_OPTS -Xmx256m\"\n");
        // A bare value with a space (issue 9): quoted for systemd and sh.
        assert_eq!(
            set_in(Systemd, "K=a\n", "K", "a b ").unwrap(),
            "K=\"a b \"\n"
        );
        assert_eq!(set_in(Shell, "", "K", "a b").unwrap(), "K=\"a b\"\n");
        // systemd: the "comment" after the quote was part of the value; it is replaced.
        assert_eq!(
            set_in(Systemd, "K=\"-Xmx1g\" # heap\n", "K", "-Xmx2g").unwrap(),
            "K=\"-Xmx2g\"\n"
        );
        assert_eq!(
            set_in(Shell, "K=\"-Xmx1g\" # heap\n", "K", "-Xmx2g").unwrap(),
            "K=\"-Xmx2g\" # heap\n"
        );
        assert_eq!(
            set_in(Docker, "K=x\n", "K", "a \"b\"").unwrap(),
            "K=a \"b\"\n"
        );
        assert!(
            set_in(Unknown, "K=x\n", "K", "a b")
                .unwrap_err()
                .contains("needs quoting")
        );
        assert_eq!(
            set_in(Unknown, "K=x\n", "K", "-Xmx2g").unwrap(),
            "K=-Xmx2g\n"
        );
        assert!(set_in(Unknown, "export K=x\n", "K", "y").is_err());
        assert!(set_in(Docker, "export K=x\n", "K", "y").is_err());
        // systemd ignores the export line: the new assignment is appended.
        assert_eq!(
            set_in(Systemd, "export K=x\n", "K", "y").unwrap(),
            "export K=x\nK=y\n"
        );
    }
}
