//! `tune validate`: the checks a reviewer wants on a playbook pull request, printed as
//! text, GitHub Actions annotations or JUnit XML.
//!
//! Errors: syntax and schema, meaning (`playbook::check_set`), sysctl keys unknown on
//! this host (`playbook::check_host`). Warnings (`playbook::lint`): rules that can
//! never fire, fixes that conflict with another given or bundled playbook, a
//! description that does not name its symptom. Warnings change the exit code only
//! with `--strict`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use super::annotate::{self, Annotation, Case, ReportFormat, Severity};
use super::{exit, print_out};
use crate::playbook::{self, Diagnostic};

pub fn run(paths: &[PathBuf], format: ReportFormat, strict: bool) -> Result<i32> {
    let (files, errors, warnings, summary): (Vec<String>, _, _, _) =
        match playbook::load_paths(paths) {
            Err(d) => {
                let files = d.0.iter().map(|d| d.source.clone()).collect();
                (files, d.0, Vec::new(), None)
            }
            Ok(playbooks) => {
                let (_, mut errors) = playbook::check_set(&playbooks, &BTreeMap::new());
                for pb in &playbooks {
                    errors.extend(playbook::check_host(pb));
                }
                // Conflicts are looked for against the bundled playbooks too, except those
                // the user gave (by name) in another version.
                let bundled: Vec<_> = playbook::load_bundled()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|b| !playbooks.iter().any(|p| p.playbook.name == b.playbook.name))
                    .collect();
                let warnings = playbook::lint::lint(&playbooks, &bundled);
                let rules: usize = playbooks.iter().map(|p| p.playbook.rules.len()).sum();
                let files = playbooks.iter().map(|p| p.source.clone()).collect();
                let summary = format!("{} playbook(s), {rules} rule(s)", playbooks.len());
                (files, errors, warnings, Some(summary))
            }
        };
    let failed = !errors.is_empty() || (strict && !warnings.is_empty());
    let annotations: Vec<Annotation> = errors
        .iter()
        .map(|d| annotation(d, Severity::Error))
        .chain(warnings.iter().map(|d| annotation(d, Severity::Warning)))
        .collect();
    let text = match format {
        ReportFormat::Text | ReportFormat::Github => {
            let mut out = String::new();
            for a in &annotations {
                out.push_str(&match format {
                    ReportFormat::Github => annotate::github(a),
                    _ => text_line(a),
                });
            }
            match (&summary, errors.len(), warnings.len()) {
                (Some(s), 0, 0) => out.push_str(&format!("ok: {s}\n")),
                (Some(s), 0, w) if !strict => {
                    out.push_str(&format!("ok: {s}, {w} warning(s)\n"));
                }
                (_, e, w) => out.push_str(&format!("failed: {e} error(s), {w} warning(s)\n")),
            }
            out
        }
        ReportFormat::Junit => {
            let mut cases: Vec<Case> = Vec::new();
            for file in &files {
                if cases.iter().any(|c| &c.name == file) {
                    continue;
                }
                let failures = annotations
                    .iter()
                    .filter(|a| &a.file == file)
                    .filter(|a| a.severity == Severity::Error || strict)
                    .map(text_line)
                    .collect();
                cases.push(Case {
                    name: file.clone(),
                    failures,
                });
            }
            annotate::junit("tune validate", &cases)
        }
    };
    print_out(&text)?;
    Ok(if failed { exit::ERROR } else { exit::OK })
}

fn annotation(d: &Diagnostic, severity: Severity) -> Annotation {
    Annotation {
        severity,
        file: d.source.clone(),
        line: d.line,
        column: d.column,
        title: Some(match severity {
            Severity::Error => "tune validate".to_owned(),
            Severity::Warning => "tune validate (warning)".to_owned(),
        }),
        message: d.message.clone(),
    }
}

/// `file:line:column: message`, as errors always printed; warnings say so.
fn text_line(a: &Annotation) -> String {
    let d = Diagnostic {
        source: a.file.clone(),
        line: a.line,
        column: a.column,
        message: match a.severity {
            Severity::Error => a.message.clone(),
            Severity::Warning => format!("warning: {}", a.message),
        },
    };
    format!("{d}\n")
}
