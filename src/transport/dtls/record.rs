//! Just enough of the DTLS 1.2 record layer (RFC 6347 §4.1, §4.2.2) to route
//! a datagram before handing it to a session: is it a ClientHello, does it
//! carry a cookie, and did the server answer with HelloVerifyRequest or
//! ServerHello. Total on arbitrary bytes.

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
