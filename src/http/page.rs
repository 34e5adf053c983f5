//! The status page: static files compiled into the binary (no CDN, no files
//! on disk), filled in by the browser from `/api/events`.

/// A static file.
#[derive(Debug, Clone, Copy)]
pub struct File {
    /// Content-Type.
    pub content_type: &'static str,
    /// Contents.
    pub body: &'static str,
}

const INDEX: File = File {
    content_type: "text/html; charset=utf-8",
    body: include_str!("page/index.html"),
};
const SCRIPT: File = File {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("page/app.js"),
};
const STYLE: File = File {
    content_type: "text/css; charset=utf-8",
    body: include_str!("page/style.css"),
};

/// The embedded file served at `path`.
pub fn file(path: &str) -> Option<File> {
    match path {
        "/" | "/index.html" => Some(INDEX),
        "/app.js" => Some(SCRIPT),
        "/style.css" => Some(STYLE),
        _ => None,
    }
}
