//! A small HTML-to-text converter for `web_fetch`: tolerant of any input, never panics, one
//! pass, output proportional to input.
//!
//! It drops markup, comments, doctypes and the contents of `script`, `style`, `noscript`,
//! `template`, `svg`, `iframe`, `object` and `canvas`; decodes character references; turns
//! block elements into line breaks, headings into `#` lines, list items into `- ` lines and
//! table cells into ` | `-separated text; keeps `pre` whitespace; appends a link's absolute
//! `http(s)` target after its text as ` (url)`. It is not an HTML5 parser: malformed markup
//! gives a reasonable rendering, not the browser's one.

use url::Url;

/// Elements whose whole content is dropped.
const SKIP: &[&str] = &["script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"];

/// Elements that start and end a paragraph (blank line around).
const PARAGRAPH: &[&str] = &[
    "p",
    "pre",
    "blockquote",
    "table",
    "ul",
    "ol",
    "dl",
    "hr",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "figure",
    "form",
    "title",
    "details",
    "fieldset",
    "address",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
];

/// Elements that start and end a line.
const LINE: &[&str] = &[
    "div",
    "tr",
    "li",
    "dt",
    "dd",
    "option",
    "figcaption",
    "caption",
    "summary",
    "body",
    "br",
    "thead",
    "tbody",
];

/// Converts `html` to readable text; relative links resolve against `base`.
pub(crate) fn html_to_text(html: &str, base: Option<&Url>) -> String {
    let mut w = Writer::default();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        if rest.starts_with('<') {
            match markup(rest, &mut w, base) {
                Some(consumed) => i += consumed,
                None => {
                    w.text("<");
                    i += 1;
                }
            }
        } else if rest.starts_with('&') {
            let (decoded, consumed) = entity(rest);
            w.text(&decoded);
            i += consumed;
        } else {
            // '<' and '&' are ASCII, so the split is on a char boundary.
            let next = rest.find(['<', '&']).unwrap_or(rest.len());
            w.text(&rest[..next]);
            i += next;
        }
    }
    w.finish()
}

#[derive(Default)]
struct Writer {
    out: String,
    pending_space: bool,
    pre: usize,
    /// Open links: resolved target (if worth showing) and where their text starts.
    links: Vec<(Option<String>, usize)>,
}

impl Writer {
    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    fn text(&mut self, s: &str) {
        if self.pre > 0 {
            if self.pending_space && !self.at_line_start() {
                self.out.push(' ');
            }
            self.pending_space = false;
            self.out.push_str(s);
            return;
        }
        for ch in s.chars() {
            if ch.is_whitespace() {
                self.pending_space = true;
            } else {
                if self.pending_space && !self.at_line_start() {
                    self.out.push(' ');
                }
                self.pending_space = false;
                self.out.push(ch);
            }
        }
    }

    /// Ends the current line; `blank` leaves an empty line too.
    fn newline(&mut self, blank: bool) {
        self.pending_space = false;
        let trimmed = self.out.trim_end_matches([' ', '\t']).len();
        self.out.truncate(trimmed);
        if self.out.is_empty() {
            return;
        }
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        let want = if blank { 2 } else { 1 };
        for _ in have..want {
            self.out.push('\n');
        }
    }

    fn open(&mut self, name: &str, attrs: &[(String, String)], base: Option<&Url>) {
        match name {
            "li" => {
                self.newline(false);
                self.out.push_str("- ");
            }
            "td" | "th" => {
                if !self.at_line_start() {
                    self.out.push_str(" | ");
                    self.pending_space = false;
                }
            }
            "a" => {
                let target = attr(attrs, "href").and_then(|href| link_target(href, base));
                self.links.push((target, self.out.len()));
            }
            "img" => {
                if let Some(alt) = attr(attrs, "alt").map(str::trim).filter(|a| !a.is_empty()) {
                    self.text(&format!(" [image: {alt}] "));
                }
            }
            _ => {
                if let Some(level) = heading_level(name) {
                    self.newline(true);
                    self.out.push_str(&"#".repeat(level));
                    self.out.push(' ');
                } else if PARAGRAPH.contains(&name) {
                    self.newline(true);
                } else if LINE.contains(&name) {
                    self.newline(false);
                }
                if name == "pre" {
                    self.pre += 1;
                }
            }
        }
    }

    fn close(&mut self, name: &str) {
        if name == "a" {
            if let Some((Some(target), start)) = self.links.pop() {
                let text = self.out.get(start..).unwrap_or_default().trim();
                if !text.is_empty() && text != target {
                    self.out.push_str(&format!(" ({target})"));
                }
            }
            return;
        }
        if name == "pre" {
            self.pre = self.pre.saturating_sub(1);
        }
        if PARAGRAPH.contains(&name) {
            self.newline(true);
        } else if LINE.contains(&name) {
            self.newline(false);
        }
    }

    fn finish(self) -> String {
        let mut out = String::with_capacity(self.out.len());
        let mut blank_run = 0;
        for line in self.out.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 || out.is_empty() {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.trim_end().to_owned()
    }
}

fn heading_level(name: &str) -> Option<usize> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(usize::from(d - b'0')),
        _ => None,
    }
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn link_target(href: &str, base: Option<&Url>) -> Option<String> {
    let href = href.trim();
    if href.is_empty() || href.starts_with('#') {
        return None;
    }
    let url = match base {
        Some(base) => base.join(href).ok()?,
        None => Url::parse(href).ok()?,
    };
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

/// Handles markup at the start of `rest` (which begins with `<`); returns the bytes
/// consumed, or `None` if this `<` is just text.
fn markup(rest: &str, w: &mut Writer, base: Option<&Url>) -> Option<usize> {
    if let Some(body) = rest.strip_prefix("<!--") {
        return Some(body.find("-->").map_or(rest.len(), |end| 4 + end + 3));
    }
    if rest.starts_with("<!") || rest.starts_with("<?") {
        return Some(rest.find('>').map_or(rest.len(), |end| end + 1));
    }
    let bytes = rest.as_bytes();
    let closing = bytes.get(1) == Some(&b'/');
    let name_start = if closing { 2 } else { 1 };
    if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let name_end = name_start
        + bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b':')
            .count();
    let name = rest[name_start..name_end].to_ascii_lowercase();
    if closing {
        w.close(&name);
        return Some(rest.find('>').map_or(rest.len(), |end| end + 1));
    }
    let (attrs, self_closing, consumed) = attributes(rest, name_end);
    if SKIP.contains(&name.as_str()) && !self_closing {
        let after = &rest[consumed..];
        let skipped = find_close(after, &name).unwrap_or(after.len());
        return Some(consumed + skipped);
    }
    w.open(&name, &attrs, base);
    if self_closing {
        w.close(&name);
    }
    Some(consumed)
}

/// Bytes from the start of `after` to just past `</name ...>` (ASCII case-insensitive).
fn find_close(after: &str, name: &str) -> Option<usize> {
    let bytes = after.as_bytes();
    let needle_len = 2 + name.len();
    let mut i = 0;
    while i + needle_len <= bytes.len() {
        if bytes[i] == b'<'
            && bytes[i + 1] == b'/'
            && bytes[i + 2..i + needle_len].eq_ignore_ascii_case(name.as_bytes())
            && !bytes.get(i + needle_len).is_some_and(u8::is_ascii_alphanumeric)
        {
            let end = after[i..].find('>').map_or(after.len(), |e| i + e + 1);
            return Some(end);
        }
        i += 1;
    }
    None
}

/// Parses attributes from `from` to the tag's `>` (quotes respected): the attributes
/// (lower-cased names, decoded values), whether the tag ends in `/>`, bytes consumed.
fn attributes(tag: &str, from: usize) -> (Vec<(String, String)>, bool, usize) {
    let bytes = tag.as_bytes();
    let mut attrs = Vec::new();
    let mut i = from;
    let mut self_closing = false;
    while i < bytes.len() {
        match bytes[i] {
            b'>' => return (attrs, self_closing, i + 1),
            b'/' => {
                self_closing = true;
                i += 1;
            }
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                self_closing = false;
                let name_start = i;
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !matches!(bytes[i], b'=' | b'>' | b'/')
                {
                    i += 1;
                }
                let name = tag[name_start..i].to_ascii_lowercase();
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                let mut value = String::new();
                if bytes.get(i) == Some(&b'=') {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    match bytes.get(i) {
                        Some(&q @ (b'"' | b'\'')) => {
                            let start = i + 1;
                            let end = tag[start..].find(char::from(q)).map_or(tag.len(), |e| start + e);
                            value = decode_all(&tag[start..end]);
                            i = (end + 1).min(bytes.len());
                        }
                        _ => {
                            let start = i;
                            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                                i += 1;
                            }
                            value = decode_all(&tag[start..i]);
                        }
                    }
                }
                attrs.push((name, value));
            }
        }
    }
    (attrs, self_closing, bytes.len())
}

/// Decodes every character reference in `s`.
fn decode_all(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with('&') {
            let (decoded, consumed) = entity(rest);
            out.push_str(&decoded);
            i += consumed;
        } else {
            let next = rest.find('&').unwrap_or(rest.len());
            out.push_str(&rest[..next]);
            i += next;
        }
    }
    out
}

const NAMED: &[(&str, &str)] = &[
    ("amp", "&"),
    ("lt", "<"),
    ("gt", ">"),
    ("quot", "\""),
    ("apos", "'"),
    ("nbsp", " "),
    ("ndash", "\u{2013}"),
    ("mdash", "\u{2014}"),
    ("hellip", "\u{2026}"),
    ("copy", "\u{a9}"),
    ("reg", "\u{ae}"),
    ("trade", "\u{2122}"),
    ("laquo", "\u{ab}"),
    ("raquo", "\u{bb}"),
    ("lsquo", "\u{2018}"),
    ("rsquo", "\u{2019}"),
    ("ldquo", "\u{201c}"),
    ("rdquo", "\u{201d}"),
    ("bull", "\u{2022}"),
    ("middot", "\u{b7}"),
    ("euro", "\u{20ac}"),
    ("pound", "\u{a3}"),
    ("yen", "\u{a5}"),
    ("cent", "\u{a2}"),
    ("deg", "\u{b0}"),
    ("times", "\u{d7}"),
    ("divide", "\u{f7}"),
    ("plusmn", "\u{b1}"),
    ("para", "\u{b6}"),
    ("sect", "\u{a7}"),
    ("shy", ""),
];

/// Decodes the character reference at the start of `rest` (which begins with `&`); an
/// unknown or malformed one is a literal `&`.
fn entity(rest: &str) -> (String, usize) {
    let literal = ("&".to_owned(), 1);
    let Some(semi) = rest.bytes().take(34).position(|b| b == b';') else {
        return literal;
    };
    let name = &rest[1..semi];
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse::<u32>().ok(),
        };
        let Some(code) = code else {
            return literal;
        };
        let ch = char::from_u32(code).filter(|c| *c != '\0').unwrap_or('\u{fffd}');
        return (ch.to_string(), semi + 1);
    }
    match NAMED.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => ((*text).to_owned(), semi + 1),
        None => literal,
    }
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn renders_blocks_lists_links_and_drops_scripts() {
        let html = r#"<!DOCTYPE html><html><head><title>T &amp; Co</title>
            <style>body { color: red }</style><script>var x = "</p>";</script></head>
            <body><h1>Hello</h1><p>One <b>two</b>
            three &lt;4&gt; &#169; &#x41;</p><!-- hidden -->
            <ul><li>a</li><li>b <a href="/x?a=1&amp;b=2">link</a></li></ul>
            <table><tr><td>c1</td><td>c2</td></tr></table><pre>  keep
  this</pre><p>5 < 6 && ok</p></body></html>"#;
        let base = url::Url::parse("http://h.example/dir/page").unwrap();
        let text = html_to_text(html, Some(&base));
        assert_eq!(
            text,
            "T & Co\n\n# Hello\n\nOne two three <4> \u{a9} A\n\n- a\n- b link (http://h.example/x?a=1&b=2)\n\n\
             c1 | c2\n\n  keep\n  this\n\n5 < 6 && ok"
        );
    }

    #[test]
    fn tolerates_garbage() {
        for input in [
            "<",
            "<a",
            "<a href=\"x",
            "<script>never closed",
            "&#xffffffff;",
            "&#0;",
            "<<>>&&;;",
            "</",
            "<!--",
        ] {
            let _ = html_to_text(input, None);
        }
        assert_eq!(html_to_text("a &bogus; b &#xZZ; <3", None), "a &bogus; b &#xZZ; <3");
        assert_eq!(html_to_text("<p>x</p><script>", None), "x");
    }
}
