//! What a callee's authentication challenge means for the caller.
//!
//! Outbound calls to a trunk carry the trunk's username/password as the INVITE's
//! credential ([`super::routing`]); rsipstack answers a 401/407 with it once, and a second
//! challenge after the authenticated INVITE ends the attempt. So when a 401/407 is an
//! attempt's *final* answer, callscope either had no credentials for that trunk or they
//! were refused. The challenge was addressed to callscope, not to the caller: the caller
//! could not answer it, and relaying it would either be malformed (a 401/407 must carry its
//! WWW-/Proxy-Authenticate, RFC 3261 §21.4.2, §21.4.8) or expose the trunk's realm and
//! nonce to whoever called. The caller gets a plain "cannot complete" instead.

/// The cause recorded for a call whose only attempts were refused for authentication.
pub(super) const AUTH_FAILED_CAUSE: &str = "auth_failed";

/// Status the caller gets instead of a challenge: 503, as when the INVITE to a target
/// cannot be sent at all — the outbound route is unusable, not the caller's request.
const CALLER_STATUS_FOR_CHALLENGE: u16 = 503;

/// Whether an attempt's final status is a digest challenge (401 or 407).
pub(super) fn is_challenge(status: u16) -> bool {
    matches!(status, 401 | 407)
}

/// The final status to send the caller for a call whose attempts ended with `status`.
pub(super) fn caller_status(status: u16) -> u16 {
    if is_challenge(status) {
        CALLER_STATUS_FOR_CHALLENGE
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_become_503_for_the_caller() {
        assert_eq!(caller_status(407), 503);
        assert_eq!(caller_status(401), 503);
    }

    #[test]
    fn other_failures_pass_through() {
        for status in [403, 404, 480, 486, 487, 500, 503, 603] {
            assert_eq!(caller_status(status), status);
            assert!(!is_challenge(status));
        }
    }
}
