//! The inbox's static files, compiled into the binary (it works offline, with no CDN): served
//! with their content type, cached for a year under a URL that carries a hash of their bytes,
//! so that a new build's files are fetched at once.

use std::sync::LazyLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::forms::PagePath;

/// One static file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "inbox.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/inbox.css"),
    },
    Asset {
        name: "inbox.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/inbox.js"),
    },
];

/// Where the pages link each file: its path with a hash of its bytes.
pub struct AssetUrls {
    pub css: String,
    pub js: String,
}

/// The URLs of this build's files, computed once.
pub fn urls() -> &'static AssetUrls {
    static URLS: LazyLock<AssetUrls> = LazyLock::new(|| AssetUrls { css: url("inbox.css"), js: url("inbox.js") });
    &URLS
}

fn url(name: &str) -> String {
    let bytes = ASSETS.iter().find(|asset| asset.name == name).map_or(&[][..], |asset| asset.bytes);
    let hash: String = Sha256::digest(bytes).iter().take(6).map(|byte| format!("{byte:02x}")).collect();
    format!("/ui/assets/{name}?v={hash}")
}

/// `GET /ui/assets/{name}`.
pub async fn serve(PagePath(name): PagePath<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
