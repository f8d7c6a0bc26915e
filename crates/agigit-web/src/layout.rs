//! The page shell: head, header with the site's name and a search box, the page's body.

use maud::{DOCTYPE, Markup, html};

use crate::Site;

/// A link in the trail at the top of a page.
pub(crate) struct Crumb {
    pub(crate) text: String,
    pub(crate) href: Option<String>,
}

impl Crumb {
    pub(crate) fn link(text: impl Into<String>, href: impl Into<String>) -> Self {
        Crumb {
            text: text.into(),
            href: Some(href.into()),
        }
    }

    pub(crate) fn here(text: impl Into<String>) -> Self {
        Crumb {
            text: text.into(),
            href: None,
        }
    }
}

/// A whole page: `title` in the window's title, `crumbs` under the header, `body` below.
pub(crate) fn page(site: &Site, title: &str, crumbs: &[Crumb], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (site.title) }
                link rel="stylesheet" href=(crate::assets::STYLE_URL);
                script src=(crate::assets::SCRIPT_URL) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "agigit" }
                    span.site { (site.title) }
                    form.search action="/" method="get" role="search" {
                        input type="search" name="q" placeholder="Search repositories ( / )" aria-label="Search repositories" accesskey="s";
                    }
                }
                @if !crumbs.is_empty() {
                    nav.crumbs aria-label="Breadcrumb" {
                        @for (i, c) in crumbs.iter().enumerate() {
                            @if i > 0 { span.sep { "/" } }
                            @match &c.href {
                                Some(href) => a href=(href) { (c.text) },
                                None => span aria-current="page" { (c.text) },
                            }
                        }
                    }
                }
                main { (body) }
                footer {
                    "agigit " (env!("CARGO_PKG_VERSION")) " · keys: "
                    kbd { "j" } "/" kbd { "k" } " move, " kbd { "Enter" } " open, " kbd { "/" } " search"
                }
            }
        }
    }
}
