//! Reports for CI: GitHub Actions workflow commands and JUnit XML, shared by `tune
//! validate` and `tune test`.
//!
//! GitHub turns `::error file=F,line=L,col=C,title=T::message` lines on a job's
//! output into annotations on the pull request's diff. Its toolkit escapes `%`, CR
//! and LF in the message (`%25`, `%0D`, `%0A`) and, in property values, also `:` and
//! `,` (`%3A`, `%2C`); anything else would cut the command short.

use std::fmt::Write as _;

use clap::ValueEnum;

/// How `validate` and `test` print their findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// `file:line:column: message`, one per line.
    Text,
    /// GitHub Actions workflow commands (`::error file=…,line=…,col=…::…`).
    Github,
    /// JUnit XML, one test case per playbook (validate) or per case (test).
    Junit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    fn command(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding at a place in a file (`line` 0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub title: Option<String>,
    pub message: String,
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One workflow command line (with its newline).
pub fn github(a: &Annotation) -> String {
    let mut props = vec![format!("file={}", escape_property(&a.file))];
    if a.line > 0 {
        props.push(format!("line={}", a.line));
        if a.column > 0 {
            props.push(format!("col={}", a.column));
        }
    }
    if let Some(title) = &a.title {
        props.push(format!("title={}", escape_property(title)));
    }
    format!(
        "::{} {}::{}\n",
        a.severity.command(),
        props.join(","),
        escape_data(&a.message)
    )
}

/// A JUnit test case: its name and, when it failed, what went wrong.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub failures: Vec<String>,
}

fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters, even escaped.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A JUnit XML document with one suite.
pub fn junit(suite: &str, cases: &[Case]) -> String {
    let failed = cases.iter().filter(|c| !c.failures.is_empty()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suite = escape_xml(suite);
    let n = cases.len();
    let _ = writeln!(
        out,
        "<testsuites name=\"{suite}\" tests=\"{n}\" failures=\"{failed}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{suite}\" tests=\"{n}\" failures=\"{failed}\" errors=\"0\">"
    );
    for case in cases {
        let name = escape_xml(&case.name);
        if case.failures.is_empty() {
            let _ = writeln!(out, "    <testcase classname=\"{suite}\" name=\"{name}\"/>");
            continue;
        }
        let _ = writeln!(out, "    <testcase classname=\"{suite}\" name=\"{name}\">");
        let first = case.failures[0].lines().next().unwrap_or_default();
        let _ = writeln!(
            out,
            "      <failure message=\"{}\">{}</failure>",
            escape_xml(first),
            escape_xml(&case.failures.join("\n"))
        );
        let _ = writeln!(out, "    </testcase>");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_commands_escape_data_and_properties() {
        let a = Annotation {
            severity: Severity::Error,
            file: "play,books/a:b.yml".into(),
            line: 7,
            column: 21,
            title: Some("tune validate: x".into()),
            message: "100% wrong\r\nsecond line, with: colon".into(),
        };
        assert_eq!(
            github(&a),
            "::error file=play%2Cbooks/a%3Ab.yml,line=7,col=21,title=tune validate%3A x::100%25 wrong%0D%0Asecond line, with: colon\n"
        );
        let whole = Annotation {
            severity: Severity::Warning,
            line: 0,
            column: 0,
            title: None,
            ..a
        };
        assert!(github(&whole).starts_with("::warning file=play%2Cbooks/a%3Ab.yml::"));
    }

    #[test]
    fn junit_escapes_and_counts() {
        let xml = junit(
            "tune <test>",
            &[
                Case {
                    name: "a".into(),
                    failures: vec![],
                },
                Case {
                    name: "b&c".into(),
                    failures: vec!["x < y\nmore".into()],
                },
            ],
        );
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("name=\"b&amp;c\""), "{xml}");
        assert!(
            xml.contains("<failure message=\"x &lt; y\">x &lt; y\nmore</failure>"),
            "{xml}"
        );
    }
}
