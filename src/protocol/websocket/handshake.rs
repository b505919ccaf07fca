//! The opening handshake (RFC 6455 §4.2): an HTTP `GET /ws` with `Upgrade: websocket` becomes
//! `101 Switching Protocols`, or an HTTP error that says why not.

use tungstenite::handshake::derive_accept_key;

use crate::protocol::http::{Head, HttpError, Response};

/// Validates an upgrade request and builds the `101 Switching Protocols` answer, or the error
/// the client gets instead (400 with the reason, 426 for another protocol version, 403 for an
/// Origin not in `ALLOWED_ORIGINS`, 503 while `draining`).
pub fn handshake(
    head: &Head<'_>,
    draining: bool,
    allowed_origins: &[String],
) -> Result<Response, Response> {
    let bad = |reason| {
        Err(Response::error(HttpError {
            status: 400,
            reason,
        }))
    };
    if head.version != 1 {
        return bad("a WebSocket upgrade needs HTTP/1.1");
    }
    if !head.has_token("upgrade", "websocket") {
        return bad("expected Upgrade: websocket");
    }
    if !head.has_token("connection", "upgrade") {
        return bad("expected Connection: Upgrade");
    }
    // Each is a single value (RFC 6455 §4.2.1, §11.3.1): a second field is not one to pick from.
    if head.count("sec-websocket-key") > 1 {
        return bad("more than one Sec-WebSocket-Key");
    }
    if head.count("sec-websocket-version") > 1 {
        return bad("more than one Sec-WebSocket-Version");
    }
    if head.header("sec-websocket-version") != Some("13") {
        return Err(Response::error(HttpError {
            status: 426,
            reason: "only WebSocket version 13 is supported",
        })
        .header("Sec-WebSocket-Version", "13"));
    }
    let Some(key) = head.header("sec-websocket-key").filter(|k| valid_key(k)) else {
        return bad("missing or invalid Sec-WebSocket-Key");
    };
    // Cross-site WebSocket hijacking: a browser always sends the page's Origin; clients that
    // are not browsers may send none, and are not what this check protects against.
    if let Some(origin) = head.header("origin")
        && !allowed_origins.is_empty()
        && !allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    {
        return Err(Response::error(HttpError {
            status: 403,
            reason: "this Origin may not open a WebSocket here",
        }));
    }
    if draining {
        let mut r = Response::error(HttpError {
            status: 503,
            reason: "this instance is shutting down; reconnect",
        });
        r.close = true;
        return Err(r.header("Retry-After", "1"));
    }
    // No extension is negotiated (permessage-deflate is not offered) and no subprotocol chosen.
    Ok(Response::empty(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", derive_accept_key(key.as_bytes())))
}

/// A key is the base64 encoding of 16 bytes: 22 significant characters and `==`.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b.ends_with(b"==")
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25j!Q==",
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
