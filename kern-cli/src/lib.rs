//! The `kern` command: admins and scripts decide approvals, look after runs, API keys and the
//! audit trail, straight on the database or through a kern server, and serve the HTTP API.
//!
//! Parsing (`cli`) leads to one command module a resource (`commands`), which works on a
//! `target::Context` (a database or a server, the output form, the principal) and answers
//! through `output` in the shapes of `view`; every failure carries its exit code (`exit`).

mod cli;
mod commands;
mod db;
mod exit;
mod http;
mod interrupt;
mod output;
mod target;
mod view;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Cli, Command};
use crate::exit::{Code, Failure, Outcome};
use crate::output::printable;
use crate::target::Context;

/// Runs the command line of this process and returns its exit code.
pub fn main() -> ExitCode {
    // Usage errors exit 2 here, with clap's message (as JSON under `--json`); `--help` and
    // `--version` exit 0.
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() && std::env::args_os().any(|arg| arg == "--json") => {
            // Clap's first paragraph says what was wrong (with the missing arguments on lines of
            // their own); the rest is help for a terminal. A missing subcommand's error is that
            // help alone.
            let message = match err.kind() {
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => "a subcommand is needed: see --help".to_owned(),
                _ => first_paragraph(&err.to_string()),
            };
            report(&Failure::usage(message), true);
            return Code::Usage.into();
        }
        Err(err) => err.exit(),
    };
    // A target named on the command line wins over the other's environment variable.
    match (on_command_line("--db"), on_command_line("--server")) {
        (true, false) => cli.global.server = None,
        (false, true) => cli.global.db = None,
        _ => {}
    }
    let json = cli.global.json;
    let outcome = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(err) => Err(Failure::error(format!("cannot start the async runtime: {err}"))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if failure.output_closed => ExitCode::SUCCESS,
        Err(failure) => {
            report(&failure, json);
            failure.code.into()
        }
    }
}

async fn run(cli: Cli) -> Outcome {
    // Only these create a database or upgrade its tables: any other command on a missing file
    // has a mistyped path, and on older tables leaves them to `kern migrate`.
    let provision = matches!(cli.command, Command::Migrate | Command::Serve(_));
    let ctx = Context::open(&cli.global, provision).await?;
    let outcome = commands::run(cli.command, &ctx).await;
    ctx.close().await;
    outcome
}

/// Whether the command line holds flag `name` (as `--name VALUE` or `--name=VALUE`), rather than
/// its value coming from the environment.
fn on_command_line(name: &str) -> bool {
    std::env::args_os().skip(1).any(|arg| {
        let arg = arg.to_string_lossy();
        arg == name || arg.strip_prefix(name).is_some_and(|rest| rest.starts_with('='))
    })
}

/// What a clap error says was wrong: its first paragraph, on one line, without the `error: `
/// that starts it.
fn first_paragraph(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).take_while(|line| !line.is_empty()).collect();
    lines.join(" ").trim_start_matches("error: ").to_owned()
}

/// Tells why the command failed, on standard error: a line of text, or with `--json` a JSON
/// object scripts can read. A standard error that is closed too hears nothing.
fn report(failure: &Failure, json: bool) {
    let mut stderr = std::io::stderr().lock();
    let _ = if json {
        let error = serde_json::json!({"error": failure.message, "exit_code": failure.code as u8});
        writeln!(stderr, "{error}")
    } else {
        writeln!(stderr, "error: {}", printable(&failure.message))
    };
}
