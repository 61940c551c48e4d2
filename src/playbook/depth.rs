//! A bound on how deeply a playbook nests, checked in one linear pass over the text
//! before serde_yaml sees it.
//!
//! libyaml and serde_yaml take time and memory that grow much faster than the input
//! for deep nesting (half a million `[` took minutes), and `tune validate` runs on
//! pull requests. Real playbooks nest fewer than ten levels. The scan is conservative:
//! it counts block indentation levels, `- ` / `? ` items opened on one line, and open
//! flow brackets (`[`, `{`) outside quotes, comments and block scalars, so it may
//! over-count a strange document but never misses deep nesting.

/// Deepest nesting a playbook may have.
pub const MAX_DEPTH: usize = 64;

/// Where the text first nests deeper than [`MAX_DEPTH`]: (1-based line, 1-based
/// column, depth reached).
pub fn too_deep(text: &str) -> Option<(usize, usize, usize)> {
    // Indentation of each open block level.
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // Lines more indented than this belong to a `|` / `>` block scalar.
    let mut block_scalar: Option<usize> = None;
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let blank = indent == bytes.len() || bytes[indent] == b'#';
        if let Some(parent) = block_scalar {
            if blank || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        if blank {
            continue;
        }
        let mut depth_here;
        let mut i = indent;
        if flow == 0 {
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            depth_here = indents.len();
            // `- - - x` and `? ? x`: each indicator opens a level on this line.
            while i + 1 < bytes.len()
                && matches!(bytes[i], b'-' | b'?')
                && matches!(bytes[i + 1], b' ' | b'\t')
            {
                depth_here += 1;
                if depth_here > MAX_DEPTH {
                    return Some((n + 1, i + 1, depth_here));
                }
                i += 2;
                while i < bytes.len() && bytes[i] == b' ' {
                    i += 1;
                }
            }
        } else {
            depth_here = indents.len();
        }
        if depth_here > MAX_DEPTH {
            return Some((n + 1, indent + 1, depth_here));
        }
        let mut quote: Option<u8> = None;
        let mut prev = b' ';
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(q) => {
                    if b == q {
                        quote = None;
                    }
                }
                None => match b {
                    b'#' if prev == b' ' || prev == b'\t' => break,
                    b'"' | b'\'' if matches!(prev, b' ' | b'\t' | b'[' | b'{' | b',' | b':') => {
                        quote = Some(b);
                    }
                    b'[' | b'{' => {
                        flow += 1;
                        if depth_here + flow > MAX_DEPTH {
                            return Some((n + 1, i + 1, depth_here + flow));
                        }
                    }
                    b']' | b'}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = b;
            i += 1;
        }
        if flow == 0 && quote.is_none() {
            // A block scalar header ends the line: `key: |`, `- >-`, `|2`.
            let end = line[..line.find(" #").unwrap_or(line.len())].trim_end();
            let header = end.rsplit([' ', '\t']).next().unwrap_or("");
            let mut chars = header.chars();
            if matches!(chars.next(), Some('|' | '>'))
                && chars.all(|c| matches!(c, '+' | '-' | '1'..='9'))
            {
                block_scalar = Some(indent);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_playbooks_pass() {
        for (name, text) in crate::playbook::BUNDLED {
            assert_eq!(too_deep(text), None, "{name}");
        }
        let text = "a:\n  b: [1, [2, {c: \"[[[[\"}], '{{'] # [[[[\n  d: |\n    [[[[[[\n";
        assert_eq!(too_deep(text), None);
    }

    #[test]
    fn deep_flow_block_and_dash_nesting_is_found_where_it_starts() {
        let flow = "x: ".to_owned() + &"[".repeat(1000);
        assert_eq!(too_deep(&flow), Some((1, 4 + 63, 65)));
        let dashes = "- ".repeat(100) + "x";
        let (line, _, depth) = too_deep(&dashes).unwrap();
        assert_eq!((line, depth), (1, 65));
        let mut block = String::new();
        for level in 0..100 {
            block.push_str(&" ".repeat(level));
            block.push_str("k:\n");
        }
        assert_eq!(too_deep(&block).map(|(l, _, _)| l), Some(65));
        let split = "a: [\n".repeat(70);
        assert_eq!(too_deep(&split).map(|(l, _, _)| l), Some(64));
    }
}
