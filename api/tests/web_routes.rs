//! The softphone page's routes on the real server: `/` redirects to it, each file has its
//! content type, `no-cache` and the strict CSP, no API key or session is needed to load it,
//! and what the HTML references is exactly what is served.

mod common;

use common::TestServer;
use reqwest::header;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header_of(response: &reqwest::Response, name: header::HeaderName) -> String {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn root_redirects_to_the_softphone() {
    let server = TestServer::start(|_| {}).await;
    let client = no_redirects();
    for path in ["/", "/softphone"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 303, "{path}");
        assert_eq!(
            header_of(&response, header::LOCATION),
            "/softphone/",
            "{path}"
        );
    }
}

#[tokio::test]
async fn page_and_assets_have_types_caching_and_csp() {
    let server = TestServer::start(|_| {}).await;
    let client = no_redirects();
    let files = [
        ("/softphone/", "text/html; charset=utf-8"),
        ("/softphone/index.html", "text/html; charset=utf-8"),
        ("/softphone/app.js", "text/javascript; charset=utf-8"),
        ("/softphone/app.css", "text/css; charset=utf-8"),
    ];
    let mut html = String::new();
    for (path, content_type) in files {
        // No API key, no cookie: the page is public, what it does is not.
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(header_of(&response, header::CONTENT_TYPE), content_type);
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert_eq!(header_of(&response, header::X_FRAME_OPTIONS), "DENY");
        let csp = header_of(&response, header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(
                csp.split(';').any(|d| d.trim() == directive),
                "{path}: {directive} missing from {csp}"
            );
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        let body = response.text().await.unwrap();
        assert!(body.len() > 500, "{path}: {} bytes", body.len());
        if path == "/softphone/" {
            html = body;
        }
    }
    // The page loads its own two files, nothing from elsewhere, nothing inline.
    assert!(html.contains(r#"src="app.js""#));
    assert!(html.contains(r#"href="app.css""#));
    assert!(!html.contains("<style") && !html.contains(" style="));
    assert!(!html.contains("http://") && !html.contains("https://"));
    let inline_scripts = html.matches("<script").count();
    let external_scripts = html.matches("<script src=").count();
    assert_eq!(
        inline_scripts, external_scripts,
        "inline <script> in the page"
    );
}

#[tokio::test]
async fn unknown_softphone_files_are_not_found() {
    let server = TestServer::start(|_| {}).await;
    let client = no_redirects();
    for path in [
        "/softphone/app.jsx",
        "/softphone/../Cargo.toml",
        "/softphone/%2e%2e/Cargo.toml",
        "/softphone/index.html/x",
    ] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    // Only GET: the page's routes take no writes.
    let response = client
        .post(server.url("/softphone/"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
}
