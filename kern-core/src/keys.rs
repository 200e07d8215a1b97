//! API keys: how a program or an admin proves to a kern server who it is.
//!
//! A key names a [`Principal`] (its id and roles) and the [`Scope`]s it may use. The secret is
//! shown once, when the key is issued; the store keeps only its SHA-256, so a copy of the
//! database lets nobody sign in. A bearer token is `kern_<key id>_<secret>`: the id finds the
//! stored key, and the secret's hash is compared with the stored one in constant time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::approval::Principal;
use crate::text_enum::text_enum;

/// The prefix of every token, so that a leaked one is recognisable (secret scanners match it).
pub const TOKEN_PREFIX: &str = "kern_";

text_enum! {
    /// What a key may do.
    Scope {
        /// Read approval rows, their votes and trail, and the event stream.
        ApprovalsRead = "approvals:read",
        /// Decide approval rows under their policies (approve, reject, vote, or cancel one as a
        /// decision, `POST /approvals/{id}/cancel`), and cancel paused runs.
        ApprovalsWrite = "approvals:write",
        /// Withdraw pending approval rows with the reference's `DELETE /approvals/{id}` (kept for
        /// its clients: the row is cancelled under its policy, as `approvals:write` may).
        ApprovalsDelete = "approvals:delete",
        /// Start and continue runs, and read them.
        RunsWrite = "runs:write",
        /// Everything, across users: the only scope that sees other users' rows under isolation.
        Admin = "admin",
    }
}

/// A stored key: whom it names, what it may do, and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's id, the middle part of its token.
    pub id: String,
    /// The principal a request made with the key acts as.
    pub principal: String,
    /// The principal's roles, matched against approval policies.
    pub roles: Vec<String>,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the secret, in hex.
    pub secret_hash: String,
    /// When it was issued.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key signs nobody in.
    #[serde(serialize_with = "crate::timestamp::serialize_optional")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just issued, with the token that is shown once and never stored.
#[derive(Clone)]
pub struct IssuedKey {
    /// What the store keeps.
    pub key: ApiKey,
    /// The bearer token: `kern_<id>_<secret>`.
    pub token: String,
}

/// The token stays out: a debug line that reaches a log must not sign anyone in.
impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey").field("key", &self.key).field("token", &"<redacted>").finish()
    }
}

impl ApiKey {
    /// Issues a new key for `principal`, with a fresh random secret.
    pub fn issue(principal: impl Into<String>, roles: Vec<String>, scopes: Vec<Scope>) -> IssuedKey {
        let id = uuid::Uuid::new_v4().simple().to_string();
        // Two version-4 UUIDs: 244 bits from the operating system's random source.
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let token = format!("{TOKEN_PREFIX}{id}_{secret}");
        let key = ApiKey {
            id,
            principal: principal.into(),
            roles,
            scopes,
            secret_hash: hash_secret(&secret),
            created_at: crate::now(),
            revoked_at: None,
        };
        IssuedKey { key, token }
    }

    /// True when `secret` is this key's secret, compared in constant time, and the key is not
    /// revoked.
    pub fn accepts(&self, secret: &str) -> bool {
        let matches: bool = hash_secret(secret).as_bytes().ct_eq(self.secret_hash.as_bytes()).into();
        matches && self.revoked_at.is_none()
    }

    /// True when the key grants `scope` (the admin scope grants every scope).
    pub fn grants(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|held| *held == scope || *held == Scope::Admin)
    }

    /// The principal a request made with this key acts as.
    pub fn principal(&self) -> Principal {
        Principal { id: self.principal.clone(), roles: self.roles.clone() }
    }
}

/// The key id and secret of a bearer token, or `None` when it is not a kern token.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_signs_in_and_its_secret_is_not_stored() {
        let issued = ApiKey::issue("alice", vec!["ops".into()], vec![Scope::ApprovalsRead]);
        let (id, secret) = parse_token(&issued.token).unwrap();
        assert_eq!(id, issued.key.id);
        assert!(issued.key.accepts(secret));
        assert!(!issued.key.accepts("not-the-secret"));
        assert!(!issued.key.secret_hash.contains(secret));
        assert_eq!(issued.key.principal(), Principal::new("alice").with_role("ops"));
        assert!(!format!("{issued:?}").contains(secret), "debug output shows no secret");
    }

    #[test]
    fn a_revoked_key_accepts_nothing() {
        let mut issued = ApiKey::issue("alice", Vec::new(), vec![Scope::Admin]);
        let secret = parse_token(&issued.token).unwrap().1.to_owned();
        issued.key.revoked_at = Some(crate::now());
        assert!(!issued.key.accepts(&secret));
    }

    #[test]
    fn admin_grants_every_scope() {
        let admin = ApiKey::issue("root", Vec::new(), vec![Scope::Admin]).key;
        let reader = ApiKey::issue("bob", Vec::new(), vec![Scope::ApprovalsRead]).key;
        assert!(Scope::ALL.iter().all(|scope| admin.grants(*scope)));
        assert!(reader.grants(Scope::ApprovalsRead) && !reader.grants(Scope::ApprovalsWrite));
    }

    #[test]
    fn tokens_of_other_systems_are_not_parsed() {
        for token in ["", "kern_", "kern_abc", "kern__secret", "kern_id_", "Bearer kern_a_b", "sk-123"] {
            assert_eq!(parse_token(token), None, "{token}");
        }
    }
}
