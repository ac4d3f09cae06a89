//! The agents' softphone page, served by callscope itself: three static files compiled into
//! the binary (no framework, no build step, nothing fetched from a CDN), so the page always
//! matches the server's signalling protocol (docs/softphone-protocol.md).
//!
//! Every response carries a strict Content-Security-Policy: scripts, styles and connections
//! only from this origin, no inline code, no framing. The page holds a session that can
//! place calls, so injected script or clickjacking must find nothing to run or frame.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const TAG: &str = crate::http::openapi::tags::AGENTS;

const INDEX_HTML: &str = include_str!("../web/softphone/index.html");
const APP_JS: &str = include_str!("../web/softphone/app.js");
const APP_CSS: &str = include_str!("../web/softphone/app.css");

/// `'self'` covers the page's own ws:/wss: origin in CSP Level 3 (Chromium, Firefox,
/// Safari), so the signalling socket needs no host-specific source.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The softphone's routes, at the root of the server (not under `/api/v1`).
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(root_redirect))
        .routes(routes!(softphone_redirect))
        .routes(routes!(index))
        .routes(routes!(index_html))
        .routes(routes!(app_js))
        .routes(routes!(app_css))
}

#[utoipa::path(get, path = "/", tag = TAG, security(()),
    responses((status = 303, description = "To the softphone page.")))]
async fn root_redirect() -> Redirect {
    to_softphone()
}

#[utoipa::path(get, path = "/softphone", tag = TAG, security(()),
    responses((status = 303, description = "To the softphone page.")))]
async fn softphone_redirect() -> Redirect {
    to_softphone()
}

fn to_softphone() -> Redirect {
    // 303: whatever the method was, the browser GETs the page.
    Redirect::to("/softphone/")
}

#[utoipa::path(get, path = "/softphone/", tag = TAG, security(()),
    responses((status = 200, description = "The agents' softphone page.", content_type = "text/html")))]
async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

#[utoipa::path(get, path = "/softphone/index.html", tag = TAG, security(()),
    responses((status = 200, description = "The agents' softphone page.", content_type = "text/html")))]
async fn index_html() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

#[utoipa::path(get, path = "/softphone/app.js", tag = TAG, security(()),
    responses((status = 200, description = "The softphone's script.", content_type = "text/javascript")))]
async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

#[utoipa::path(get, path = "/softphone/app.css", tag = TAG, security(()),
    responses((status = 200, description = "The softphone's style sheet.", content_type = "text/css")))]
async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 7] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // Revalidate every time: a new callscope must never run yesterday's script.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("microphone=(self), camera=(), geolocation=()"),
        ),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        // The CSP forbids inline code: the page must reference its script and style files and
        // carry no inline script, style attribute or handler.
        assert!(INDEX_HTML.contains(r#"<script src="app.js" defer></script>"#));
        assert!(INDEX_HTML.contains(r#"<link rel="stylesheet" href="app.css">"#));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        assert!(!INDEX_HTML.contains(" onclick="));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        assert!(
            !APP_JS.contains("innerHTML"),
            "text goes in with textContent"
        );
    }

    #[test]
    fn csp_has_no_unsafe_sources() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'self'"));
    }
}
