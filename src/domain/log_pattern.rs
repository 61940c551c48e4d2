//! `kernel_log` patterns: which ones are plain text, matched as substrings without a
//! regex (the playbook check, the log scan and the line selection all ask).

/// A pattern that matches exactly the text it is, so a line matching it holds it
/// (not empty, no regex syntax; U+FFFD could match a byte the lossy decoding replaced).
pub fn is_plain_text(pattern: &str) -> bool {
    !pattern.is_empty() && regex::escape(pattern) == pattern && !pattern.contains('\u{FFFD}')
}
