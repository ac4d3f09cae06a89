//! Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw
//! body)>`. It must be checked on the exact bytes received, before anything is stored.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER: &str = "X-Hub-Signature-256";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Hub-Signature-256 header missing")]
    Missing,
    #[error("X-Hub-Signature-256 header malformed")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

fn mac(app_secret: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of every length; `new_from_slice` only fails for fixed-size-key MACs.
    #[allow(clippy::expect_used)]
    let mut m = HmacSha256::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
    m.update(body);
    m
}

/// The header value Meta would send for `body` (for tests and tools).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(app_secret, body).finalize().into_bytes())
    )
}

/// Decode the header into the 32 MAC bytes, without knowing any secret yet.
pub fn parse_header(header: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_part = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let bytes = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    if bytes.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    Ok(bytes)
}

/// Constant-time check of the decoded signature against the body.
pub fn verify(app_secret: &str, signature: &[u8], body: &[u8]) -> Result<(), SignatureError> {
    mac(app_secret, body)
        .verify_slice(signature)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let header = sign("app-secret", body);
        let sig = parse_header(Some(&header)).unwrap();
        assert_eq!(verify("app-secret", &sig, body), Ok(()));
        assert_eq!(
            verify("other-secret", &sig, body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("app-secret", &sig, b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(parse_header(None), Err(SignatureError::Missing));
        for bad in ["", "sha1=00", "sha256=zz", "sha256=00ff", "sha256"] {
            assert_eq!(
                parse_header(Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn matches_an_independent_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a widely
        // published value (e.g. Wikipedia's HMAC article).
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
