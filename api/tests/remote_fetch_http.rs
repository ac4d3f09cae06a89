//! remote_fetch against a real HTTP server on 127.0.0.1 (axum), covering success, redirects,
//! size limits with and without Content-Length, status codes, auth and timeouts.

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use callscope_api::egress::EgressPolicy;
use callscope_api::remote_fetch::{
    BasicAuth, FetchConfig, FetchError, FetchRequest, RemoteFetcher,
};
use futures::StreamExt;

const LIMIT: u64 = 1_000_000;

/// Deterministic, non-repeating-looking content.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + i / 251) % 256) as u8).collect()
}

fn chunked(total: usize, pause: Duration) -> Body {
    let chunks = (0..total.div_ceil(64 * 1024)).map(move |i| {
        let len = (total - i * 64 * 1024).min(64 * 1024);
        Bytes::from(vec![7u8; len])
    });
    let stream = futures::stream::iter(chunks).then(move |c| async move {
        tokio::time::sleep(pause).await;
        Ok::<_, std::io::Error>(c)
    });
    Body::from_stream(stream)
}

async fn server() -> String {
    let app = Router::new()
        .route(
            "/ok.wav",
            get(|| async { ([(header::CONTENT_TYPE, "audio/wav")], payload(300_000)) }),
        )
        .route(
            "/redirect/{n}",
            get(|UrlPath(n): UrlPath<u32>| async move {
                if n == 0 {
                    Redirect::temporary("/ok.wav")
                } else {
                    Redirect::temporary(&format!("/redirect/{}", n - 1))
                }
            }),
        )
        .route(
            "/to-ftp",
            get(|| async { Redirect::temporary("ftp://127.0.0.1/x.wav") }),
        )
        .route("/big-with-length", get(|| async { vec![1u8; 2_000_000] }))
        .route(
            "/big-chunked",
            get(|| async { Response::new(chunked(3_000_000, Duration::ZERO)) }),
        )
        .route(
            // Exactly the limit, streamed without a length: the running count must not
            // refuse a file that fits.
            "/exactly-limit",
            get(|| async { Response::new(chunked(LIMIT as usize, Duration::ZERO)) }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/busy", get(|| async { StatusCode::TOO_MANY_REQUESTS }))
        .route(
            "/slow-head",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/slow-body",
            get(|| async { Response::new(chunked(10 * 64 * 1024, Duration::from_secs(2))) }),
        )
        .route(
            "/private.wav",
            get(|headers: HeaderMap| async move {
                // "AC123:token" in base64.
                let ok = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    == Some("Basic QUMxMjM6dG9rZW4=");
                if ok {
                    payload(1000).into_response()
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

fn fetcher() -> RemoteFetcher {
    RemoteFetcher::new(FetchConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(10),
        total_timeout: Duration::from_millis(1500),
        max_redirects: 5,
        // The test servers listen on loopback.
        egress: EgressPolicy {
            allow_private_networks: true,
        },
    })
    .unwrap()
}

fn request(url: String, dir: &Path) -> FetchRequest {
    FetchRequest {
        url,
        dest: dir.join("recording.bin"),
        max_bytes: LIMIT,
        basic_auth: None,
    }
}

/// The directory holds nothing at all: no result, no leftover temporary file.
fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn downloads_a_file_with_its_hash() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let got = fetcher()
        .fetch(&request(format!("{base}/ok.wav"), dir.path()))
        .await
        .unwrap();
    assert_eq!(got.size, 300_000);
    assert_eq!(std::fs::read(&got.path).unwrap(), payload(300_000));
    assert_eq!(
        got.sha256,
        sha256sum(&got.path),
        "matches coreutils sha256sum"
    );
    assert_eq!(got.content_type.as_deref(), Some("audio/wav"));
    // Only the result is in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn follows_up_to_five_redirects_and_refuses_more() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher();
    let got = f
        .fetch(&request(format!("{base}/redirect/4"), dir.path()))
        .await
        .unwrap();
    assert!(got.final_url.ends_with("/ok.wav"), "{}", got.final_url);
    assert_eq!(got.size, 300_000);

    let dir = tempfile::tempdir().unwrap();
    let err = f
        .fetch(&request(format!("{base}/redirect/5"), dir.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { max: 5 }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_empty(dir.path());

    let err = f
        .fetch(&request(format!("{base}/to-ftp"), dir.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::UnsupportedScheme(ref s) if s == "ftp"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_empty(dir.path());
}

#[tokio::test]
async fn too_large_with_and_without_content_length() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher();
    for path in ["/big-with-length", "/big-chunked"] {
        let err = f
            .fetch(&request(format!("{base}{path}"), dir.path()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { limit: LIMIT }),
            "{path}: {err:?}"
        );
        assert!(!err.is_retryable());
        assert_empty(dir.path());
    }
    // Exactly at the limit is allowed.
    let got = f
        .fetch(&request(format!("{base}/exactly-limit"), dir.path()))
        .await
        .unwrap();
    assert_eq!(got.size, LIMIT);
}

#[tokio::test]
async fn status_codes_decide_retryability() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher();
    let cases = [
        ("/missing", 404, false),
        ("/broken", 500, true),
        ("/busy", 429, true),
    ];
    for (path, code, retryable) in cases {
        let err = f
            .fetch(&request(format!("{base}{path}"), dir.path()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::HttpStatus { status } if status == code),
            "{path}: {err:?}"
        );
        assert_eq!(err.is_retryable(), retryable, "{path}");
        assert_empty(dir.path());
    }
}

#[tokio::test]
async fn slow_servers_time_out_and_are_retryable() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher();
    for path in ["/slow-head", "/slow-body"] {
        let started = std::time::Instant::now();
        let err = f
            .fetch(&request(format!("{base}{path}"), dir.path()))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Timeout(_)), "{path}: {err:?}");
        assert!(err.is_retryable());
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{path} took {:?}",
            started.elapsed()
        );
        assert_empty(dir.path());
    }
}

#[tokio::test]
async fn unreachable_host_is_a_retryable_connect_error() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let err = fetcher()
        .fetch(&request(
            format!("http://127.0.0.1:{port}/x.wav"),
            dir.path(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Connect(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_empty(dir.path());
}

#[tokio::test]
async fn bad_schemes_are_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    for url in ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/"] {
        let err = fetcher()
            .fetch(&request(url.into(), dir.path()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::UnsupportedScheme(_)),
            "{url}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
    let err = fetcher()
        .fetch(&request("not a url".into(), dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::InvalidUrl(_)), "{err:?}");
    assert_empty(dir.path());
}

#[tokio::test]
async fn basic_auth_is_sent_when_configured() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher();
    let err = f
        .fetch(&request(format!("{base}/private.wav"), dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::HttpStatus { status: 401 }));
    let mut req = request(format!("{base}/private.wav"), dir.path());
    req.basic_auth = Some(BasicAuth {
        username: "AC123".into(),
        password: "token".into(),
    });
    assert!(
        !format!("{req:?}").contains("token"),
        "password never printed"
    );
    let got = f.fetch(&req).await.unwrap();
    assert_eq!(std::fs::read(got.path).unwrap(), payload(1000));
}

#[tokio::test]
async fn a_failed_download_leaves_an_existing_file_untouched() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let req = request(format!("{base}/big-chunked"), dir.path());
    std::fs::write(&req.dest, b"previous").unwrap();
    assert!(fetcher().fetch(&req).await.is_err());
    assert_eq!(std::fs::read(&req.dest).unwrap(), b"previous");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
