//! A repository's README as HTML: CommonMark (tables, strikethrough, task lists) with the
//! document's own HTML dropped and only `http`, `https`, `mailto` and relative link targets
//! kept — a README is written by whoever owns the repository, and the page is the viewer's.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};

/// The most README bytes rendered; the rest is cut (the page says so).
pub(crate) const MAX_README: u64 = 256 * 1024;

/// `source` rendered as safe HTML.
pub(crate) fn render(source: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(source, options).map(|event| match event {
        // Raw HTML is shown as the text it is, never interpreted.
        Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
        // Images would make the viewer's browser fetch from anywhere: shown as links.
        Event::Start(
            Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }
            | Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            },
        ) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::End(pulldown_cmark::TagEnd::Image) => Event::End(pulldown_cmark::TagEnd::Link),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// The link target when its scheme is one a page may follow; `#` otherwise.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.contains(['/', '?', '#']));
    match scheme {
        None | Some("http" | "https" | "mailto") => url,
        Some(_) => CowStr::Borrowed("#"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders() {
        let html = render("# Model\n\nA *small* model.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert!(html.contains("<h1>Model</h1>"), "{html}");
        assert!(html.contains("<em>small</em>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }

    #[test]
    fn the_authors_html_and_scripts_stay_text() {
        let html = render(
            "<script>alert(1)</script>\n\nhi <img src=x onerror=alert(2)> \
             [a](javascript:alert(3)) [b](JaVaScRiPt:alert(4)) [c](data:text/html,x) \
             [d](https://example.org/) [e](docs/a.md) ![f](https://tracker.example/p.png)",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.to_ascii_lowercase().contains("javascript:"), "{html}");
        assert!(!html.contains("data:text"), "{html}");
        assert!(html.contains(r#"href="https://example.org/""#), "{html}");
        assert!(html.contains(r#"href="docs/a.md""#), "{html}");
        assert!(
            html.contains(r#"href="https://tracker.example/p.png""#),
            "{html}"
        );
    }
}
