//! `KEY=VALUE` environment files: reading one variable and setting it, leaving every
//! other byte of the file as it was.
//!
//! The format is the common subset of systemd `EnvironmentFile=`, `docker --env-file`
//! and the /etc/default files that init scripts source with sh: one assignment per
//! line, `#` comments, optional `export `, values bare, `"double quoted"` (backslash
//! escapes `\ " $` and backquote) or `'single quoted'`. When the same key is assigned
//! twice the last assignment wins (as in sh and systemd), so that is the one edited.
//!
//! Editing is by line: only the line that assigns the key is rewritten, keeping its
//! indentation, `export`, quoting style, trailing comment and line ending; a missing
//! key is appended with the file's own line ending, and a file without a final
//! newline stays without one. A value that spans several lines (an open quote, a
//! trailing backslash) is refused rather than guessed at.
//!
//! Pure: no I/O. Reading the file is `facts::envfile`, writing it `apply::envfile`.

/// How a value was (or will be) quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Bare,
    Double,
    Single,
}

/// One assignment line, as offsets into the line's text (without its line ending).
#[derive(Debug, Clone, PartialEq)]
struct Assignment {
    key: String,
    /// Offset where the value (including an opening quote) starts.
    value_start: usize,
    /// Offset just after the value (including a closing quote).
    value_end: usize,
    quote: Quote,
    /// The value with quoting removed.
    value: String,
}

/// A line split from its ending (`\n`, `\r\n`, or nothing on a last line).
fn lines(content: &str) -> Vec<(&str, &str)> {
    content
        .split_inclusive('\n')
        .map(|l| {
            if let Some(body) = l.strip_suffix("\r\n") {
                (body, "\r\n")
            } else if let Some(body) = l.strip_suffix('\n') {
                (body, "\n")
            } else {
                (l, "")
            }
        })
        .collect()
}

/// Whether `key` is a valid variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses an assignment line. `Ok(None)`: not an assignment (blank, comment, other
/// text). `Err`: an assignment of `key` whose value continues on the next line.
fn parse_line(body: &str) -> Result<Option<Assignment>, String> {
    let trimmed = body.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
        return Ok(None);
    }
    let mut rest = trimmed;
    if let Some(after) = rest.strip_prefix("export")
        && after.starts_with([' ', '\t'])
    {
        rest = after.trim_start();
    }
    let key_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let key = &rest[..key_len];
    if !valid_key(key) {
        return Ok(None);
    }
    let after_key = &rest[key_len..];
    let Some(after_eq) = after_key.trim_start_matches([' ', '\t']).strip_prefix('=') else {
        return Ok(None);
    };
    let value_text = after_eq.trim_start_matches([' ', '\t']);
    let value_start = body.len() - value_text.len();
    let (quote, value, len) = match value_text.chars().next() {
        Some('"') => {
            let mut value = String::new();
            let mut chars = value_text.char_indices().skip(1);
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, e @ ('"' | '\\' | '$' | '`'))) => value.push(e),
                        Some((_, e)) => {
                            value.push('\\');
                            value.push(e);
                        }
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            let Some(end) = end else {
                return Err(format!(
                    "{key}: the double-quoted value continues on the next line; edit it by hand"
                ));
            };
            (Quote::Double, value, end)
        }
        Some('\'') => match value_text[1..].find('\'') {
            Some(i) => (Quote::Single, value_text[1..1 + i].to_owned(), i + 2),
            None => {
                return Err(format!(
                    "{key}: the single-quoted value continues on the next line; edit it by hand"
                ));
            }
        },
        _ => {
            let value = value_text.trim_end();
            if value.ends_with('\\') {
                return Err(format!(
                    "{key}: the value continues on the next line (trailing backslash); edit it by hand"
                ));
            }
            (Quote::Bare, value.to_owned(), value.len())
        }
    };
    Ok(Some(Assignment {
        key: key.to_owned(),
        value_start,
        value_end: value_start + len,
        quote,
        value,
    }))
}

/// The last assignment of `key`: (line index, assignment). Lines that assign other
/// keys and cannot be parsed are not an error; only `key`'s own.
fn find(all: &[(&str, &str)], key: &str) -> Result<Option<(usize, Assignment)>, String> {
    let mut found = None;
    for (i, (body, _)) in all.iter().enumerate() {
        match parse_line(body) {
            Ok(Some(a)) if a.key == key => found = Some((i, a)),
            Ok(_) => {}
            Err(e) if e.starts_with(&format!("{key}:")) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(found)
}

/// The value of `key` (quoting removed), `None` when the file does not assign it.
pub fn get(content: &str, key: &str) -> Result<Option<String>, String> {
    Ok(find(&lines(content), key)?.map(|(_, a)| a.value))
}

/// Characters that make a bare value mean something else to sh.
pub fn needs_quotes(value: &str) -> bool {
    value.is_empty()
        || value.chars().any(|c| {
            c.is_whitespace()
                || matches!(
                    c,
                    '"' | '\''
                        | '\\'
                        | '$'
                        | '`'
                        | '#'
                        | ';'
                        | '&'
                        | '|'
                        | '<'
                        | '>'
                        | '('
                        | ')'
                        | '*'
                        | '?'
                        | '['
                        | ']'
                        | '{'
                        | '}'
                        | '~'
                        | '!'
                )
        })
}

fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `value` written in the style of `old` (the style the file already uses for the
/// key), falling back to double quotes where that style cannot hold the value.
fn quote(value: &str, old: Option<&Assignment>) -> String {
    match old.map(|a| (a.quote, a.value.as_str())) {
        Some((Quote::Single, _)) if !value.contains('\'') => format!("'{value}'"),
        Some((Quote::Double | Quote::Single, _)) => double_quoted(value),
        // A bare value with spaces means the file is read by systemd or docker, not
        // sh (docker would keep quotes as part of the value): stay bare, unless the
        // value starts or ends with whitespace, which a bare value loses.
        Some((Quote::Bare, old_value))
            if old_value.contains([' ', '\t'])
                && value.trim() == value
                && !value.contains(['"', '\'', '\\', '\n', '\r']) =>
        {
            value.to_owned()
        }
        _ if needs_quotes(value) => double_quoted(value),
        _ => value.to_owned(),
    }
}

/// Refuses a key that is not a variable name and a value no line can hold.
pub fn check_assignment(key: &str, value: &str) -> Result<(), String> {
    if !valid_key(key) {
        return Err(format!(
            "{key:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "{key}: a value with a line break or NUL cannot be written to an environment file"
        ));
    }
    Ok(())
}

/// The content with `key` set to `value`. Other lines are kept byte for byte.
pub fn set(content: &str, key: &str, value: &str) -> Result<String, String> {
    check_assignment(key, value)?;
    let all = lines(content);
    match find(&all, key)? {
        Some((index, a)) => {
            let mut out = String::with_capacity(content.len() + value.len());
            for (i, (body, eol)) in all.iter().enumerate() {
                if i == index {
                    out.push_str(&body[..a.value_start]);
                    out.push_str(&quote(value, Some(&a)));
                    out.push_str(&body[a.value_end..]);
                } else {
                    out.push_str(body);
                }
                out.push_str(eol);
            }
            Ok(out)
        }
        None => {
            let eol = all
                .iter()
                .map(|(_, e)| *e)
                .find(|e| !e.is_empty())
                .unwrap_or("\n");
            let line = format!("{key}={}", quote(value, None));
            let mut out = content.to_owned();
            if content.is_empty() || content.ends_with('\n') {
                out.push_str(&line);
                out.push_str(eol);
            } else {
                // Keep the file's missing final newline: the new line becomes the last.
                out.push_str(eol);
                out.push_str(&line);
            }
            Ok(out)
        }
    }
}

/// A unified diff of an environment file, `(absent)` standing for a missing file.
pub fn unified_diff(path: &str, before: Option<&str>, after: Option<&str>) -> String {
    let old = before.unwrap_or("");
    let new = after.unwrap_or("");
    let old_name = match before {
        Some(_) => format!("a{path}"),
        None => "/dev/null".to_owned(),
    };
    let new_name = match after {
        Some(_) => format!("b{path}"),
        None => "/dev/null".to_owned(),
    };
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `set(before, key, value) == after`, and setting again changes nothing.
    fn check(before: &str, key: &str, value: &str, after: &str) {
        let got = set(before, key, value).unwrap();
        assert_eq!(got, after, "setting {key}={value:?} in {before:?}");
        assert_eq!(set(&got, key, value).unwrap(), got, "second set is a no-op");
        assert_eq!(get(&got, key).unwrap().as_deref(), Some(value));
    }

    #[test]
    fn replaces_a_bare_value_and_keeps_the_rest() {
        check(
            "# tomcat\nJAVA_HOME=/usr/lib/jvm\nJAVA_OPTS=-Xmx1g\nOTHER=1\n",
            "JAVA_OPTS",
            "-Xmx384m",
            "# tomcat\nJAVA_HOME=/usr/lib/jvm\nJAVA_OPTS=-Xmx384m\nOTHER=1\n",
        );
    }

    #[test]
    fn keeps_double_and_single_quotes() {
        check(
            "JAVA_OPTS=\"-Djava.awt.headless=true -Xmx1g\"\n",
            "JAVA_OPTS",
            "-Djava.awt.headless=true -Xmx384m",
            "JAVA_OPTS=\"-Djava.awt.headless=true -Xmx384m\"\n",
        );
        check(
            "JAVA_OPTS='-Da=1 -Xmx1g'\n",
            "JAVA_OPTS",
            "-Da=1 -Xmx384m",
            "JAVA_OPTS='-Da=1 -Xmx384m'\n",
        );
        // A single quote cannot appear inside single quotes: switch to double.
        check("K='a'\n", "K", "it's $x", "K=\"it's \\$x\"\n");
    }

    #[test]
    fn keeps_crlf_and_missing_final_newline() {
        check(
            "# c\r\nA=1\r\nJAVA_TOOL_OPTIONS=-Xmx1g\r\nB=2",
            "JAVA_TOOL_OPTIONS",
            "-Xmx384m",
            "# c\r\nA=1\r\nJAVA_TOOL_OPTIONS=-Xmx384m\r\nB=2",
        );
        check("A=1\r\nB=2\r\n", "C", "x", "A=1\r\nB=2\r\nC=x\r\n");
        check("A=1\nB=2", "C", "x", "A=1\nB=2\nC=x");
        check("A=1\r\nB=2", "C", "x", "A=1\r\nB=2\r\nC=x");
    }

    #[test]
    fn appends_a_missing_key_quoted_when_needed() {
        check("", "K", "-Xmx384m", "K=-Xmx384m\n");
        check(
            "# only a comment\n",
            "K",
            "-a -b",
            "# only a comment\nK=\"-a -b\"\n",
        );
        check("A=1\n", "K", "", "A=1\nK=\"\"\n");
    }

    #[test]
    fn keeps_export_indentation_spacing_and_trailing_comment() {
        check(
            "  export JAVA_OPTS=\"-Xmx1g\"   # heap\n",
            "JAVA_OPTS",
            "-Xmx384m",
            "  export JAVA_OPTS=\"-Xmx384m\"   # heap\n",
        );
        check("K = old\n", "K", "new", "K = new\n");
    }

    #[test]
    fn edits_the_last_assignment_and_ignores_commented_ones() {
        check(
            "#K=commented\nK=first\nK=second\n",
            "K",
            "third",
            "#K=commented\nK=first\nK=third\n",
        );
        assert_eq!(get("#K=1\n", "K").unwrap(), None);
        assert_eq!(get("KEY=1\n", "K").unwrap(), None, "prefix of another key");
    }

    #[test]
    fn a_bare_value_with_spaces_stays_bare() {
        // systemd/docker style: the whole rest of the line is the value.
        check(
            "JAVA_OPTS=-Da=1 -Xmx1g\n",
            "JAVA_OPTS",
            "-Da=1 -Xmx384m",
            "JAVA_OPTS=-Da=1 -Xmx384m\n",
        );
    }

    #[test]
    fn unescapes_double_quoted_values() {
        assert_eq!(
            get("K=\"a \\\"b\\\" \\$HOME \\n\"\n", "K")
                .unwrap()
                .as_deref(),
            Some("a \"b\" $HOME \\n")
        );
        check(
            "K=\"x\"\n",
            "K",
            "say \"hi\" $x",
            "K=\"say \\\"hi\\\" \\$x\"\n",
        );
    }

    #[test]
    fn refuses_multi_line_values_of_the_key_only() {
        let open = "K=\"-Xmx1g\n-Dfoo\"\nOTHER=1\n";
        assert!(set(open, "K", "x").unwrap_err().contains("next line"));
        assert!(
            set("K=a \\\n b\n", "K", "x")
                .unwrap_err()
                .contains("backslash")
        );
        assert!(set("K='a\nb'\n", "K", "x").unwrap_err().contains("single"));
        // Another key's multi-line value does not stop an edit of this one.
        assert_eq!(
            set("O=\"a\nK=1\n", "K", "2").unwrap(),
            "O=\"a\nK=2\n",
            "the broken line is not K's, so K's line is edited"
        );
    }

    #[test]
    fn refuses_bad_keys_and_values() {
        assert!(set("", "1K", "x").is_err());
        assert!(set("", "K-X", "x").is_err());
        assert!(set("", "K", "a\nb").is_err());
        assert!(valid_key("_JAVA_OPTIONS"));
        assert!(!valid_key(""));
    }

    #[test]
    fn diff_shows_the_changed_line_and_absent_files() {
        let d = unified_diff("/etc/default/x", Some("A=1\nK=old\n"), Some("A=1\nK=new\n"));
        assert!(d.contains("--- a/etc/default/x"), "{d}");
        assert!(d.contains("-K=old\n+K=new\n"), "{d}");
        let d = unified_diff("/etc/default/x", None, Some("K=new\n"));
        assert!(d.contains("--- /dev/null"), "{d}");
        assert!(d.contains("+K=new"), "{d}");
        let d = unified_diff("/x", Some("A=1"), Some("A=1\nK=v"));
        assert!(d.contains("No newline at end of file"), "{d}");
    }
}
