//! Download a remote recording (`recording_url` from a PBX or Twilio webhook) to a file,
//! safely: http(s) only, bounded redirects, connect/idle/total timeouts, a size limit
//! enforced both from `Content-Length` and while streaming, SHA-256 computed on the way, and
//! a temporary file renamed into place only when complete — a failed download leaves nothing.
//!
//! [`FetchError::is_retryable`] tells the job queue whether trying again later can help.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::egress::{EgressPolicy, EgressRefused};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub connect_timeout: Duration,
    /// Longest pause between two reads of the body: catches stalled servers early.
    pub read_timeout: Duration,
    /// Whole download, headers and body.
    pub total_timeout: Duration,
    pub max_redirects: usize,
    /// Which addresses may be fetched from (public only by default).
    pub egress: EgressPolicy,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(300),
            max_redirects: 5,
            egress: EgressPolicy {
                allow_private_networks: false,
            },
        }
    }
}

/// HTTP basic credentials, e.g. a Twilio account SID and auth token for recordings that
/// require authentication. Only sent to the original host: reqwest drops `Authorization`
/// on a redirect to another host, scheme or port.
#[derive(Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub url: String,
    /// Final path of the file; its directory must exist. Replaced atomically if present.
    pub dest: PathBuf,
    pub max_bytes: u64,
    pub basic_auth: Option<BasicAuth>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedFile {
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    pub content_type: Option<String>,
    /// Where the bytes finally came from, after redirects.
    pub final_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("unsupported URL scheme {0:?}: only http and https are fetched")]
    UnsupportedScheme(String),
    #[error("more than {max} redirects")]
    TooManyRedirects { max: usize },
    #[error("the remote file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the server answered HTTP {status}")]
    HttpStatus { status: u16 },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("transfer failed: {0}")]
    Transfer(String),
    #[error("could not write the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP client could not be built: {0}")]
    Client(String),
    #[error("refused: {0}")]
    Forbidden(#[from] EgressRefused),
}

impl FetchError {
    /// Whether a later attempt could succeed: network trouble, timeouts, 5xx, 408 and 429
    /// are transient; bad URLs, 4xx, oversize files and redirect loops are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Timeout(_) | FetchError::Connect(_) | FetchError::Transfer(_) => true,
            FetchError::HttpStatus { status } => *status >= 500 || *status == 429 || *status == 408,
            // A local disk hiccup (full, busy) is not the remote's fault and may pass.
            FetchError::Io(_) => true,
            FetchError::InvalidUrl(_)
            | FetchError::UnsupportedScheme(_)
            | FetchError::TooManyRedirects { .. }
            | FetchError::TooLarge { .. }
            | FetchError::Client(_)
            | FetchError::Forbidden(_) => false,
        }
    }
}

/// Raised inside the redirect policy and recognised again in the error chain.
#[derive(Debug, thiserror::Error)]
#[error("more than {0} redirects")]
struct RedirectLimit(usize);

#[derive(Debug, thiserror::Error)]
#[error("redirect to unsupported scheme {0:?}")]
struct RedirectScheme(String);

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn classify(e: reqwest::Error, config: &FetchConfig) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(inner) = source {
        if let Some(RedirectLimit(max)) = inner.downcast_ref::<RedirectLimit>() {
            return FetchError::TooManyRedirects { max: *max };
        }
        if let Some(RedirectScheme(s)) = inner.downcast_ref::<RedirectScheme>() {
            return FetchError::UnsupportedScheme(s.clone());
        }
        // From the redirect policy, or from the resolver: the name only had forbidden
        // addresses. Not a network failure, so not worth retrying.
        if let Some(refused) = inner.downcast_ref::<EgressRefused>() {
            return FetchError::Forbidden(refused.clone());
        }
        source = inner.source();
    }
    if e.is_timeout() {
        FetchError::Timeout(format!(
            "no complete answer within the limits (connect {:?}, idle {:?}, total {:?})",
            config.connect_timeout, config.read_timeout, config.total_timeout
        ))
    } else if e.is_connect() {
        FetchError::Connect(error_chain(&e))
    } else if e.is_builder() {
        FetchError::InvalidUrl(error_chain(&e))
    } else {
        FetchError::Transfer(error_chain(&e))
    }
}

fn check_url(raw: &str) -> Result<reqwest::Url, FetchError> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::UnsupportedScheme(url.scheme().to_string()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FetchError::InvalidUrl("the URL has no host".into()));
    }
    Ok(url)
}

/// A reusable downloader (holds one connection pool).
#[derive(Debug, Clone)]
pub struct RemoteFetcher {
    client: reqwest::Client,
    config: FetchConfig,
}

impl RemoteFetcher {
    pub fn new(config: FetchConfig) -> Result<Self, FetchError> {
        let max = config.max_redirects;
        let egress = config.egress;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                attempt.error(RedirectLimit(max))
            } else if !matches!(attempt.url().scheme(), "http" | "https") {
                let scheme = attempt.url().scheme().to_string();
                attempt.error(RedirectScheme(scheme))
            } else if let Err(refused) = egress.check_url(attempt.url()) {
                // A redirect to an IP literal never reaches the guarded resolver.
                attempt.error(refused)
            } else {
                attempt.follow()
            }
        });
        let client = config
            .egress
            .client_builder()
            .redirect(policy)
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.total_timeout)
            .user_agent(concat!("callscope/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Client(error_chain(&e)))?;
        Ok(Self { client, config })
    }

    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Download `req.url` to `req.dest`. On any error nothing is left at `dest` (an existing
    /// file there is untouched) and no temporary file remains.
    pub async fn fetch(&self, req: &FetchRequest) -> Result<FetchedFile, FetchError> {
        let url = check_url(&req.url)?;
        self.config.egress.check_url(&url)?;
        let mut request = self.client.get(url);
        if let Some(auth) = &req.basic_auth {
            request = request.basic_auth(&auth.username, Some(&auth.password));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| classify(e, &self.config))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::HttpStatus {
                status: status.as_u16(),
            });
        }
        if response.content_length().is_some_and(|n| n > req.max_bytes) {
            return Err(FetchError::TooLarge {
                limit: req.max_bytes,
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let final_url = response.url().to_string();

        // The temporary file lives next to the destination so the final rename is atomic;
        // it deletes itself when dropped on any early return below.
        let dir = req
            .dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".fetch-")
            .suffix(".part")
            .tempfile_in(dir)?;
        let mut file = tokio::fs::File::from_std(temp.reopen()?);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify(e, &self.config))?
        {
            size = size.saturating_add(chunk.len() as u64);
            // Checked per chunk because Content-Length may be absent or a lie.
            if size > req.max_bytes {
                return Err(FetchError::TooLarge {
                    limit: req.max_bytes,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let dest = req.dest.clone();
        tokio::task::spawn_blocking(move || temp.persist(&dest).map_err(|e| e.error))
            .await
            .map_err(|e| FetchError::Io(std::io::Error::other(e)))??;
        Ok(FetchedFile {
            path: req.dest.clone(),
            size,
            sha256: hex::encode(hasher.finalize()),
            content_type,
            final_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability() {
        assert!(FetchError::HttpStatus { status: 500 }.is_retryable());
        assert!(FetchError::HttpStatus { status: 503 }.is_retryable());
        assert!(FetchError::HttpStatus { status: 429 }.is_retryable());
        assert!(!FetchError::HttpStatus { status: 404 }.is_retryable());
        assert!(!FetchError::HttpStatus { status: 403 }.is_retryable());
        assert!(!FetchError::TooLarge { limit: 1 }.is_retryable());
        assert!(!FetchError::UnsupportedScheme("ftp".into()).is_retryable());
        assert!(FetchError::Timeout(String::new()).is_retryable());
    }

    #[test]
    fn url_checks() {
        assert!(check_url("https://example.com/a.wav").is_ok());
        assert!(matches!(
            check_url("file:///etc/passwd"),
            Err(FetchError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            check_url("ftp://example.com/a"),
            Err(FetchError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            check_url("nonsense"),
            Err(FetchError::InvalidUrl(_))
        ));
    }
}
