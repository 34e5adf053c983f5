//! Just enough of the DTLS record layer (RFC 6347 §4.1, §4.2.2; RFC 9147
//! §5.1) to route a datagram before handing it to a session: is it a
//! ClientHello, does it carry a cookie, and did the server answer with a
//! cookie challenge (HelloVerifyRequest, or HelloRetryRequest in DTLS 1.3) or
//! a real ServerHello. Total on arbitrary bytes.

/// Record content type: handshake.
const HANDSHAKE: u8 = 22;
/// Record content type: application data.
pub(super) const APPLICATION_DATA: u8 = 23;
/// Handshake message types.
const CLIENT_HELLO: u8 = 1;
/// ServerHello: the server accepted the cookie and committed state.
pub(super) const SERVER_HELLO: u8 = 2;
/// Record header: type, version, epoch, sequence number, length.
const RECORD_HEADER: usize = 13;
/// Handshake header: type, length, message_seq, fragment offset and length.
const HANDSHAKE_HEADER: usize = 12;

/// The content type of the first record.
pub(super) fn content_type(datagram: &[u8]) -> Option<u8> {
    datagram.first().copied()
}

/// The handshake message type of the first record, when it is an epoch-0
/// (unencrypted) handshake record.
pub(super) fn plain_handshake_type(datagram: &[u8]) -> Option<u8> {
    if content_type(datagram)? != HANDSHAKE || datagram.get(3..5)? != [0, 0] {
        return None;
    }
    datagram.get(RECORD_HEADER).copied()
}

/// The `random` of a HelloRetryRequest, which DTLS 1.3 sends as a
/// ServerHello (RFC 8446 §4.1.3): SHA-256 of "HelloRetryRequest".
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Whether the datagram starts with a ServerHello that commits the server to
/// a handshake: not a DTLS 1.3 HelloRetryRequest, which is only the cookie
/// challenge.
pub(super) fn is_committing_server_hello(datagram: &[u8]) -> bool {
    if plain_handshake_type(datagram) != Some(SERVER_HELLO) {
        return false;
    }
    // server_version (2), then random (32).
    let at = RECORD_HEADER + HANDSHAKE_HEADER + 2;
    datagram.get(at..at + 32) != Some(&HELLO_RETRY_RANDOM[..])
}

/// A ClientHello at the start of a datagram: the length of its cookie.
pub(super) fn client_hello_cookie_len(datagram: &[u8]) -> Option<usize> {
    if plain_handshake_type(datagram)? != CLIENT_HELLO {
        return None;
    }
    let body = datagram.get(RECORD_HEADER + HANDSHAKE_HEADER..)?;
    // A first fragment only: offset 0 (bytes 6..9 of the handshake header).
    let frag_off = datagram.get(RECORD_HEADER + 6..RECORD_HEADER + 9)?;
    if frag_off != [0, 0, 0] {
        return None;
    }
    // client_version (2) and random (32), then session_id and cookie.
    let sid_len = usize::from(*body.get(34)?);
    let cookie_len = usize::from(*body.get(35 + sid_len)?);
    body.get(36 + sid_len..36 + sid_len + cookie_len)?;
    Some(cookie_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hello(cookie: &[u8]) -> Vec<u8> {
        let mut v = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        v.extend([0xfe, 0xfd]);
        v.extend([7u8; 32]);
        v.push(0); // session id
        v.push(u8::try_from(cookie.len()).unwrap());
        v.extend(cookie);
        v.extend([0, 2, 0xc0, 0xa8, 1, 0]);
        v
    }

    #[test]
    fn client_hello_without_and_with_cookie_is_recognised() {
        assert_eq!(client_hello_cookie_len(&client_hello(&[])), Some(0));
        assert_eq!(client_hello_cookie_len(&client_hello(&[9; 32])), Some(32));
    }

    fn server_hello(random: [u8; 32]) -> Vec<u8> {
        let mut v = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        v.extend([0xfe, 0xfd]);
        v.extend(random);
        v
    }

    #[test]
    fn hello_retry_request_does_not_commit_the_server() {
        assert!(is_committing_server_hello(&server_hello([7; 32])));
        assert!(!is_committing_server_hello(&server_hello(
            HELLO_RETRY_RANDOM
        )));
        assert!(!is_committing_server_hello(&client_hello(&[])));
    }

    #[test]
    fn truncated_or_foreign_datagrams_are_not_client_hellos() {
        let ch = client_hello(&[9; 32]);
        for n in 0..60 {
            assert_eq!(client_hello_cookie_len(&ch[..n]), None, "{n}");
        }
        assert_eq!(client_hello_cookie_len(&[23, 0xfe, 0xfd, 0, 1]), None);
        let mut encrypted = client_hello(&[]);
        encrypted[4] = 1; // epoch 1
        assert_eq!(client_hello_cookie_len(&encrypted), None);
    }
}
