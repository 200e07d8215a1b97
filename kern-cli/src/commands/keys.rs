//! `kern keys`: issue, list and revoke the API keys a server signs callers in with. The token
//! is shown once, when issued; the store keeps only its secret's hash.

use kern_core::keys::ApiKey;
use serde::Serialize;

use crate::cli::KeysCommand;
use crate::exit::{Failure, Outcome};
use crate::output::{Colour, Table, or_dash, plain};
use crate::target::Context;
use crate::view::KeyView;

/// A key just issued, with its token: the only time it is shown.
#[derive(Serialize)]
struct Issued<'a> {
    #[serde(flatten)]
    key: &'a KeyView,
    token: &'a str,
}

pub async fn run(command: KeysCommand, ctx: &Context) -> Outcome {
    let store = ctx.store("keys")?;
    match command {
        KeysCommand::Create { principal, roles, scopes } => {
            let issued = ApiKey::issue(principal, roles, scopes);
            store.save_api_key(&issued.key).await?;
            let view = KeyView::from(&issued.key);
            if ctx.out.json {
                return ctx.out.json_line(&Issued { key: &view, token: &issued.token });
            }
            ctx.out.fields(&[
                ("key", view.id.clone(), None),
                ("principal", view.principal.clone(), None),
                ("roles", view.roles.join(","), None),
                ("scopes", view.scopes.join(","), None),
                ("token", issued.token, Some(Colour::Bold)),
            ])?;
            ctx.out.line("The token is shown this once: keep it now (Authorization: Bearer <token>).")
        }
        KeysCommand::List => {
            let keys: Vec<KeyView> = store.api_keys().await?.iter().map(KeyView::from).collect();
            if ctx.out.json {
                return ctx.out.json_line(&keys);
            }
            let mut table = Table::new(&["ID", "PRINCIPAL", "ROLES", "SCOPES", "CREATED", "REVOKED"]);
            for key in &keys {
                let revoked = key.revoked_at.map(super::time);
                table.row(vec![
                    plain(&key.id),
                    plain(&key.principal),
                    plain(key.roles.join(",")),
                    plain(key.scopes.join(",")),
                    plain(super::time(key.created_at)),
                    (or_dash(revoked.as_deref()), revoked.as_ref().map(|_| Colour::Red)),
                ]);
            }
            ctx.out.table(&table)
        }
        KeysCommand::Revoke { id } => {
            let key = store
                .revoke_api_key(&id)
                .await?
                .ok_or_else(|| Failure::not_found(format!("API key `{id}` not found")))?;
            let view = KeyView::from(&key);
            if ctx.out.json {
                return ctx.out.json_line(&view);
            }
            ctx.out.line(&format!("revoked key {} of {}: it signs nobody in from now on", view.id, view.principal))
        }
    }
}
