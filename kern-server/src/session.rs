//! The inbox's sign-in sessions: a random 256-bit token in an HttpOnly cookie, of which the
//! server keeps only the SHA-256, mapped to the API key that signed in and the session's CSRF
//! token. The table lives in memory: a restart signs everyone out, and each server process
//! has its own sessions (a load balancer in front of several needs sticky sessions).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The name of the session cookie on a server whose cookies are not `Secure`.
pub const COOKIE_NAME: &str = "kern_session";

/// Its name on a server told it is reached over https (`secure_cookies`): browsers take a
/// `__Host-` cookie only from the host itself, `Secure` and for `Path=/`, so no other site of
/// the domain (nor a page on another port) can plant a session of its own in the admin's
/// browser, and one planted under the plain name is not read.
pub const HOST_COOKIE_NAME: &str = "__Host-kern_session";

/// The session cookie's name on a server whose cookies are `Secure` (`secure_cookies`) or not.
pub fn cookie_name(secure_cookies: bool) -> &'static str {
    if secure_cookies { HOST_COOKIE_NAME } else { COOKIE_NAME }
}

/// The name of the cookie that carries the sign-in form's CSRF token: the form has no session
/// yet, so its hidden token must match this cookie, which a page of another site can neither
/// read nor set.
pub const SIGN_IN_COOKIE: &str = "kern_sign_in";

/// How long a session lasts after sign-in, whatever it does.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The most sessions one API key holds at once: signing in again past it ends the oldest, so a
/// key cannot fill the server's memory with sessions.
pub const MAX_PER_KEY: usize = 32;

/// A signed-in session.
#[derive(Clone)]
pub struct Session {
    /// The id of the API key that signed in: checked again on every request, so a revoked
    /// key signs its sessions out.
    pub key_id: String,
    /// The token every form of the session carries.
    pub csrf: String,
    expires: Instant,
}

/// The CSRF token stays out of debug output, which may reach a log.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("key_id", &self.key_id)
            .field("csrf", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// True when `submitted` is the CSRF token `expected` (compared in constant time).
pub fn csrf_matches(expected: &str, submitted: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// The sessions of a server, by the SHA-256 of their token.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
    /// The CSRF token of a server without authentication, whose inbox has no sessions.
    open_csrf: OnceLock<String>,
}

/// How many sessions there are, and no token: debug output may reach a log.
impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `try_lock`: formatted while its own lock is held, it must not wait for it.
        let signed_in = self.table.try_lock().ok().map(|table| table.len());
        f.debug_struct("Sessions").field("signed_in", &signed_in).finish_non_exhaustive()
    }
}

impl Sessions {
    /// The CSRF token the forms of a server without authentication carry (one for the server's
    /// lifetime).
    pub fn open_csrf(&self) -> Result<String, getrandom::Error> {
        if let Some(token) = self.open_csrf.get() {
            return Ok(token.clone());
        }
        let token = random_hex()?;
        Ok(self.open_csrf.get_or_init(|| token).clone())
    }

    /// Opens a session for `key_id`: its cookie token (shown once, to the browser) and the
    /// session. Errors only when the system has no randomness to give.
    pub fn open(&self, key_id: String) -> Result<(String, Session), getrandom::Error> {
        let token = random_hex()?;
        let session = Session { key_id, csrf: random_hex()?, expires: Instant::now() + LIFETIME };
        let mut table = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        table.retain(|_, open| open.expires > now);
        let mut of_key: Vec<([u8; 32], Instant)> = table
            .iter()
            .filter(|(_, open)| open.key_id == session.key_id)
            .map(|(digest, open)| (*digest, open.expires))
            .collect();
        if of_key.len() >= MAX_PER_KEY {
            of_key.sort_by_key(|(_, expires)| *expires);
            for (oldest, _) in &of_key[..=of_key.len() - MAX_PER_KEY] {
                table.remove(oldest);
            }
        }
        table.insert(digest(&token), session.clone());
        Ok((token, session))
    }

    /// The live session of `token`, if any.
    pub fn find(&self, token: &str) -> Option<Session> {
        self.find_by_digest(&digest(token))
    }

    /// The live session whose token has digest `key`, if any.
    pub(crate) fn find_by_digest(&self, key: &[u8; 32]) -> Option<Session> {
        let mut table = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match table.get(key) {
            Some(session) if session.expires > Instant::now() => Some(session.clone()),
            Some(_) => {
                table.remove(key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`.
    pub fn close(&self, token: &str) {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&digest(token));
    }
}

/// The session token a request's cookies carry.
pub fn cookie_token(headers: &HeaderMap, secure_cookies: bool) -> Option<&str> {
    cookie(headers, cookie_name(secure_cookies))
}

/// The value of cookie `name` in a request, when it is not empty.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('=').filter(|token| !token.is_empty()))
}

/// True when `text` has the shape of a token of [`random_hex`].
pub fn is_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// 256 random bits as hex: a token no one can guess.
pub fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_session_is_found_by_its_token_alone_until_closed() {
        let sessions = Sessions::default();
        let (token, session) = sessions.open("key1".into()).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(sessions.find(&token).map(|found| found.key_id), Some("key1".to_owned()));
        assert!(sessions.find(&session.csrf).is_none(), "the CSRF token is no session token");
        assert!(!sessions.table.lock().unwrap().keys().any(|key| key == token.as_bytes()));
        sessions.close(&token);
        assert!(sessions.find(&token).is_none());
    }

    #[test]
    fn a_key_holds_at_most_its_share_of_sessions_and_loses_the_oldest() {
        let sessions = Sessions::default();
        let (first, _) = sessions.open("key1".into()).unwrap();
        let (other, _) = sessions.open("key2".into()).unwrap();
        let mut latest = String::new();
        for _ in 0..MAX_PER_KEY {
            std::thread::sleep(Duration::from_millis(1));
            latest = sessions.open("key1".into()).unwrap().0;
        }
        assert!(sessions.find(&first).is_none(), "the oldest session of the key ended");
        assert!(sessions.find(&latest).is_some());
        assert!(sessions.find(&other).is_some(), "another key's session is untouched");
        let of_key1 = sessions.table.lock().unwrap().values().filter(|s| s.key_id == "key1").count();
        assert_eq!(of_key1, MAX_PER_KEY);
    }

    #[test]
    fn the_csrf_token_must_match_exactly() {
        let (_, session) = Sessions::default().open("key1".into()).unwrap();
        assert!(csrf_matches(&session.csrf, &session.csrf.clone()));
        assert!(!csrf_matches(&session.csrf, ""));
        assert!(!csrf_matches(&session.csrf, &session.csrf[1..]));
    }

    #[test]
    fn the_token_is_read_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("theme=dark; kern_session=abc; x=1"));
        assert_eq!(cookie_token(&headers, false), Some("abc"));
        assert_eq!(cookie_token(&headers, true), None, "a plain cookie is not the __Host- one");
        headers.insert(COOKIE, HeaderValue::from_static("kern_session_old=abc"));
        assert_eq!(cookie_token(&headers, false), None);
    }
}
