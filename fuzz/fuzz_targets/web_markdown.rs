//! A README from someone else's repository, rendered by the web explorer: whatever the bytes,
//! the HTML holds only the tags CommonMark makes, no event handler, and no link to a scheme
//! other than http, https and mailto.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The tags pulldown-cmark emits for CommonMark with tables, strikethrough and task lists.
const TAGS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "em",
    "strong",
    "del",
    "a",
    "ul",
    "ol",
    "li",
    "code",
    "pre",
    "blockquote",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "hr",
    "br",
    "input",
];

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let html = agigit_web::markdown_to_html(source);
    let mut rest = html.as_str();
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let name: String = rest
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        assert!(TAGS.contains(&name.as_str()), "tag <{name}> in {html:?}");
        let tag_end = rest.find('>').unwrap_or(rest.len());
        let tag = rest[..tag_end].to_ascii_lowercase();
        assert!(!tag.contains(" on"), "an event handler in <{tag}>");
        if let Some(href) = tag.split("href=\"").nth(1) {
            let target = href.split('"').next().unwrap_or_default();
            let scheme = target.split_once(':').map(|(s, _)| s);
            assert!(
                scheme.is_none_or(
                    |s| s.contains(['/', '?', '#']) || ["http", "https", "mailto"].contains(&s)
                ),
                "link to {target:?}"
            );
        }
    }
});
