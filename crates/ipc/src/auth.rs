//! Who may talk to the control API: the bearer token (generation and a constant-time check) and
//! the `Host` header check that defeats DNS rebinding.
//! It does not build responses; `routes` turns a refusal into 401 or 403.

use std::fmt::Write as _;

/// Bytes of randomness in a token (hex-encoded, so tokens are twice as many characters).
const TOKEN_BYTES: usize = 32;

/// A new bearer token: 32 bytes from the OS random source, hex-encoded (64 characters).
///
/// # Errors
/// The OS random source could not be read.
pub fn try_generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    let mut token = String::with_capacity(TOKEN_BYTES * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(token, "{byte:02x}");
    }
    Ok(token)
}

/// A new bearer token, as [`try_generate_token`].
///
/// # Panics
/// When the OS random source cannot be read: there is no safe token without it, and on the
/// platforms conductor supports that only happens on a broken system.
pub fn generate_token() -> String {
    match try_generate_token() {
        Ok(token) => token,
        Err(err) => panic!("cannot read the OS random source to make an IPC token: {err}"),
    }
}

/// Compares a presented token with the expected one in time that depends only on their
/// lengths, so response timing does not reveal how many leading characters were right.
pub(crate) fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    let difference = presented
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    // black_box keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

/// The token of an `Authorization: Bearer <token>` header value; the scheme is
/// case-insensitive (RFC 7235), the token is not.
pub(crate) fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let scheme = header.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(header[7..].trim_ascii())
}

/// Whether a `Host` header names this machine's loopback interface: `127.0.0.1`, `localhost`
/// or `[::1]`, each with an optional numeric port. Anything else is what a DNS-rebinding page
/// would send (`Host: evil.example:41234`), so it is refused even with a valid token.
pub(crate) fn is_loopback_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    // `name` keeps an IPv6 literal's brackets; `port` is empty or `:` plus the digits.
    let (name, port) = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => host.split_at(end + 1),
            None => return false,
        }
    } else {
        match host.find(':') {
            Some(colon) => host.split_at(colon),
            None => (host, ""),
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => {
            !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
        }
    };
    let name_ok = name == "127.0.0.1" || name.eq_ignore_ascii_case("localhost") || name == "[::1]";
    port_ok && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_characters_and_differ() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn token_comparison_needs_every_byte() {
        assert!(token_matches(b"abcd", b"abcd"));
        assert!(!token_matches(b"abce", b"abcd"));
        assert!(!token_matches(b"xbcd", b"abcd"));
        assert!(!token_matches(b"abc", b"abcd"));
        assert!(!token_matches(b"", b"abcd"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(b"Bearer t0k"), Some(&b"t0k"[..]));
        assert_eq!(bearer_token(b"bearer  t0k "), Some(&b"t0k"[..]));
        assert_eq!(bearer_token(b"Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token(b"Bearer"), None);
    }

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for good in [
            "127.0.0.1",
            "127.0.0.1:41234",
            "localhost",
            "LocalHost:80",
            "[::1]",
            "[::1]:9",
        ] {
            assert!(is_loopback_host(good.as_bytes()), "{good} should pass");
        }
        for bad in [
            "evil.example",
            "evil.example:41234",
            "127.0.0.1.evil.example",
            "localhost.evil.example:80",
            "127.0.0.2",
            "0.0.0.0:80",
            "[::1",
            "[::2]:80",
            "127.0.0.1:",
            "127.0.0.1:80x",
            "127.0.0.1:123456",
            "localhost:80:80",
            "",
        ] {
            assert!(!is_loopback_host(bad.as_bytes()), "{bad} should be refused");
        }
    }
}
