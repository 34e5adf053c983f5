//! Reading one HTTP/1.1 request head, with limits: the server never
//! buffers more than [`MAX_HEAD`] bytes from a peer.

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// A parsed request line (headers are read and ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. "GET".
    pub method: String,
    /// Path without the query string, percent-decoded.
    pub path: String,
}

/// Why a request could not be read.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The peer closed before a full head arrived.
    #[error("connection closed before the request head ended")]
    Closed,
    /// The head is longer than [`MAX_HEAD`].
    #[error("request head longer than {MAX_HEAD} bytes")]
    TooLarge,
    /// Not an HTTP/1.x request line.
    #[error("malformed request line")]
    Malformed,
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads bytes until the blank line that ends the head, then parses it.
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, RequestError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(RequestError::Closed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = find_head_end(&buf) {
            return parse_head(buf.get(..end).unwrap_or_default());
        }
        if buf.len() > MAX_HEAD {
            return Err(RequestError::TooLarge);
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses "METHOD target HTTP/1.x" from the first line of `head`.
pub fn parse_head(head: &[u8]) -> Result<Request, RequestError> {
    let text = std::str::from_utf8(head).map_err(|_| RequestError::Malformed)?;
    let line = text.lines().next().ok_or(RequestError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(RequestError::Malformed);
    }
    let raw_path = target.split(['?', '#']).next().unwrap_or("/");
    let path = percent_decode(raw_path).ok_or(RequestError::Malformed)?;
    Ok(Request {
        method: method.to_string(),
        path,
    })
}

/// Decodes %XX escapes; `None` for a bad escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_gives_method_and_path_without_query() {
        let r = parse_head(b"GET /api/sensors?x=1 HTTP/1.1\r\nHost: a").unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/sensors");
    }

    #[test]
    fn path_is_percent_decoded() {
        let r = parse_head(b"GET /api/sensors/s%201%2Fa HTTP/1.1").unwrap();
        assert_eq!(r.path, "/api/sensors/s 1/a");
    }

    #[test]
    fn malformed_request_lines_are_refused() {
        for head in [
            &b""[..],
            b"GET",
            b"GET / FTP/1.0",
            b"GET noslash HTTP/1.1",
            b"GET / HTTP/1.1 extra",
            b"GET /%zz HTTP/1.1",
            b"GET /%ff HTTP/1.1",
            b"\xff\xfe / HTTP/1.1",
        ] {
            assert!(parse_head(head).is_err(), "{head:?}");
        }
    }

    #[test]
    fn truncated_escape_is_refused() {
        assert_eq!(percent_decode("a%4"), None);
        assert_eq!(percent_decode("a%41"), Some("aA".into()));
    }

    #[tokio::test]
    async fn oversized_head_is_refused() {
        let data = vec![b'a'; MAX_HEAD + 2048];
        let mut r = &data[..];
        assert!(matches!(
            read_request(&mut r).await,
            Err(RequestError::TooLarge)
        ));
    }

    #[tokio::test]
    async fn head_split_across_reads_is_read_whole() {
        let data = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut r = &data[..];
        let req = read_request(&mut r).await.unwrap();
        assert_eq!(req.path, "/healthz");
    }
}
