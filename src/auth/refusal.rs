//! Why a token was refused: one closed set of reasons, shared by every
//! authorizer, so that logs and the `/metrics` counters speak the same
//! words whichever authorizer refused.
//!
//! Pure data: no threads, no I/O. Built on the connection threads (the
//! handshake and the read pump) by whichever authorizer checks the token;
//! the hub logs it and counts it.

use std::borrow::Cow;
use std::fmt;

/// The reason a token was refused; its [`label`](Self::label) is the
/// `reason` of the `pumphub_token_refusals_total` counter and appears in
/// the log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// Not the shared token, or an application's authorizer said no
    /// without saying why.
    Invalid,
    /// Longer than [`MAX_TOKEN_LEN`](super::jwt::MAX_TOKEN_LEN); refused
    /// before any decoding.
    TooLarge,
    /// Not three base64url parts, bad base64url, or not a JSON object.
    Malformed,
    /// The header's `alg` is missing or is not exactly `HS256` (this
    /// includes `none`).
    BadAlg,
    /// The header asks for something this verifier does not do
    /// (`crit`, a `typ` other than `JWT`).
    BadHeader,
    /// The signature matches none of the configured secrets.
    BadSignature,
    /// A claim has the wrong type or an unusable value, or `exp` is
    /// missing where it is required.
    BadClaims,
    /// `exp` has passed (after the clock-skew allowance).
    Expired,
    /// `nbf` or `iat` is still in the future (after the allowance).
    NotYetValid,
    /// A good token, but a fresh one on a connection that already has a
    /// different `sub`: a connection cannot change whose it is.
    SubjectChanged,
}

impl RefusalReason {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [RefusalReason; 10] = [
        RefusalReason::Invalid,
        RefusalReason::TooLarge,
        RefusalReason::Malformed,
        RefusalReason::BadAlg,
        RefusalReason::BadHeader,
        RefusalReason::BadSignature,
        RefusalReason::BadClaims,
        RefusalReason::Expired,
        RefusalReason::NotYetValid,
        RefusalReason::SubjectChanged,
    ];

    /// The snake_case name used in logs and as the metric label.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::Invalid => "invalid",
            RefusalReason::TooLarge => "too_large",
            RefusalReason::Malformed => "malformed",
            RefusalReason::BadAlg => "bad_alg",
            RefusalReason::BadHeader => "bad_header",
            RefusalReason::BadSignature => "bad_signature",
            RefusalReason::BadClaims => "bad_claims",
            RefusalReason::Expired => "expired",
            RefusalReason::NotYetValid => "not_yet_valid",
            RefusalReason::SubjectChanged => "subject_changed",
        }
    }

    /// Position in [`ALL`](Self::ALL), for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A refused token: the reason, and a detail for the log line. The detail
/// never contains the token or a secret; it may quote a claim's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal, for counters.
    pub reason: RefusalReason,
    /// What exactly was wrong, for people reading the log.
    pub detail: Cow<'static, str>,
}

impl Refusal {
    /// A refusal with its detail.
    pub fn new(reason: RefusalReason, detail: impl Into<Cow<'static, str>>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_indexed_in_order() {
        for (i, reason) in RefusalReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        let mut labels: Vec<_> = RefusalReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RefusalReason::ALL.len());
    }
}
