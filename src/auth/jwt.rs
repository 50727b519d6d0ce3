//! Verifying signed tokens: JSON Web Tokens (RFC 7519) in JWS compact
//! form (RFC 7515), signed with HMAC-SHA256 (`HS256`, RFC 7518) under one
//! of a few shared secrets.
//!
//! [`JwtVerifier`] owns the secrets and the rules; it is shared
//! (`Arc`, immutable) by every connection thread, which calls
//! [`verify`](JwtVerifier::verify) in the handshake and for each `auth`
//! message. Pure computation: no threads, no I/O, no locks, and it sends
//! nothing; it returns [`Claims`] or a [`Refusal`] for the caller to log
//! and count.
//!
//! The order of the checks is part of the design:
//!
//! 1. length, before anything is decoded ([`MAX_TOKEN_LEN`]);
//! 2. three dot-separated parts, each strict base64url (no padding, no
//!    other alphabet), all decoded before the signature is checked;
//! 3. the header: a JSON object whose `alg` is exactly `HS256` (so `none`,
//!    `hs256` and `RS256` are refused before the signature is looked at),
//!    with no `crit`, and `typ`, if present, `JWT`;
//! 4. the signature, HMAC-SHA256 over the text of the first two parts as
//!    sent, compared in constant time against every secret (all of them,
//!    so timing does not tell which one matched);
//! 5. only then the claims' JSON, which an attacker without a secret never
//!    gets parsed;
//! 6. the times: `exp`, `nbf`, `iat`, each with [`DEFAULT_LEEWAY`].
//!
//! Nothing here panics on any input: every slice is taken by `split`, every
//! number converted with a checked operation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::claims::{ChannelGrants, NumericDate, RawClaims};
use super::refusal::{Refusal, RefusalReason};
use crate::protocol::truncate;

/// Tokens longer than this many bytes are refused (`too_large`) before any
/// decoding. 8 KiB holds a few hundred channel patterns; a browser sends
/// the token in the URL or a header, and the handshake head is capped at
/// 16 KiB anyway.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Secrets shorter than this many bytes are refused: RFC 7518 section 3.2
/// requires an HS256 key of at least the hash size (256 bits).
pub const MIN_SECRET_LEN: usize = 32;

/// At most this many secrets at once; two cover a rotation, a few more
/// cover overlapping ones, and each costs one HMAC per token checked.
pub const MAX_SECRETS: usize = 8;

/// How far apart the minting backend's clock and the hub's may be:
/// `exp` is honoured until this long after it, `nbf` and `iat` from this
/// long before them. Machines that run NTP differ by well under a second;
/// 5 s covers a drifting virtual machine without extending a stolen
/// token's life by much.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

type HmacSha256 = Hmac<Sha256>;

/// Why a set of secrets cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretError {
    /// No secret was given.
    None,
    /// More than [`MAX_SECRETS`].
    TooMany(usize),
    /// The secret at this position (0-based) is shorter than
    /// [`MIN_SECRET_LEN`] bytes.
    TooShort(usize),
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretError::None => write!(f, "no token secret given"),
            SecretError::TooMany(n) => write!(f, "{n} token secrets; at most {MAX_SECRETS}"),
            SecretError::TooShort(i) => write!(
                f,
                "token secret #{} is shorter than {MIN_SECRET_LEN} bytes (HS256 needs 256 bits; \
                 `openssl rand -hex 32` makes one)",
                i + 1
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// What a good token says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: who the holder is, for `/status` and logs.
    pub subject: Option<String>,
    /// From `channels`: what the holder may subscribe to.
    pub channels: ChannelGrants,
    /// From `publish`: what the holder may publish to (if the hub lets
    /// clients publish at all).
    pub publish: ChannelGrants,
    /// The moment the token stops being honoured: `exp` plus the leeway.
    /// `None` if it has no `exp` (only accepted where allowed), or if that
    /// moment is past what the clock can represent.
    pub valid_until: Option<SystemTime>,
}

/// Checks HS256 tokens against one or more secrets.
#[derive(Clone)]
pub struct JwtVerifier {
    /// One keyed HMAC per secret, cloned per check instead of re-keyed.
    keys: Vec<HmacSha256>,
    require_exp: bool,
    leeway: Duration,
}

impl std::fmt::Debug for JwtVerifier {
    // Never print key material, even derived.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("secrets", &self.keys.len())
            .field("require_exp", &self.require_exp)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// The protected header; only what is checked. Other parameters (`kid`,
/// ...) are ignored, as RFC 7515 allows for those not listed in `crit`.
#[derive(Deserialize)]
struct Header {
    alg: Option<serde_json::Value>,
    typ: Option<serde_json::Value>,
    crit: Option<serde_json::Value>,
}

impl JwtVerifier {
    /// A verifier accepting tokens signed with any of `secrets` (the
    /// current one and, during a rotation, the previous or next), which
    /// requires `exp` and allows [`DEFAULT_LEEWAY`].
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Self, SecretError> {
        if secrets.is_empty() {
            return Err(SecretError::None);
        }
        if secrets.len() > MAX_SECRETS {
            return Err(SecretError::TooMany(secrets.len()));
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (i, secret) in secrets.iter().enumerate() {
            let secret = secret.as_ref();
            if secret.len() < MIN_SECRET_LEN {
                return Err(SecretError::TooShort(i));
            }
            // HMAC takes keys of any length, so this cannot fail; map it
            // anyway rather than unwrap.
            keys.push(HmacSha256::new_from_slice(secret).map_err(|_| SecretError::TooShort(i))?);
        }
        Ok(JwtVerifier {
            keys,
            require_exp: true,
            leeway: DEFAULT_LEEWAY,
        })
    }

    /// Accept tokens without `exp` (they then never expire). Off by
    /// default: a token that cannot expire cannot be taken back short of
    /// rotating the secret.
    pub fn allow_no_exp(mut self, allow: bool) -> Self {
        self.require_exp = !allow;
        self
    }

    /// Use this clock-skew allowance instead of [`DEFAULT_LEEWAY`].
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Check `token` as of `now`; the claims if it is good.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal::new(
                RefusalReason::TooLarge,
                format!("{} bytes; at most {MAX_TOKEN_LEN}", token.len()),
            ));
        }
        // The signing input is the text as sent: the header and payload
        // parts and the dot between them (RFC 7515 section 5.2).
        let Some((signing_input, signature_b64)) = token.rsplit_once('.') else {
            return Err(malformed(
                "not three dot-separated parts (header.payload.signature)",
            ));
        };
        let Some((header_b64, payload_b64)) = signing_input.split_once('.') else {
            return Err(malformed(
                "not three dot-separated parts (header.payload.signature)",
            ));
        };
        if payload_b64.contains('.') {
            return Err(malformed(
                "more than three dot-separated parts (an encrypted JWE is not supported)",
            ));
        }

        let header: Header = parse_json_object(
            &decode(header_b64, "header")?,
            "header",
            RefusalReason::BadHeader,
        )?;
        check_header(&header)?;

        // Decoding base64 is safe on any input, so a token that is not
        // three base64url parts is `malformed` whoever sent it; the
        // payload's JSON waits for the signature.
        let payload = decode(payload_b64, "payload")?;
        let signature = decode(signature_b64, "signature")?;
        let signing_input = signing_input.as_bytes();
        let matched = self.keys.iter().fold(false, |matched, key| {
            let ok = key
                .clone()
                .chain_update(signing_input)
                .verify_slice(&signature)
                .is_ok();
            matched | ok
        });
        if !matched {
            return Err(Refusal::new(
                RefusalReason::BadSignature,
                "the signature matches none of the token secrets",
            ));
        }

        let raw: RawClaims = parse_json_object(&payload, "claims", RefusalReason::BadClaims)?;
        self.check_claims(raw, now)
    }

    fn check_claims(&self, raw: RawClaims, now: SystemTime) -> Result<Claims, Refusal> {
        // A clock before 1970 is a broken clock; treat it as the epoch
        // rather than fail every token.
        let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let leeway = self.leeway;
        if raw.exp.is_none() && self.require_exp {
            return Err(Refusal::new(
                RefusalReason::BadClaims,
                "no `exp` claim, and tokens without one are not allowed",
            ));
        }
        if let Some(NumericDate(exp)) = raw.exp {
            if now >= exp.saturating_add(leeway) {
                return Err(Refusal::new(
                    RefusalReason::Expired,
                    format!("expired {} s ago", now.saturating_sub(exp).as_secs()),
                ));
            }
        }
        if let Some(NumericDate(nbf)) = raw.nbf {
            if now.saturating_add(leeway) < nbf {
                return Err(Refusal::new(
                    RefusalReason::NotYetValid,
                    format!("`nbf` is {} s ahead", nbf.saturating_sub(now).as_secs()),
                ));
            }
        }
        if let Some(NumericDate(iat)) = raw.iat {
            if now.saturating_add(leeway) < iat {
                return Err(Refusal::new(
                    RefusalReason::NotYetValid,
                    format!("`iat` is {} s ahead", iat.saturating_sub(now).as_secs()),
                ));
            }
        }
        let grants = |entries: Option<Vec<String>>, claim: &str| match entries {
            None => Ok(ChannelGrants::none()),
            Some(entries) => ChannelGrants::parse(&entries).map_err(|detail| {
                Refusal::new(RefusalReason::BadClaims, format!("`{claim}`: {detail}"))
            }),
        };
        Ok(Claims {
            subject: raw.sub,
            channels: grants(raw.channels, "channels")?,
            publish: grants(raw.publish, "publish")?,
            valid_until: raw
                .exp
                .and_then(|NumericDate(exp)| exp.checked_add(leeway))
                .and_then(|until| UNIX_EPOCH.checked_add(until)),
        })
    }
}

fn malformed(detail: &'static str) -> Refusal {
    Refusal::new(RefusalReason::Malformed, detail)
}

/// base64url without padding (RFC 7515 section 2). data-encoding refuses
/// `=`, `+`, `/`, whitespace, impossible lengths and non-zero trailing
/// bits, so each token has exactly one spelling.
fn decode(part: &str, what: &'static str) -> Result<Vec<u8>, Refusal> {
    BASE64URL_NOPAD.decode(part.as_bytes()).map_err(|e| {
        Refusal::new(
            RefusalReason::Malformed,
            format!("{what}: bad base64url: {e}"),
        )
    })
}

/// Parse `bytes` as a JSON object into `T`: `malformed` if it is not
/// JSON, or not an object (a serde derive would also take an array, field
/// by field, but a JOSE header and a claims set are objects, RFC 7519
/// section 7.2); `wrong_types` if it is an object whose fields have the
/// wrong types or appear twice.
fn parse_json_object<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &str,
    wrong_types: RefusalReason,
) -> Result<T, Refusal> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(Refusal::new(
            RefusalReason::Malformed,
            format!("{what}: not a JSON object"),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Data => wrong_types,
            _ => RefusalReason::Malformed,
        };
        Refusal::new(reason, format!("{what}: {e}"))
    })
}

fn check_header(header: &Header) -> Result<(), Refusal> {
    match &header.alg {
        Some(serde_json::Value::String(alg)) if alg == "HS256" => {}
        Some(serde_json::Value::String(alg)) => {
            return Err(Refusal::new(
                RefusalReason::BadAlg,
                format!("`alg` is `{}`; only HS256 is accepted", truncate(alg, 16)),
            ))
        }
        Some(_) => return Err(Refusal::new(RefusalReason::BadAlg, "`alg` is not a string")),
        None => {
            return Err(Refusal::new(
                RefusalReason::BadAlg,
                "no `alg` in the header",
            ))
        }
    }
    if header.crit.is_some() {
        // RFC 7515 section 4.1.11: extensions listed in `crit` must be
        // understood, and this verifier understands none.
        return Err(Refusal::new(
            RefusalReason::BadHeader,
            "`crit` header parameters are not supported",
        ));
    }
    match &header.typ {
        None => Ok(()),
        Some(serde_json::Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => Ok(()),
        Some(_) => Err(Refusal::new(
            RefusalReason::BadHeader,
            "`typ` is present and not `JWT`",
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests;
