//! What a command works on: a database opened directly (`--db`) or a kern server (`--server`),
//! with the output form and the principal decisions are made as.

use std::sync::Arc;

use kern_core::approval::Principal;
use kern_core::store::Store;

use crate::cli::Global;
use crate::db::Database;
use crate::exit::{Failure, Outcome};
use crate::http::Client;
use crate::output::Output;

/// The database or the server.
#[derive(Debug)]
pub enum Target {
    Database(Database),
    Server(Client),
}

/// Everything a command needs besides its own arguments.
#[derive(Debug)]
pub struct Context {
    pub target: Target,
    pub out: Output,
    /// `--as` and its roles, on a direct connection.
    principal: Option<Principal>,
}

impl Context {
    /// Opens the target the flags (or their environment variables) name: exactly one of
    /// `--db` and `--server`. A database that does not exist yet is created, and tables an older
    /// build wrote upgraded, only if `provision`.
    pub async fn open(global: &Global, provision: bool) -> Outcome<Self> {
        let principal =
            global.acting_as.as_ref().map(|id| Principal { id: id.clone(), roles: global.acting_roles.clone() });
        if principal.is_none() && !global.acting_roles.is_empty() {
            return Err(Failure::usage(
                "--role gives the roles of --as: pass --as too (a new key's roles are --roles)",
            ));
        }
        let target = match (&global.db, &global.server) {
            (Some(_), Some(_)) => {
                return Err(Failure::usage(
                    "both a database (--db or KERN_DATABASE_URL) and a server (--server or KERN_SERVER_URL) are \
                     given: choose one",
                ));
            }
            (Some(url), None) => Target::Database(Database::open(url, &global.tables, provision).await?),
            (None, Some(url)) => {
                if principal.is_some() {
                    return Err(Failure::usage(
                        "--as is for a direct database connection: through a server, decisions are made as the API \
                         key's principal",
                    ));
                }
                Target::Server(Client::new(url, api_key(global)?, global.allow_http)?)
            }
            (None, None) => {
                return Err(Failure::usage(
                    "no database or server: pass --db URL (or set KERN_DATABASE_URL), or --server URL (or set \
                     KERN_SERVER_URL)",
                ));
            }
        };
        Ok(Context { target, out: Output::new(global.json), principal })
    }

    /// The store, for a command that only a direct connection can carry out.
    pub fn store(&self, command: &str) -> Outcome<Arc<dyn Store>> {
        self.database(command).map(Database::store)
    }

    /// The database, for a command that only a direct connection can carry out.
    pub fn database(&self, command: &str) -> Outcome<&Database> {
        match &self.target {
            Target::Database(db) => Ok(db),
            Target::Server(_) => Err(Failure::usage(format!(
                "`kern {command}` needs a direct database connection: pass --db URL instead of --server"
            ))),
        }
    }

    /// Who decides on a direct connection: `--as`, which a decision cannot do without.
    pub fn principal(&self, command: &str) -> Outcome<&Principal> {
        self.principal.as_ref().ok_or_else(|| {
            Failure::usage(format!(
                "`kern {command}` decides as a principal, recorded on the trail: pass --as ID (and --role for the \
                 roles the row's policy asks for)"
            ))
        })
    }

    /// Refuses `--as` and `--role` for `command`, which names a principal of its own: there they
    /// would be taken for its own flags (`--role` for `--roles`) and dropped.
    pub fn refuse_acting_as(&self, command: &str, instead: &str) -> Outcome {
        match self.principal {
            Some(_) => Err(Failure::usage(format!(
                "`kern {command}` decides nothing: --as and --role name who decides a row; {instead}"
            ))),
            None => Ok(()),
        }
    }

    /// Closes a direct connection.
    pub async fn close(&self) {
        if let Target::Database(db) = &self.target {
            db.close().await;
        }
    }
}

/// The API key: read from the first line of `--api-key-file` (standard input for `-`) when
/// one is given, else as given.
fn api_key(global: &Global) -> Outcome<Option<String>> {
    let Some(path) = &global.api_key_file else { return Ok(global.api_key.clone()) };
    let from_stdin = path.as_os_str() == "-";
    let source = if from_stdin { "standard input".to_owned() } else { path.display().to_string() };
    let read = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    } else {
        std::fs::read_to_string(path)
    };
    let text = read.map_err(|err| Failure::usage(format!("cannot read the API key from {source}: {err}")))?;
    match text.lines().next().map(str::trim).filter(|key| !key.is_empty()) {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(Failure::usage(format!("{source} holds no API key"))),
    }
}
