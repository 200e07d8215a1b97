//! `kern keys`: issue, list and revoke the API keys a server signs callers in with, on the
//! database or through a server's `/keys` routes (an admin key). The token is shown once, when
//! issued; the store keeps only its secret's hash.

use kern_core::keys::{ApiKey, Scope};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::KeysCommand;
use crate::exit::{Failure, Outcome};
use crate::http::segment;
use crate::output::{Colour, Table, or_dash, plain, printable, time};
use crate::target::{Context, Target};
use crate::view::KeyView;

/// A key just issued, with its token: the only time it is shown.
#[derive(Serialize)]
struct Issued {
    #[serde(flatten)]
    key: KeyView,
    token: String,
}

pub async fn run(command: KeysCommand, ctx: &Context) -> Outcome {
    match command {
        KeysCommand::Create { principal, roles, scopes } => {
            let issued = create(ctx, principal, roles, scopes).await?;
            let id = issued.key.id.clone();
            let shown = if ctx.out.json {
                ctx.out.json_line(&issued)
            } else {
                ctx.out.fields(&[
                    ("key", issued.key.id.clone(), None),
                    ("principal", issued.key.principal.clone(), None),
                    ("roles", issued.key.roles.join(","), None),
                    ("scopes", issued.key.scopes.join(","), None),
                    ("token", issued.token, Some(Colour::Bold)),
                ])
            };
            // The key exists now and its token is shown nowhere else: a token nobody read is
            // a failure to say, even when the reader went away.
            shown.map_err(|failure| {
                Failure::error(format!(
                    "key {id} was issued but its token could not be shown ({failure}): revoke it with \
                     `kern keys revoke {id}` and issue another"
                ))
            })?;
            if ctx.out.json {
                return Ok(());
            }
            ctx.out.line("The token is shown this once: keep it now (Authorization: Bearer <token>).")
        }
        KeysCommand::List => {
            let keys: Vec<KeyView> = match &ctx.target {
                Target::Database(db) => db.store().api_keys().await?.iter().map(KeyView::from).collect(),
                Target::Server(client) => {
                    let keys = client.get("/keys", &[]).await?;
                    let keys =
                        keys.as_array().ok_or_else(|| Failure::error("the server answered keys that are no list"))?;
                    keys.iter().map(KeyView::from_wire).collect::<Outcome<_>>()?
                }
            };
            if ctx.out.json {
                return ctx.out.json_line(&keys);
            }
            let mut table = Table::new(&["ID", "PRINCIPAL", "ROLES", "SCOPES", "CREATED", "REVOKED"]);
            for key in &keys {
                let revoked = key.revoked_at.map(time);
                table.row(vec![
                    plain(&key.id),
                    plain(&key.principal),
                    plain(key.roles.join(",")),
                    plain(key.scopes.join(",")),
                    plain(time(key.created_at)),
                    (or_dash(revoked.as_deref()), revoked.as_ref().map(|_| Colour::Red)),
                ]);
            }
            ctx.out.page(&table, "no keys", &[], None)
        }
        KeysCommand::Revoke { id } => {
            let key = match &ctx.target {
                Target::Database(db) => KeyView::from(
                    &db.store()
                        .revoke_api_key(&id)
                        .await?
                        .ok_or_else(|| Failure::not_found(format!("API key `{id}` not found")))?,
                ),
                Target::Server(client) => {
                    KeyView::from_wire(&client.delete(&format!("/keys/{}", segment(&id)?)).await?)?
                }
            };
            if ctx.out.json {
                return ctx.out.json_line(&key);
            }
            let (id, principal) = (printable(&key.id), printable(&key.principal));
            ctx.out.line(&format!("revoked key {id} of {principal}: it signs nobody in from now on"))
        }
    }
}

/// Issues a key: on the database here, or by the server.
async fn create(ctx: &Context, principal: String, roles: Vec<String>, scopes: Vec<Scope>) -> Outcome<Issued> {
    ctx.refuse_acting_as("keys create", "a key's principal is --principal and its roles --roles")?;
    match &ctx.target {
        Target::Database(db) => {
            let issued = ApiKey::issue(principal, roles, scopes);
            db.store().save_api_key(&issued.key).await?;
            Ok(Issued { key: KeyView::from(&issued.key), token: issued.token })
        }
        Target::Server(client) => {
            let scopes: Vec<String> = scopes.iter().map(ToString::to_string).collect();
            let body = json!({"principal": principal, "roles": roles, "scopes": scopes});
            let answer = client.post("/keys", &body).await?;
            let token = answer
                .get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| Failure::error("the server issued no token"))?
                .to_owned();
            Ok(Issued { key: KeyView::from_wire(&answer)?, token })
        }
    }
}
