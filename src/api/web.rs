//! The page at `GET /`: a moderator's and operator's view of `POST /detect`
//! (verdict, score against the operating point, family bars, highlighted
//! segments, nearest references) and of `POST /reference`. The files are
//! compiled into the binary, so the page needs no build step, no CDN and
//! no network beyond this service; the page calls the public JSON API like
//! any other client, with the key the user enters.
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// (name under `/ui/`, content type, body); the page itself is `index.html`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("web/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("web/style.css"),
    ),
];

/// Only this origin's own files and API; no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// Strong validators, one per file, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, body)| {
                let digest = Sha256::digest(body.as_bytes());
                format!("\"{}\"", hex::encode(&digest[..12]))
            })
            .collect()
    })
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let (_, content_type, body) = FILES[i];
    let etag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let common = [
        (header::ETAG, HeaderValue::from_str(etag).expect("hex etag")),
        // Revalidate every time: a new binary must never run an old page.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// `GET /`
pub async fn page(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// `GET /ui/{file}`
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    FILES
        .iter()
        .position(|(n, _, _)| *n == name)
        .map(|i| serve(i, &headers))
        .ok_or_else(|| ApiError::NotFound(format!("no page file {name:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_that_are_served() {
        let page = FILES[0].2;
        for (name, _, _) in &FILES[1..] {
            assert!(page.contains(&format!("/ui/{name}")), "{name} is not used");
        }
        for link in page.split("\"/ui/").skip(1) {
            let name = &link[..link.find('"').unwrap()];
            assert!(FILES.iter().any(|(n, _, _)| *n == name), "{name} missing");
        }
        // No inline script or style: the policy forbids them.
        assert!(!page.contains("<script>") && !page.contains("style="));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
