//! API keys as the admin routes answer them: never the secret's hash; the token only once, in
//! the answer to the request that issued it.

use kern_core::keys::ApiKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A key, without its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyResponse {
    pub id: String,
    /// Who the key signs in.
    pub principal: String,
    pub roles: Vec<String>,
    /// `approvals:read`, `approvals:write`, `approvals:delete`, `runs:write`, `admin`.
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<&ApiKey> for KeyResponse {
    fn from(key: &ApiKey) -> Self {
        KeyResponse {
            id: key.id.clone(),
            principal: key.principal.clone(),
            roles: key.roles.clone(),
            scopes: key.scopes.iter().map(ToString::to_string).collect(),
            created_at: key.created_at.timestamp(),
            revoked_at: key.revoked_at.map(|at| at.timestamp()),
        }
    }
}

/// A key just issued, with its bearer token: shown this once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct IssuedKeyResponse {
    #[serde(flatten)]
    pub key: KeyResponse,
    /// `Authorization: Bearer <token>`.
    pub token: String,
}

/// The token stays out of debug output, which may reach a log.
impl std::fmt::Debug for IssuedKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKeyResponse").field("key", &self.key).field("token", &"<redacted>").finish()
    }
}

/// The body of `POST /keys`. A field it does not know is refused: a misspelt `roles` would
/// issue a key without them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    pub principal: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}
