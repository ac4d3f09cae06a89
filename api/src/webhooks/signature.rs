//! Signing of outbound webhook bodies, and the matching check receivers run.
//!
//! Header: `X-Callscope-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`.
//! The key is the endpoint secret's UTF-8 bytes exactly as shown at creation (prefix
//! included). Binding the timestamp into the MAC lets receivers refuse replays older than
//! their tolerance; several `v1=` entries may appear (e.g. during secret rotation) and any
//! one matching is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SIGNATURE_HEADER: &str = "X-Callscope-Signature";
pub const EVENT_HEADER: &str = "X-Callscope-Event";
pub const DELIVERY_HEADER: &str = "X-Callscope-Delivery";

/// Why a signature was refused. Receivers should answer all of them with 400/401 and not
/// say which one (it only helps an attacker); the variants exist for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is malformed")]
    Malformed,
    #[error("signature timestamp is outside the tolerance window")]
    OutsideTolerance,
    #[error("no signature matches the body")]
    Mismatch,
}

fn mac_for(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first); hmac's `InvalidLength`
    // exists only for fixed-key MACs, so this cannot fail whatever the secret is.
    #[allow(clippy::expect_used)]
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The hex HMAC-SHA256 of `t + "." + body`.
pub fn compute_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac_for(secret, timestamp, body).finalize().into_bytes())
}

/// The full header value for a body sent at `timestamp` (unix seconds).
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        compute_signature(secret, timestamp, body)
    )
}

/// Check a received `X-Callscope-Signature` header against the raw body.
///
/// `now` is the receiver's clock in unix seconds; `tolerance_s` how far (either way) the
/// signed timestamp may be from it (300 s is a sensible default). Comparison is constant-time.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    tolerance_s: i64,
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            // A bad hex value can never match; skip it rather than fail the whole header.
            "v1" => {
                if let Ok(bytes) = hex::decode(value) {
                    candidates.push(bytes);
                }
            }
            // Unknown schemes are ignored so that new ones can be added without breaking
            // receivers that only know v1.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance_s.unsigned_abs() {
        return Err(SignatureError::OutsideTolerance);
    }
    let expected = mac_for(secret, timestamp, body);
    if candidates
        .iter()
        .any(|c| expected.clone().verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let body = br#"{"id":"e1","event":"call.processed"}"#;
        let header = signature_header("whsec_test", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify_signature("whsec_test", &header, body, 300, 1_700_000_100),
            Ok(())
        );
        assert_eq!(
            verify_signature("whsec_other", &header, body, 300, 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("whsec_test", &header, b"tampered", 300, 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("whsec_test", &header, body, 300, 1_700_000_301),
            Err(SignatureError::OutsideTolerance)
        );
        for bad in [
            "",
            "t=abc,v1=00",
            "v1=00",
            "t=1",
            "garbage",
            "t=1,t=2,v1=00",
        ] {
            assert_eq!(
                verify_signature("whsec_test", bad, body, 300, 1),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn any_of_several_v1_values_may_match() {
        let body = b"{}";
        let good = compute_signature("s", 10, body);
        let header = format!("t=10,v1=zz,v1={},v0=ignored", good);
        assert_eq!(verify_signature("s", &header, body, 5, 12), Ok(()));
    }

    #[test]
    fn matches_an_independent_hmac_vector() {
        // RFC 4231 test case 2 pins the HMAC primitive; the `t + "." + body` construction
        // is checked against python3's hmac in tests/webhooks_delivery.rs.
        let mac = {
            let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
            m.update(b"what do ya want for nothing?");
            m
        };
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
