//! Where the inbox's forms may come from. A browser names the page a form was posted from in
//! `Origin`; the form is the inbox's own when that origin is the server the request is sent to
//! (`Host`), or the public origin the server was told it is reached at, for a server behind a
//! proxy that passes requests on with a `Host` of its own.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// The origin a server is reached at from outside, such as `https://kern.example.com`: a
/// scheme (`http` or `https`), a host and an optional port, nothing else. Kept as browsers send
/// it in `Origin`: in lower case, without a default port (`:443` for https, `:80` for http).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin(String);

/// Why a text is no [`PublicOrigin`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{origin}` is not an origin ({reason}): write it as a browser names it, such as https://kern.example.com")]
pub struct InvalidOrigin {
    /// The text given.
    pub origin: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl PublicOrigin {
    /// Reads `text`; one trailing `/` is dropped.
    pub fn parse(text: &str) -> Result<Self, InvalidOrigin> {
        let refuse = |reason| InvalidOrigin { origin: text.to_owned(), reason };
        let lower = text.to_ascii_lowercase();
        let Some((scheme, authority)) = lower.split_once("://") else {
            return Err(refuse("it has no scheme"));
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let default_port = match scheme {
            "https" => "443",
            "http" => "80",
            _ => return Err(refuse("its scheme is neither http nor https")),
        };
        // An IPv6 address is bracketed, and holds colons of its own.
        let (host, port) = match authority.rfind(':') {
            Some(at) if !authority[at..].contains(']') => (&authority[..at], Some(&authority[at + 1..])),
            _ => (authority, None),
        };
        if host.is_empty() {
            return Err(refuse("it has no host"));
        }
        let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
        let host_chars = |byte: u8| byte.is_ascii_alphanumeric() || b".-".contains(&byte);
        let ipv6_chars = |byte: u8| byte.is_ascii_hexdigit() || b":.".contains(&byte);
        let valid_host =
            if bracketed { host[1..host.len() - 1].bytes().all(ipv6_chars) } else { host.bytes().all(host_chars) };
        if !valid_host {
            return Err(refuse("it has a path, a query, credentials or a character no host has"));
        }
        match port {
            Some(port) if port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()) => {
                Err(refuse("its port is not a number"))
            }
            Some(port) if port != default_port => Ok(PublicOrigin(format!("{scheme}://{host}:{port}"))),
            _ => Ok(PublicOrigin(format!("{scheme}://{host}"))),
        }
    }

    /// The origin, as a browser sends it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True when a request names an origin other than the server it is sent to (by `Host`) and
/// other than `public`: browsers send `Origin` with every POST, so a form posted from another
/// site is told apart. A request without `Origin` (not from a browser's form) is not; one whose
/// `Origin` is not text is.
pub fn cross_origin(headers: &HeaderMap, public: Option<&PublicOrigin>) -> bool {
    let Some(origin) = headers.get(ORIGIN) else { return false };
    let Ok(origin) = origin.to_str() else { return true };
    if public.is_some_and(|public| origin.eq_ignore_ascii_case(public.as_str())) {
        return false;
    }
    let host = headers.get(HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    origin_host != host
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origin: &str, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        headers.insert(HOST, HeaderValue::from_str(host).unwrap());
        headers
    }

    #[test]
    fn an_origin_is_a_scheme_a_host_and_a_port() {
        assert_eq!(PublicOrigin::parse("https://Kern.Example.com/").unwrap().as_str(), "https://kern.example.com");
        assert_eq!(PublicOrigin::parse("http://10.0.0.5:8080").unwrap().as_str(), "http://10.0.0.5:8080");
        assert_eq!(PublicOrigin::parse("http://[::1]:7000").unwrap().as_str(), "http://[::1]:7000");
        assert_eq!(PublicOrigin::parse("http://[::1]").unwrap().as_str(), "http://[::1]");
        // Browsers leave a default port out of `Origin`.
        assert_eq!(PublicOrigin::parse("https://kern.example.com:443").unwrap().as_str(), "https://kern.example.com");
        assert_eq!(PublicOrigin::parse("http://kern.example.com:80/").unwrap().as_str(), "http://kern.example.com");
        assert_eq!(PublicOrigin::parse("http://kern.example.com:443").unwrap().as_str(), "http://kern.example.com:443");
        for (text, reason) in [
            ("kern.example.com", "it has no scheme"),
            ("ftp://kern.example.com", "its scheme is neither http nor https"),
            ("https://", "it has no host"),
            ("https://:443", "it has no host"),
            ("https://kern.example.com:", "its port is not a number"),
            ("https://kern.example.com:44x", "its port is not a number"),
            ("https://kern.example.com/inbox", "it has a path, a query, credentials or a character no host has"),
            ("https://admin@kern.example.com", "it has a path, a query, credentials or a character no host has"),
            ("https://a]b", "it has a path, a query, credentials or a character no host has"),
            ("https://[zz::1]", "it has a path, a query, credentials or a character no host has"),
        ] {
            assert_eq!(PublicOrigin::parse(text).unwrap_err().reason, reason, "{text}");
        }
    }

    #[test]
    fn a_form_is_the_servers_own_from_its_host_or_its_public_origin() {
        let public = PublicOrigin::parse("https://kern.example.com").unwrap();
        assert!(!cross_origin(&headers("http://127.0.0.1:7000", "127.0.0.1:7000"), None));
        // Behind a proxy that rewrites `Host`: refused unless the public origin is known.
        let proxied = headers("https://kern.example.com", "127.0.0.1:7000");
        assert!(cross_origin(&proxied, None));
        assert!(!cross_origin(&proxied, Some(&public)));
        assert!(!cross_origin(&headers("https://KERN.example.com", "127.0.0.1:7000"), Some(&public)));
        for elsewhere in ["https://evil.example", "http://kern.example.com", "https://kern.example.com:8443", "null"] {
            assert!(cross_origin(&headers(elsewhere, "127.0.0.1:7000"), Some(&public)), "{elsewhere}");
        }
        assert!(!cross_origin(&HeaderMap::new(), Some(&public)), "no Origin: not a browser's form");
        let mut garbled = headers("https://kern.example.com", "127.0.0.1:7000");
        garbled.insert(ORIGIN, HeaderValue::from_bytes(b"https://k\xe9rn.example.com").unwrap());
        assert!(cross_origin(&garbled, Some(&public)), "an Origin that is not text is refused");
    }
}
