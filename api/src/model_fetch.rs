//! `callscope models fetch NAME`: download a whisper ggml model listed in
//! `models/manifest.toml`, safely.
//!
//! Safety means: only names in the manifest (no arbitrary URLs from a typo); the body is
//! streamed to a temporary file in the destination directory, never held in memory; the
//! download is capped at the manifest's size bound and checked against its SHA-1; only a
//! verified file is renamed to its final name (atomic on one filesystem), so a crash or
//! a failed check never leaves a half model where the server would load it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;

/// The manifest, compiled in so the binary knows the models without the source tree.
const MANIFEST: &str = include_str!("../../models/manifest.toml");

/// The public whisper.cpp model repository (the manifest's `source.base_url`).
pub const DEFAULT_BASE_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    #[serde(rename = "model")]
    models: Vec<ModelEntry>,
}

/// One downloadable model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub file: String,
    /// Approximate size in MiB (whisper.cpp's figure); downloads may be at most 10 % larger.
    pub approx_size_mib: u64,
    pub multilingual: bool,
    /// SHA-1 of the file as whisper.cpp publishes it, lowercase hex.
    pub sha1: Option<String>,
    /// Exact size in bytes, when known.
    pub bytes: Option<u64>,
}

impl ModelEntry {
    /// The most bytes a download of this model may have.
    fn max_bytes(&self) -> u64 {
        self.bytes.unwrap_or_else(|| {
            self.approx_size_mib
                .saturating_mul(1024 * 1024)
                .saturating_mul(11)
                / 10
        })
    }
}

/// The models the manifest lists.
pub fn known_models() -> anyhow::Result<Vec<ModelEntry>> {
    let manifest: Manifest = toml::from_str(MANIFEST).context("models/manifest.toml is invalid")?;
    Ok(manifest.models)
}

/// Download model `name` (e.g. "base.en") from `base_url` (normally [`DEFAULT_BASE_URL`])
/// into `dest_dir`, returning the path of the verified file. An existing file with the
/// right checksum is kept and returned without downloading.
pub async fn fetch_model(name: &str, dest_dir: &Path, base_url: &str) -> anyhow::Result<PathBuf> {
    let models = known_models()?;
    let Some(entry) = models.iter().find(|m| m.name == name) else {
        let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        bail!("unknown model {name:?}; known models: {}", names.join(", "));
    };
    fetch_entry(entry, dest_dir, base_url).await
}

/// Download one manifest entry (see [`fetch_model`]).
pub async fn fetch_entry(
    entry: &ModelEntry,
    dest_dir: &Path,
    base_url: &str,
) -> anyhow::Result<PathBuf> {
    // The file name comes from our manifest, but keep the rule explicit: a bare file name.
    if entry.file.is_empty() || entry.file.contains(['/', '\\']) || entry.file.starts_with('.') {
        bail!(
            "manifest file name {:?} is not a plain file name",
            entry.file
        );
    }
    tokio::fs::create_dir_all(dest_dir)
        .await
        .with_context(|| format!("cannot create {}", dest_dir.display()))?;
    let final_path = dest_dir.join(&entry.file);
    if tokio::fs::try_exists(&final_path).await.unwrap_or(false) {
        if let Some(expected) = &entry.sha1
            && sha1_of_file(&final_path).await? == *expected
        {
            tracing::info!(path = %final_path.display(), "model already present and verified");
            return Ok(final_path);
        }
        tracing::warn!(path = %final_path.display(), "existing model file does not match the manifest; downloading again");
    }

    let url = format!("{}/{}", base_url.trim_end_matches('/'), entry.file);
    let temp_path = dest_dir.join(format!(
        ".{}.part-{}",
        entry.file,
        uuid::Uuid::new_v4().simple()
    ));
    let result = download_verified(entry, &url, &temp_path).await;
    match result {
        Ok(()) => {
            tokio::fs::rename(&temp_path, &final_path)
                .await
                .with_context(|| format!("cannot move the download to {}", final_path.display()))?;
            tracing::info!(model = %entry.name, path = %final_path.display(), "model downloaded and verified");
            Ok(final_path)
        }
        Err(e) => {
            // Best effort: the temporary file may not exist if the request failed early.
            let _ = tokio::fs::remove_file(&temp_path).await;
            Err(e)
        }
    }
}

async fn download_verified(entry: &ModelEntry, url: &str, temp_path: &Path) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        // A stalled transfer fails instead of hanging; a slow but moving one continues.
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .context("cannot build the HTTP client")?;
    let mut response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let max = entry.max_bytes();
    if let Some(len) = response.content_length()
        && len > max
    {
        bail!(
            "{url} announces {len} bytes; model {} should be at most {max}",
            entry.name
        );
    }

    let mut file = tokio::fs::File::create(temp_path)
        .await
        .with_context(|| format!("cannot create {}", temp_path.display()))?;
    let mut hasher = Sha1::new();
    let mut received: u64 = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("download of {url} failed"))?
    {
        received += chunk.len() as u64;
        if received > max {
            bail!(
                "{url} sent more than {max} bytes; refusing model {}",
                entry.name
            );
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", temp_path.display()))?;
    }
    file.flush().await?;
    file.sync_all().await?;
    drop(file);

    if let Some(bytes) = entry.bytes
        && received != bytes
    {
        bail!("{url}: got {received} bytes, expected {bytes}");
    }
    if received == 0 {
        bail!("{url} sent an empty body");
    }
    let actual = hex::encode(hasher.finalize());
    match &entry.sha1 {
        Some(expected) if !expected.eq_ignore_ascii_case(&actual) => Err(anyhow!(
            "checksum mismatch for {}: SHA-1 {actual}, expected {expected}",
            entry.name
        )),
        _ => Ok(()),
    }
}

async fn sha1_of_file(path: &Path) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    /// A real HTTP server on 127.0.0.1 (ephemeral port) serving `body` at `/<file>`;
    /// aborted when the returned handle is dropped at the end of the test.
    async fn serve(file: &str, body: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
        let route = format!("/{file}");
        let app = Router::new()
            .route(&route, get(move || async move { body.clone() }))
            .route("/missing.bin", get(|| async { StatusCode::NOT_FOUND }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), handle)
    }

    fn entry(file: &str, body: &[u8]) -> ModelEntry {
        ModelEntry {
            name: "test-model".into(),
            file: file.into(),
            approx_size_mib: 1,
            multilingual: false,
            sha1: Some(hex::encode(Sha1::digest(body))),
            bytes: None,
        }
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_manifest_lists_the_documented_models_with_checksums() {
        let models = known_models().expect("manifest parses");
        let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tiny",
                "tiny.en",
                "base",
                "base.en",
                "small",
                "small.en",
                "medium",
                "medium.en",
                "large-v3",
                "large-v3-turbo"
            ]
        );
        for m in &models {
            assert_eq!(m.file, format!("ggml-{}.bin", m.name));
            let sha1 = m.sha1.as_deref().expect("sha1");
            assert!(
                sha1.len() == 40 && sha1.bytes().all(|b| b.is_ascii_hexdigit()),
                "{sha1}"
            );
            assert_eq!(m.multilingual, !m.name.ends_with(".en"));
        }
    }

    #[tokio::test]
    async fn downloads_verifies_and_renames_into_place() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (url, server) = serve("ggml-test.bin", body.clone()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fetch_entry(&entry("ggml-test.bin", &body), dir.path(), &url)
            .await
            .expect("download");
        assert_eq!(path, dir.path().join("ggml-test.bin"));
        assert_eq!(std::fs::read(&path).expect("read"), body);
        assert_eq!(leftovers(dir.path()), ["ggml-test.bin"]);

        // A second fetch finds the verified file and keeps it (the server is gone).
        server.abort();
        let again = fetch_entry(
            &entry("ggml-test.bin", &body),
            dir.path(),
            "http://127.0.0.1:9",
        )
        .await
        .expect("already present");
        assert_eq!(again, path);
    }

    #[tokio::test]
    async fn a_checksum_mismatch_leaves_nothing_behind() {
        let (url, server) = serve("ggml-test.bin", b"not the model".to_vec()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let err = fetch_entry(&entry("ggml-test.bin", b"the model"), dir.path(), &url)
            .await
            .expect_err("must fail");
        assert!(err.to_string().contains("checksum mismatch"), "{err:#}");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
        server.abort();
    }

    #[tokio::test]
    async fn oversized_missing_and_unknown_models_are_refused() {
        let big = vec![0u8; 2 * 1024 * 1024];
        let (url, server) = serve("ggml-test.bin", big.clone()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        // approx 1 MiB → at most 1.1 MiB.
        let err = fetch_entry(&entry("ggml-test.bin", &big), dir.path(), &url)
            .await
            .expect_err("too big");
        assert!(err.to_string().contains("at most"), "{err:#}");

        let err = fetch_entry(&entry("missing.bin", b"x"), dir.path(), &url)
            .await
            .expect_err("404");
        assert!(err.to_string().contains("404"), "{err:#}");

        let err = fetch_model("huge-v9", dir.path(), &url)
            .await
            .expect_err("unknown");
        assert!(
            err.to_string().contains("unknown model \"huge-v9\""),
            "{err:#}"
        );
        assert!(err.to_string().contains("base.en"), "{err:#}");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_manifest_model_is_checked_against_the_published_sha1() {
        // The local server pretends to be the model repository; its bytes are not the real
        // tiny.en model, so the manifest's SHA-1 must reject them.
        let (url, server) = serve("ggml-tiny.en.bin", b"ggml fake weights".to_vec()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let err = fetch_model("tiny.en", dir.path(), &url)
            .await
            .expect_err("fake model");
        let msg = err.to_string();
        assert!(msg.contains("checksum mismatch for tiny.en"), "{msg}");
        assert!(
            msg.contains("c78c86eb1a8faa21b369bcd33207cc90d64ae9df"),
            "{msg}"
        );
        assert!(leftovers(dir.path()).is_empty());
        server.abort();
    }
}
