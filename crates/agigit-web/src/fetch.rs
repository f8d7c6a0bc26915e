//! `POST /fetch` (form field `coordinate`): brings a repository announced on the relays here,
//! through the host's [`Remotes::fetch`](crate::Remotes::fetch), and shows it.
//! `POST /r/{slug}/fetch-part` (form field `part`): widens a partial clone by that part,
//! through [`Remotes::fetch_parts`](crate::Remotes::fetch_parts).
//!
//! A POST that changes what the user's disk holds, so it is refused unless the browser says it
//! comes from one of this explorer's own pages (`Origin` the same as `Host`, or
//! `Sec-Fetch-Site: same-origin`): another site's page cannot make a local explorer fetch
//! anything, even where its requests reach `localhost`. One fetch runs at a time.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::Site;
use crate::pages::PageError;

#[derive(Debug, serde::Deserialize)]
pub(crate) struct FetchForm {
    coordinate: String,
}

/// Whether the request comes from a page this server made.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin";
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://") == Some(host)
                || origin.strip_prefix("https://") == Some(host)
        }
        _ => false,
    }
}

/// What both posts share: the same-origin check, a host that fetches, one fetch at a time, the
/// work (`job`, on the blocking pool) and the redirect to the repository it names.
async fn run(
    site: Arc<Site>,
    headers: &HeaderMap,
    what: &str,
    job: impl FnOnce(&Arc<Site>, &dyn crate::Remotes) -> Result<String, PageError> + Send + 'static,
) -> Response {
    if !same_origin(headers) {
        return PageError::Forbidden(format!(
            "{what} is fetched only from this explorer's own pages"
        ))
        .into_page(&site);
    }
    let Some(remotes) = site.remotes.clone().filter(|r| r.fetches()) else {
        return PageError::Forbidden("this explorer does not fetch".into()).into_page(&site);
    };
    let Ok(_permit) = site.fetches.clone().acquire_owned().await else {
        return PageError::Upstream("shutting down".into()).into_page(&site);
    };
    let shared = site.clone();
    match tokio::task::spawn_blocking(move || job(&shared, &*remotes)).await {
        Ok(Ok(slug)) => Redirect::to(&format!("/r/{slug}")).into_response(),
        Ok(Err(page)) => page.into_page(&site),
        Err(_) => PageError::Repo(agigit::Error::Internal("the fetch failed")).into_page(&site),
    }
}

pub(crate) async fn handler(
    State(site): State<Arc<Site>>,
    headers: HeaderMap,
    Form(form): Form<FetchForm>,
) -> Response {
    let coordinate = form
        .coordinate
        .trim()
        .parse::<agigit::event::RepoCoordinate>();
    run(site, &headers, "a repository", move |site, remotes| {
        let coordinate = coordinate.map_err(|e| {
            PageError::BadRequest(format!("{:?} is not a repository: {e}", form.coordinate))
        })?;
        let dir = remotes.fetch(&coordinate).map_err(PageError::Upstream)?;
        crate::Explorer { site: site.clone() }
            .add_repository(&dir)
            .map_err(|e| {
                PageError::Upstream(match std::error::Error::source(&e) {
                    Some(why) => format!("{e}: {why}"),
                    None => e.to_string(),
                })
            })
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct PartForm {
    part: String,
}

pub(crate) async fn part_handler(
    State(site): State<Arc<Site>>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PartForm>,
) -> Response {
    run(site, &headers, "a part", move |site, remotes| {
        let part = agigit::Part::from_name(&form.part)
            .ok_or_else(|| PageError::BadRequest(format!("{:?} is not a part", form.part)))?;
        let (listed, _) = crate::pages::open(site, &slug)?;
        remotes
            .fetch_parts(&listed.path, &[part])
            .map_err(PageError::Upstream)?;
        Ok(slug)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_the_explorers_own_pages_may_fetch() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://localhost:8717"),
            ("host", "localhost:8717"),
        ])));
        assert!(same_origin(&headers(&[
            ("origin", "http://localhost:8717"),
            ("host", "localhost:8717"),
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "localhost:8717"),
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://localhost:8717.evil.example"),
            ("host", "localhost:8717"),
        ])));
        assert!(!same_origin(&headers(&[("host", "localhost:8717")])));
        assert!(!same_origin(&headers(&[])));
    }
}
