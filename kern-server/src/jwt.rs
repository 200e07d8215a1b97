//! JWT bearer tokens (the `jwt` feature): an identity provider's HS256 or RS256 token signs a
//! caller in, `sub` naming the principal, `roles` its roles, and `scopes` (a list) or `scope`
//! (space-separated) what it may do. Expiry and, when the token has one, its start (`nbf`) are
//! always checked; the audience and issuer when configured, and then a token without them is
//! refused. With no audience configured, a token that names one is refused all the same: it
//! was minted for that audience, not for this server (RFC 7519, 4.1.3).

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kern_core::approval::Principal;
use kern_core::keys::Scope;
use serde::Deserialize;

use crate::error::ApiError;

/// How JWTs are verified.
#[derive(Clone)]
pub struct Jwt {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

/// A public key that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JWT verification key could not be read: {0}")]
pub struct JwtKeyError(String);

impl Jwt {
    /// Tokens signed with HS256 and `secret`. Without [`audience`](Self::audience), only
    /// tokens that name no audience pass.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// Tokens signed with RS256, checked with the RSA public key of modulus `n` and exponent
    /// `e` (base64url, as a JWK publishes them). An identity provider's tokens name their
    /// audience: set it with [`audience`](Self::audience), or they are refused.
    pub fn rs256(n: &str, e: &str) -> Result<Self, JwtKeyError> {
        let key = DecodingKey::from_rsa_components(n, e).map_err(|err| JwtKeyError(err.to_string()))?;
        Ok(Self::with(key, Algorithm::RS256))
    }

    fn with(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        Jwt { key, validation }
    }

    /// Accepts only tokens for `audience` (their `aud`): a token that names no audience is
    /// refused too, or one minted for any other service that shares the key would pass.
    #[must_use]
    pub fn audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation.required_spec_claims.insert("aud".to_owned());
        self
    }

    /// Accepts only tokens from `issuer` (their `iss`); a token that names no issuer is refused.
    #[must_use]
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self.validation.required_spec_claims.insert("iss".to_owned());
        self
    }

    /// The principal and scopes of `token` and when it stops being accepted (epoch seconds: its
    /// expiry, and the leeway the check gives clocks that differ), or a 401 in the reference's
    /// words.
    pub(crate) fn verify(&self, token: &str) -> Result<(Principal, Vec<Scope>, i64), ApiError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|err| {
            ApiError::unauthorized(match err.kind() {
                ErrorKind::ExpiredSignature => "Token has expired".to_owned(),
                ErrorKind::ImmatureSignature => "Token is not valid yet".to_owned(),
                ErrorKind::InvalidAudience => "Invalid token audience - token not valid for this server".to_owned(),
                _ => format!("Invalid token: {err}"),
            })
        })?;
        let Claims { sub, roles, scopes, scope, exp } = claims.claims;
        if sub.is_empty() || !kern_core::limits::is_name(&sub) {
            return Err(ApiError::unauthorized("Invalid token: `sub` must name the principal"));
        }
        let named = scopes.into_iter().chain(scope.split_whitespace().map(str::to_owned));
        // Scopes of other systems in the same token are not kern's to judge.
        let scopes = named.filter_map(|text| text.parse().ok()).collect();
        let leeway = i64::try_from(self.validation.leeway).unwrap_or(i64::MAX);
        Ok((Principal { id: sub, roles }, scopes, exp.saturating_add(leeway)))
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    scope: String,
    /// Always present: validation requires it.
    exp: i64,
}
