//! Escaping for HTML text and attribute values: every string that comes from a snapshot (hypotheses are LLM
//! output) or from a user goes through here before it reaches the report page or one of its SVG charts.
//!
//! Never pass already-escaped text (it would show `&amp;lt;`), and never build markup from unescaped data.

/// `s` as HTML text content (also inside inline SVG `<title>` and `<text>`): `&`, `<`, `>` become entities;
/// control characters that HTML forbids become U+FFFD so the page stays well-formed.
pub fn text(s: &str) -> String {
    escape(s, false)
}

/// `s` as a double- or single-quoted attribute value: like [`text`], plus `"` and `'`.
pub fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if quotes => out.push_str("&quot;"),
            '\'' if quotes => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_markup_and_keeps_quotes() {
        assert_eq!(
            text(r#"<script>alert("x & 'y'")</script>"#),
            r#"&lt;script&gt;alert("x &amp; 'y'")&lt;/script&gt;"#
        );
    }

    #[test]
    fn attr_escapes_quotes_too() {
        assert_eq!(attr(r#"a"b'c<d>&"#), "a&quot;b&#39;c&lt;d&gt;&amp;");
    }

    #[test]
    fn control_characters_become_replacement_but_whitespace_stays() {
        assert_eq!(
            text("a\u{0}b\u{7}c\td\ne\u{85}"),
            "a\u{FFFD}b\u{FFFD}c\td\ne\u{FFFD}"
        );
    }

    #[test]
    fn unicode_and_entities_like_text_pass_through_escaped_once() {
        assert_eq!(text("IC ≥ 0.05 — &lt;"), "IC ≥ 0.05 — &amp;lt;");
    }
}
