//! `kernel_log` patterns: which ones are plain text, matched as substrings without a
//! regex (the playbook check, the log scan and the line selection all ask), and how
//! the others compile (the playbook check and the line selection, the same way).

use regex::bytes::{Regex, RegexBuilder};

/// A pattern that matches exactly the text it is, so a line matching it holds it
/// (not empty, no regex syntax; U+FFFD could match a byte the lossy decoding replaced).
pub fn is_plain_text(pattern: &str) -> bool {
    !pattern.is_empty() && regex::escape(pattern) == pattern && !pattern.contains('\u{FFFD}')
}

/// The largest compiled pattern, in bytes of regex's own accounting: far above any
/// pattern written for a log line, and a bound on what one playbook can make tune build.
const SIZE_LIMIT: usize = 1 << 20;

/// Compiles a pattern that is not plain text, as the playbook check and the line
/// selection both do. It matches the message's bytes with Unicode mode off: `.` is any
/// byte but a newline, `\w`, `\d`, `\s`, `\b` and `(?i)` are ASCII, a non-ASCII
/// character in the pattern matches its UTF-8 bytes, and `\p{..}` or a `(?u)` class
/// is refused. Kernel messages are ASCII in practice (/dev/kmsg even shows any other
/// byte as `\xHH`; syslog(2) passes them through), so a Unicode class would rarely
/// match more; leaving Unicode out leaves regex-syntax's Unicode tables out of the
/// binary, whose 5,700 relocations the dynamic loader applied on every run (README,
/// Benchmark).
/// The error is regex's, with a hint where Unicode was asked for.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let e = e.to_string();
            if e.contains("Unicode") {
                format!(
                    "{e}\n(kernel_log patterns match the message's bytes: `.`, `\\w`, `\\d`, `\\s` \
                     and `(?i)` are ASCII; a non-ASCII character matches its UTF-8 bytes)"
                )
            } else {
                e
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_bytes_with_ascii_classes() {
        let m = |pattern: &str, text: &str| compile(pattern).unwrap().is_match(text.as_bytes());
        assert!(m(
            r"port \d+\.",
            "SYN flooding on port 80. Sending cookies."
        ));
        assert!(m(
            r"(?i)TABLE FULL",
            "nf_conntrack: table full, dropping packet"
        ));
        assert!(m(r"^eth\w+: link \S+$", "eth0: link up"));
        assert!(m(r"a.b", "a-b") && !m(r"a.b", "a\nb"));
        // Non-ASCII literals match their UTF-8 bytes; classes stay ASCII.
        assert!(m("café", "café ready"));
        assert!(!m(r"caf\w ", "café ready"));
        // A pattern that needs Unicode, or is not a regex, is refused with regex's reason.
        for bad in [r"\p{Greek}", r"(?u)\w"] {
            assert!(compile(bad).unwrap_err().contains("are ASCII"), "{bad}");
        }
        for bad in ["(", "a{5000}{5000}"] {
            let e = compile(bad).unwrap_err();
            assert!(!e.contains("ASCII"), "{bad}: {e}");
        }
    }
}
