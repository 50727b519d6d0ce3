//! Unit tests of the verifier: one per refusal, the RFC 7515 vector, and
//! tokens minted by PyJWT, an implementation that shares no code with this
//! one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::*;

pub(crate) const SECRET: &str = "0123456789abcdef0123456789abcdef-current";
const OLD_SECRET: &str = "0123456789abcdef0123456789abcdef-previous";
const OTHER_SECRET: &str = "0123456789abcdef0123456789abcdef-somebody";
/// 2023-11-14T22:13:20Z; every time in these tests is relative to it.
pub(crate) const NOW_SECS: u64 = 1_700_000_000;
pub(crate) const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn verifier() -> JwtVerifier {
    JwtVerifier::new(&[SECRET]).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// A token with exactly this header and payload text, signed with `secret`.
pub(crate) fn mint_raw(header: &str, payload: impl AsRef<[u8]>, secret: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_ref()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn mint(payload: impl AsRef<[u8]>) -> String {
    mint_raw(HS256, payload, SECRET)
}

/// `{"sub":"u1","exp":NOW+60, ...extra}`.
fn claims_with(extra: &str) -> String {
    let exp = NOW_SECS + 60;
    if extra.is_empty() {
        format!(r#"{{"sub":"u1","exp":{exp}}}"#)
    } else {
        format!(r#"{{"sub":"u1","exp":{exp},{extra}}}"#)
    }
}

#[track_caller]
fn refused(verifier: &JwtVerifier, token: &str) -> RefusalReason {
    match verifier.verify(token, now()) {
        Ok(claims) => panic!("accepted {token:?}: {claims:?}"),
        Err(refusal) => {
            assert!(!refusal.detail.is_empty());
            refusal.reason
        }
    }
}

#[test]
fn a_good_token_yields_its_claims() {
    let token = mint(claims_with(
        r#""channels":["news","user.u1.*"],"publish":["chat.*"]"#,
    ));
    let claims = verifier().verify(&token, now()).unwrap();
    assert_eq!(claims.subject.as_deref(), Some("u1"));
    assert!(claims.channels.allows("news"));
    assert!(claims.channels.allows("user.u1.inbox"));
    assert!(!claims.channels.allows("user.u2.inbox"));
    assert!(claims.publish.allows("chat.room1"));
    assert!(!claims.publish.allows("news"));
    assert_eq!(
        claims.valid_until,
        Some(UNIX_EPOCH + Duration::from_secs(NOW_SECS + 60) + DEFAULT_LEEWAY)
    );
}

#[test]
fn absent_channel_claims_grant_nothing() {
    let claims = verifier().verify(&mint(claims_with("")), now()).unwrap();
    assert!(claims.channels.is_empty());
    assert!(claims.publish.is_empty());
    // And `sub` is optional.
    let exp = NOW_SECS + 60;
    let claims = verifier()
        .verify(&mint(format!(r#"{{"exp":{exp}}}"#)), now())
        .unwrap();
    assert_eq!(claims.subject, None);
}

/// RFC 7515 appendix A.1: the HS256 example, byte for byte (its JSON has
/// CRLFs and the key is a JWK octet sequence), with its `exp`.
#[test]
fn rfc_7515_appendix_a1() {
    const TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
        eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
        dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    const EXP: u64 = 1_300_819_380;
    let key = BASE64URL_NOPAD.decode(KEY.as_bytes()).unwrap();
    let verifier = JwtVerifier::new(&[&key]).unwrap();
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);

    let claims = verifier.verify(TOKEN, at(EXP - 1)).unwrap();
    assert_eq!(claims.subject, None, "`iss` and the URI claim are not read");
    assert_eq!(claims.valid_until, Some(at(EXP) + DEFAULT_LEEWAY));
    // Honoured until the leeway is over.
    assert!(verifier.verify(TOKEN, at(EXP + 4)).is_ok());
    assert_eq!(
        verifier.verify(TOKEN, at(EXP + 5)).unwrap_err().reason,
        RefusalReason::Expired
    );
    let strict = verifier.clone().leeway(Duration::ZERO);
    assert_eq!(
        strict.verify(TOKEN, at(EXP)).unwrap_err().reason,
        RefusalReason::Expired
    );
    // Any other key: the signature no longer matches.
    let other = JwtVerifier::new(&[&key[1..]]).unwrap();
    assert_eq!(
        other.verify(TOKEN, at(EXP - 1)).unwrap_err().reason,
        RefusalReason::BadSignature
    );

    // RFC 7797 section 4.1, the "control" JWS under the same key: its
    // signature is good, but its payload `$.02` is no claims set.
    const CONTROL: &str = "eyJhbGciOiJIUzI1NiJ9.JC4wMg.5mvfOroL-g7HyqJoozehmsaqmvTYGEq5jTI1gVvoEoQ";
    assert_eq!(
        verifier.verify(CONTROL, at(EXP)).unwrap_err().reason,
        RefusalReason::Malformed
    );
}

#[test]
fn oversized_tokens_are_refused_before_decoding() {
    let v = verifier();
    assert_eq!(
        refused(&v, &"a".repeat(MAX_TOKEN_LEN + 1)),
        RefusalReason::TooLarge
    );
    // A good token just over the cap, padded with an unread claim.
    let base = mint(claims_with(r#""pad":"""#));
    let pad = "x".repeat((MAX_TOKEN_LEN - base.len()) * 3 / 4 + 8);
    let big = mint(claims_with(&format!(r#""pad":"{pad}""#)));
    assert!(big.len() > MAX_TOKEN_LEN);
    assert_eq!(refused(&v, &big), RefusalReason::TooLarge);
    // At the cap, only decoding decides.
    assert_eq!(
        refused(&v, &"a".repeat(MAX_TOKEN_LEN)),
        RefusalReason::Malformed
    );
    let pad = "x".repeat((MAX_TOKEN_LEN - base.len()) * 3 / 4 - 8);
    let fits = mint(claims_with(&format!(r#""pad":"{pad}""#)));
    assert!(fits.len() <= MAX_TOKEN_LEN);
    assert!(v.verify(&fits, now()).is_ok());
}

#[test]
fn malformed_tokens() {
    let v = verifier();
    let good = mint(claims_with(""));
    let (header, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let cases = [
        String::new(),
        "abc".into(),
        ".".into(),
        "..".into(),
        format!("{header}.{payload}"),
        format!("{good}.x"),
        format!("{good}.x.y"),
        // Not base64url: padding, the other alphabet, whitespace, a bad length.
        format!("{header}=.{payload}.{signature}"),
        format!("{}.{payload}.{signature}", header.replace('J', "+")),
        format!(
            "{header}.{payload}.{}",
            signature.replacen('A', "/", 1) + "/"
        ),
        format!(" {good}"),
        format!("{good}\n"),
        // Non-zero trailing bits: decodes to the same bytes in a lax decoder.
        format!("{header}.{payload}.{}", bump_last(signature)),
        // Header not JSON, not an object, not UTF-8, empty.
        format!("{}.{payload}.{signature}", b64(b"alg=HS256")),
        format!("{}.{payload}.{signature}", b64(br#"["HS256"]"#)),
        format!("{}.{payload}.{signature}", b64(b"{\"alg\":\"HS256\xff\"}")),
        format!(".{payload}.{signature}"),
        format!("{}.{payload}.{signature}", b64(b"{\"alg\":\"HS256\"")),
    ];
    for token in &cases {
        assert_eq!(refused(&v, token), RefusalReason::Malformed, "{token:?}");
    }
    // A good signature over a payload that is not a JSON object.
    let payloads: [&[u8]; 7] = [
        b"",
        b"[]",
        b"\"sub\"",
        b"42",
        b"{",
        b"{\"sub\":\"u\"",
        b"{\"sub\":\"\xff\"}",
    ];
    for payload in payloads {
        let token = mint(payload);
        assert_eq!(refused(&v, &token), RefusalReason::Malformed, "{payload:?}");
    }
}

/// The last base64url character with its unused low bits set, so the
/// text changes but a lax decoder would yield the same bytes.
fn bump_last(part: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (head, last) = part.split_at(part.len() - 1);
    let index = ALPHABET
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .unwrap();
    format!("{head}{}", ALPHABET[index | 1] as char)
}

#[test]
fn only_hs256_is_accepted() {
    let v = verifier();
    let payload = claims_with("");
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":"HS256 "}"#,
        r#"{"alg":"HS384"}"#,
        r#"{"alg":"HS512"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"ES256"}"#,
        r#"{"alg":""}"#,
        r#"{"alg":null}"#,
        r#"{"alg":256}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"typ":"JWT"}"#,
        r#"{}"#,
    ] {
        // Signed with the right secret, so only the header can be wrong.
        let token = mint_raw(header, &payload, SECRET);
        assert_eq!(refused(&v, &token), RefusalReason::BadAlg, "{header}");
    }
    // `alg: none` as it is really sent: an empty signature.
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(payload.as_bytes())
    );
    assert_eq!(refused(&v, &unsigned), RefusalReason::BadAlg);
}

#[test]
fn header_parameters_beyond_alg() {
    let v = verifier();
    let payload = claims_with("");
    for header in [
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
        r#"{"alg":"HS256","typ":"JWE"}"#,
        r#"{"alg":"HS256","typ":42}"#,
        r#"{"alg":"HS256","alg":"none"}"#,
        r#"{"alg":"HS256","alg":"HS256"}"#,
    ] {
        let token = mint_raw(header, &payload, SECRET);
        assert_eq!(refused(&v, &token), RefusalReason::BadHeader, "{header}");
    }
    for header in [
        r#"{"alg":"HS256"}"#,
        r#"{"typ":"jwt","alg":"HS256"}"#,
        r#"{"alg":"HS256","kid":"2024-01","cty":"x","x5u":1}"#,
        " {\"alg\" : \"HS256\"}\r\n",
    ] {
        let token = mint_raw(header, &payload, SECRET);
        assert!(v.verify(&token, now()).is_ok(), "{header}");
    }
}

#[test]
fn bad_signatures() {
    let v = verifier();
    let payload = claims_with(r#""channels":["news"]"#);
    let good = mint(&payload);
    let (input, signature) = good.rsplit_once('.').unwrap();
    let bytes = BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap();
    let forged = mint(claims_with(r#""channels":["*"]"#));
    let (_, forged_payload) = forged.rsplit_once('.').unwrap().0.split_once('.').unwrap();
    let header = input.split_once('.').unwrap().0;
    let cases = [
        mint_raw(HS256, &payload, OTHER_SECRET),
        // Somebody else's claims under our signature.
        format!("{header}.{forged_payload}.{signature}"),
        // Empty, truncated, lengthened, one byte changed.
        format!("{input}."),
        format!("{input}.{}", b64(&bytes[..31])),
        format!("{input}.{}", b64(&[&bytes[..], &[0]].concat())),
        format!("{input}.{signature}A"),
        format!("{input}.{}", flip_first(signature)),
        format!("{input}.{}", b64(&[0; 32])),
    ];
    for token in &cases {
        assert_eq!(refused(&v, token), RefusalReason::BadSignature, "{token}");
    }
}

fn flip_first(part: &str) -> String {
    let first = if part.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &part[1..])
}

#[test]
fn several_secrets_for_a_rotation() {
    let both = JwtVerifier::new(&[SECRET, OLD_SECRET]).unwrap();
    let payload = claims_with("");
    assert!(both
        .verify(&mint_raw(HS256, &payload, SECRET), now())
        .is_ok());
    assert!(both
        .verify(&mint_raw(HS256, &payload, OLD_SECRET), now())
        .is_ok());
    assert_eq!(
        refused(&both, &mint_raw(HS256, &payload, OTHER_SECRET)),
        RefusalReason::BadSignature
    );
    // After the rotation the old one is gone.
    assert_eq!(
        refused(&verifier(), &mint_raw(HS256, &payload, OLD_SECRET)),
        RefusalReason::BadSignature
    );
}

#[test]
fn claims_of_the_wrong_type() {
    let v = verifier();
    let exp = NOW_SECS + 60;
    for payload in [
        format!(r#"{{"sub":42,"exp":{exp}}}"#),
        format!(r#"{{"sub":null,"exp":{exp}}}"#),
        format!(r#"{{"sub":["u"],"exp":{exp}}}"#),
        r#"{"exp":"2030-01-01"}"#.to_string(),
        r#"{"exp":null}"#.to_string(),
        r#"{"exp":-1}"#.to_string(),
        r#"{"exp":1e300}"#.to_string(),
        r#"{"exp":true}"#.to_string(),
        format!(r#"{{"exp":{exp},"nbf":"0"}}"#),
        format!(r#"{{"exp":{exp},"iat":{{}}}}"#),
        format!(r#"{{"exp":{exp},"channels":"news"}}"#),
        format!(r#"{{"exp":{exp},"channels":["news",7]}}"#),
        format!(r#"{{"exp":{exp},"channels":[["news"]]}}"#),
        format!(r#"{{"exp":{exp},"channels":["bad name"]}}"#),
        format!(r#"{{"exp":{exp},"channels":["a*b"]}}"#),
        format!(r#"{{"exp":{exp},"channels":null}}"#),
        format!(r#"{{"exp":{exp},"publish":{{"news":true}}}}"#),
        format!(r#"{{"exp":{exp},"publish":[""]}}"#),
        format!(r#"{{"exp":{exp},"exp":{exp}}}"#),
        // `exp` is required by default.
        r#"{"sub":"u1"}"#.to_string(),
        r#"{"sub":"u1","channels":["*"]}"#.to_string(),
    ] {
        assert_eq!(
            refused(&v, &mint(&payload)),
            RefusalReason::BadClaims,
            "{payload}"
        );
    }
}

#[test]
fn tokens_without_exp_only_where_allowed() {
    let lax = verifier().allow_no_exp(true);
    let claims = lax
        .verify(&mint(r#"{"sub":"svc","channels":["*"]}"#), now())
        .unwrap();
    assert_eq!(claims.valid_until, None);
    assert!(claims.channels.allows("anything"));
    // An `exp` that is there still counts.
    let expired = mint(format!(r#"{{"exp":{}}}"#, NOW_SECS - 60));
    assert_eq!(refused(&lax, &expired), RefusalReason::Expired);
}

#[test]
fn times_with_the_clock_skew_allowance() {
    let v = verifier();
    let leeway = DEFAULT_LEEWAY.as_secs();
    let at = |claims: String| v.verify(&mint(&claims), now()).map_err(|r| r.reason);
    // exp: honoured while now < exp + leeway.
    assert_eq!(
        at(format!(r#"{{"exp":{}}}"#, NOW_SECS - leeway)),
        Err(RefusalReason::Expired)
    );
    assert!(at(format!(r#"{{"exp":{}}}"#, NOW_SECS - leeway + 1)).is_ok());
    assert_eq!(at(r#"{"exp":0}"#.into()), Err(RefusalReason::Expired));
    // A fraction counts: 0.5 s more is still inside.
    let fraction = format!(r#"{{"exp":{}.5}}"#, NOW_SECS - leeway);
    assert!(at(fraction.clone()).is_ok());
    let claims = v.verify(&mint(&fraction), now()).unwrap();
    assert_eq!(claims.valid_until, Some(now() + Duration::from_millis(500)));
    // nbf and iat: honoured from leeway before them.
    let exp = NOW_SECS + 600;
    for claim in ["nbf", "iat"] {
        let ahead = |secs: u64| format!(r#"{{"exp":{exp},"{claim}":{}}}"#, NOW_SECS + secs);
        assert!(at(ahead(leeway)).is_ok(), "{claim}");
        assert_eq!(
            at(ahead(leeway + 1)),
            Err(RefusalReason::NotYetValid),
            "{claim}"
        );
        assert!(at(format!(r#"{{"exp":{exp},"{claim}":{}}}"#, NOW_SECS - 3600)).is_ok());
    }
    // An `exp` too far ahead to be a SystemTime never expires.
    let far = v
        .verify(&mint(format!(r#"{{"exp":{}}}"#, u64::MAX)), now())
        .unwrap();
    assert_eq!(far.valid_until, None);
    // A clock before 1970 is read as 1970.
    let before = UNIX_EPOCH.checked_sub(Duration::from_secs(10)).unwrap();
    assert!(v.verify(&mint(r#"{"exp":60}"#), before).is_ok());
}

#[test]
fn secrets_must_be_usable() {
    assert_eq!(
        JwtVerifier::new::<&str>(&[]).unwrap_err(),
        SecretError::None
    );
    assert_eq!(
        JwtVerifier::new(&["short"]).unwrap_err(),
        SecretError::TooShort(0)
    );
    let just_short = "x".repeat(MIN_SECRET_LEN - 1);
    assert_eq!(
        JwtVerifier::new(&[SECRET, just_short.as_str()]).unwrap_err(),
        SecretError::TooShort(1)
    );
    let enough = "x".repeat(MIN_SECRET_LEN);
    assert!(JwtVerifier::new(&[enough.as_str()]).is_ok());
    let many = vec![SECRET; MAX_SECRETS + 1];
    assert_eq!(
        JwtVerifier::new(&many).unwrap_err(),
        SecretError::TooMany(MAX_SECRETS + 1)
    );
    assert!(JwtVerifier::new(&many[1..]).is_ok());
    // The messages name no secret.
    assert!(!SecretError::TooShort(0).to_string().contains("short\""));
    let debug = format!("{:?}", JwtVerifier::new(&[SECRET]).unwrap());
    assert!(
        !debug.contains(SECRET) && debug.contains("secrets: 1"),
        "{debug}"
    );
}

/// Every one-byte change and every truncation of a good token is refused,
/// and none of them panics.
#[test]
fn every_mutation_of_a_good_token_is_refused() {
    let v = verifier();
    let good = mint(claims_with(r#""channels":["news"]"#));
    assert!(v.verify(&good, now()).is_ok());
    let bytes = good.as_bytes();
    for i in 0..bytes.len() {
        for replacement in [b'A', b'B', b'_', b'-', b'.', b'=', b'+', b' ', b'0', b'z'] {
            if bytes[i] == replacement {
                continue;
            }
            let mut mutated = bytes.to_vec();
            mutated[i] = replacement;
            let mutated = String::from_utf8(mutated).unwrap();
            assert!(v.verify(&mutated, now()).is_err(), "{mutated}");
        }
        assert!(v.verify(&good[..i], now()).is_err());
    }
    // Arbitrary bytes, including multi-byte characters.
    for junk in [
        "é.é.é",
        "\u{0}.\u{0}.\u{0}",
        "....",
        "a.b.c",
        "eyJ.eyJ.eyJ",
        "😀",
    ] {
        assert!(v.verify(junk, now()).is_err());
    }
}

/// Tokens minted by PyJWT, which shares no code with this verifier. Needs
/// `python3` with the `jwt` module (`pip install pyjwt`): without them
/// this prints SKIP, and fails under `CI=true`.
#[test]
fn tokens_minted_by_pyjwt() {
    let script = format!(
        r#"
import jwt, sys
now = {NOW_SECS}
s, other = {SECRET:?}, {OTHER_SECRET:?}
def out(t): print(t if isinstance(t, str) else t.decode())
out(jwt.encode({{"sub": "u1", "exp": now + 60, "iat": now, "nbf": now - 1,
                 "channels": ["news", "user.u1.*"], "publish": ["chat.*"]}}, s, algorithm="HS256"))
out(jwt.encode({{"sub": "u1", "exp": now - 60}}, s, algorithm="HS256"))
out(jwt.encode({{"sub": "u1", "exp": now + 600, "nbf": now + 60}}, s, algorithm="HS256"))
out(jwt.encode({{"sub": "u1", "exp": now + 60}}, other, algorithm="HS256"))
out(jwt.encode({{"sub": "u1", "exp": now + 60}}, s, algorithm="HS384"))
out(jwt.encode({{"sub": "u1", "exp": now + 60}}, None, algorithm="none"))
out(jwt.encode({{"sub": "u1", "exp": now + 60, "channels": "news"}}, s, algorithm="HS256"))
out(jwt.encode({{"sub": "u1", "exp": now + 60}}, s, algorithm="HS256", headers={{"kid": "k1"}}))
"#
    );
    let Some(tokens) = run_python(&script) else {
        return;
    };
    let tokens: Vec<&str> = tokens.lines().collect();
    assert_eq!(tokens.len(), 8, "{tokens:?}");
    let v = verifier();
    let claims = v.verify(tokens[0], now()).unwrap();
    assert_eq!(claims.subject.as_deref(), Some("u1"));
    assert!(claims.channels.allows("news") && claims.channels.allows("user.u1.x"));
    assert!(!claims.channels.allows("user.u2.x"));
    assert!(claims.publish.allows("chat.a") && !claims.publish.allows("news"));
    let reasons: Vec<_> = tokens[1..7].iter().map(|t| refused(&v, t)).collect();
    assert_eq!(
        reasons,
        [
            RefusalReason::Expired,
            RefusalReason::NotYetValid,
            RefusalReason::BadSignature,
            RefusalReason::BadAlg,
            RefusalReason::BadAlg,
            RefusalReason::BadClaims,
        ]
    );
    assert!(v.verify(tokens[7], now()).is_ok());
}

/// Run `script` with python3 and PyJWT; its stdout, or `None` after a
/// loud SKIP where they are missing (a failure under `CI=true`).
fn run_python(script: &str) -> Option<String> {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output();
    let problem = match &output {
        Err(e) => format!("python3 not runnable: {e}"),
        Ok(o) if o.status.success() => {
            return Some(String::from_utf8_lossy(&o.stdout).into_owned())
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    if problem.contains("No module named 'jwt'") || output.is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but PyJWT is missing (pip install pyjwt): {problem}"
        );
        eprintln!(
            "SKIP tokens_minted_by_pyjwt: needs python3 with PyJWT (pip install pyjwt): {problem}"
        );
        return None;
    }
    panic!("the PyJWT script failed: {problem}");
}

#[test]
fn the_config_rules_for_secrets_are_these() {
    // config/validate.rs cannot import this module (it sits a layer
    // below), so it repeats the two numbers; they must agree.
    assert_eq!(crate::config::MIN_TOKEN_SECRET_LEN, MIN_SECRET_LEN);
    assert_eq!(crate::config::MAX_TOKEN_SECRETS, MAX_SECRETS);
}
