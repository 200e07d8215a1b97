//! The command line: every subcommand and flag of `kern`, as clap parses them, and the parsers
//! of the values they take (durations, times, JSON).

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kern_core::approval::{ApprovalStatus, PageCursor};
use kern_core::keys::Scope;
use kern_core::limits;
use kern_core::run::RunStatus;
use kern_core::trail::Checkpoint;
use kern_core::worker::MIN_STALE_AFTER;
use kern_server::PublicOrigin;
use serde_json::{Map, Value};

/// What `kern --help` ends with: the exit codes scripts can rely on.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error: a value was refused, the database failed, or another failure not known to pass
  2  usage: bad arguments, a decision without --as, a command the target cannot do
  3  conflict: the row or run is no longer in a state that allows it
  4  not found: no such approval, run or key
  5  refused: the row's policy does not let the principal decide it, or the key lacks the scope
  6  unavailable: the server cannot be reached or is unavailable a moment; trying again may succeed
  7  unauthorized: the server did not accept the API key (none, unknown or revoked)
  8  trail broken: `audit verify` found a link or a checkpoint that does not hold";

/// Admin tool of kern: decide approvals, look after runs, API keys and the audit trail, serve
/// the HTTP API.
#[derive(Debug, Parser)]
#[command(name = "kern", version, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where to work and how to answer: flags every subcommand takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The database: `sqlite://app.db` or `postgres://user:password@host/database`. A password
    /// given here may be read by other users of the machine in the process list: prefer
    /// KERN_DATABASE_URL.
    #[arg(long, global = true, env = "KERN_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub db: Option<String>,
    /// A kern server to work through instead of a database, such as `http://127.0.0.1:7000`:
    /// `https://` unless it is on this machine, as the API key goes with every request.
    #[arg(long, global = true, env = "KERN_SERVER_URL", hide_env_values = true, value_name = "URL")]
    pub server: Option<String>,
    /// Sends the API key over plain `http://` to a server on another machine: for a network
    /// where nobody else can listen.
    #[arg(long, global = true)]
    pub allow_http: bool,
    /// The API key a server signs in (`kern_...`). Given here, other users of the machine may
    /// read it in the process list: prefer KERN_API_KEY or --api-key-file.
    #[arg(long, global = true, env = "KERN_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// A file that holds the API key a server signs in (its first line), or `-` for standard
    /// input (`pass kern | kern --api-key-file - ..`); it wins over --api-key and KERN_API_KEY.
    #[arg(long, global = true, value_name = "PATH")]
    pub api_key_file: Option<std::path::PathBuf>,
    /// Who decides, on a direct database connection (recorded on the trail).
    #[arg(long = "as", global = true, value_name = "PRINCIPAL", value_parser = parse_name)]
    pub acting_as: Option<String>,
    /// The roles of `--as`, matched against approval policies (repeat or separate by commas).
    #[arg(long = "role", global = true, value_name = "ROLE", value_delimiter = ',')]
    pub acting_roles: Vec<String>,
    /// Answers in JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub tables: Tables,
}

/// The names an application gave kern's tables.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database tables")]
pub struct Tables {
    /// The Postgres schema of kern's tables.
    #[arg(long, global = true, env = "KERN_DATABASE_SCHEMA", value_name = "NAME")]
    pub schema: Option<String>,
    /// The approvals table (its events, votes and keys live in tables named after it).
    #[arg(long, global = true, env = "KERN_APPROVALS_TABLE", value_name = "NAME")]
    pub approvals_table: Option<String>,
    /// The runs table.
    #[arg(long, global = true, env = "KERN_RUNS_TABLE", value_name = "NAME")]
    pub runs_table: Option<String>,
    /// The sessions table.
    #[arg(long, global = true, env = "KERN_SESSIONS_TABLE", value_name = "NAME")]
    pub sessions_table: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Approval rows: list, show, decide, watch.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Runs: list, show, cancel, recover.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// API keys of the server: create, list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit trail: verify its hash chains, export its events.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Serves the HTTP API over the database (needs --db).
    Serve(ServeArgs),
    /// Brings the database to the current schema and prints its version (needs --db).
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Lists rows, newest first.
    List(ApprovalFilters),
    /// Shows one row.
    Show {
        /// The row's id.
        id: String,
    },
    /// Approves a row (or votes for it, under a quorum).
    Approve(ApproveArgs),
    /// Rejects a row; the note tells the model why.
    Reject {
        /// The row's id.
        id: String,
        /// Why.
        #[arg(long)]
        note: String,
    },
    /// Withdraws a pending row: its call will not run.
    Cancel {
        /// The row's id.
        id: String,
        /// Why, for the trail.
        #[arg(long)]
        note: Option<String>,
    },
    /// Prints each row created or decided as it happens, until interrupted.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct ApprovalFilters {
    /// Only rows in this status.
    #[arg(long, value_parser = parse_text::<ApprovalStatus>)]
    pub status: Option<ApprovalStatus>,
    /// Only rows of this tool.
    #[arg(long)]
    pub tool: Option<String>,
    #[command(flatten)]
    pub owner: OwnerFilters,
    /// Only rows of this run.
    #[arg(long)]
    pub run: Option<String>,
    /// Only rows created at or after this time: RFC 3339, or a duration ago (`2h`).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub since: Option<DateTime<Utc>>,
    /// Only rows created before this time: RFC 3339, or a duration ago (`2h`).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub until: Option<DateTime<Utc>>,
    /// Only rows that expire before this time: RFC 3339, or a duration ahead (`30m`); pending
    /// ones, unless --status says otherwise.
    #[arg(long, value_parser = parse_deadline, value_name = "TIME")]
    pub expiring: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The row's id.
    pub id: String,
    /// A note for the trail and the model.
    #[arg(long)]
    pub note: Option<String>,
    /// The values a user-input call waits for, as a JSON object.
    #[arg(long, value_parser = parse_json_object, value_name = "JSON")]
    pub values: Option<Map<String, Value>>,
    /// The result of a call executed elsewhere, as JSON.
    #[arg(long, value_parser = parse_json, value_name = "JSON")]
    pub result: Option<Value>,
    /// Edited arguments in place of the model's, as JSON (where the policy allows edits).
    #[arg(long, value_parser = parse_json, value_name = "JSON")]
    pub args: Option<Value>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Starts after this event `seq` (0 replays the whole trail); by default with what
    /// happens next.
    #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(i64).range(0..))]
    pub after: Option<i64>,
    /// Prints every event (votes, edits, executions too), not only rows created or decided.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Lists runs, newest first.
    List(RunFilters),
    /// Shows one run.
    Show {
        /// The run's id.
        id: String,
    },
    /// Cancels a paused run and every row it waits on (with --db, as --as).
    Cancel {
        /// The run's id.
        id: String,
    },
    /// Hands a run whose continue died back as paused, once it has been running for longer
    /// than --stale-after, so that the next continue takes it.
    Recover {
        /// The run's id.
        id: String,
        /// How long a run must have been running, its claim unrenewed, to count as abandoned
        /// (`10m`, `2h`): at least a minute, as a continue under way renews its claim every 20 s;
        /// through a server, at least the server's stale time.
        #[arg(long, value_parser = parse_stale_after, value_name = "DURATION")]
        stale_after: Duration,
    },
}

#[derive(Debug, Args)]
pub struct RunFilters {
    /// Only runs in this status.
    #[arg(long, value_parser = parse_text::<RunStatus>)]
    pub status: Option<RunStatus>,
    #[command(flatten)]
    pub owner: OwnerFilters,
    /// Only runs of this session.
    #[arg(long)]
    pub session: Option<String>,
    /// Lists team members' runs too.
    #[arg(long)]
    pub members: bool,
    #[command(flatten)]
    pub page: PageArgs,
}

/// Whose rows or runs a listing keeps.
#[derive(Debug, Args)]
pub struct OwnerFilters {
    /// Only those of this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only those of this team.
    #[arg(long)]
    pub team: Option<String>,
    /// Only those acting for this user.
    #[arg(long)]
    pub user: Option<String>,
}

/// A page of a listing (keyset paging, newest first).
#[derive(Debug, Args)]
pub struct PageArgs {
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Starts after this cursor: the `next_cursor` of the previous page.
    #[arg(long, value_parser = parse_cursor)]
    pub cursor: Option<PageCursor>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issues a key; its token is shown once.
    Create {
        /// Who the key signs in.
        #[arg(long, value_parser = parse_name)]
        principal: String,
        /// The principal's roles (separated by commas).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// What the key may do (separated by commas): approvals:read, approvals:write,
        /// approvals:delete, runs:write, admin.
        #[arg(long, value_delimiter = ',', required = true, value_parser = parse_text::<Scope>)]
        scopes: Vec<Scope>,
    },
    /// Lists keys, oldest first; secrets are never shown.
    List,
    /// Revokes a key: it signs nobody in from now on.
    Revoke {
        /// The key's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recomputes every row's hash chain; fails with the first broken link.
    Verify {
        /// Also checks the trail against a checkpoint printed earlier by `kern audit
        /// checkpoint` and kept elsewhere: the events up to it must be those it was taken over.
        #[arg(long, value_name = "SEQ:DIGEST")]
        checkpoint: Option<Checkpoint>,
    },
    /// Prints the trail's checkpoint (`SEQ:DIGEST`): a digest of every event so far, to keep
    /// where the database's writers cannot reach and check with `verify --checkpoint`. It
    /// catches what the chains cannot: a row removed whole, or chains rebuilt end to end. It
    /// stops before a gap in the events' numbers that may still fill (one followed by events
    /// less than a minute old).
    Checkpoint,
    /// Writes the trail's events to standard output (an admin's, through a server).
    Export {
        /// `jsonl` (one event a line, each value as the trail holds it: the export to keep) or
        /// `csv`, for a spreadsheet (a value it would take for a formula gets a leading `'`).
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Only events at or after this time: RFC 3339, or a duration ago (`24h`).
        #[arg(long, value_parser = parse_time, value_name = "TIME")]
        since: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub bind: SocketAddr,
    /// Serves without authentication, every request acting as this principal: only on a
    /// loopback address, for local use, and never behind a proxy (not with --public-origin).
    #[arg(long, value_name = "PRINCIPAL", value_parser = parse_name, conflicts_with = "public_origin")]
    pub open: Option<String>,
    /// The origin the inbox is reached at from outside, behind a proxy that passes requests on
    /// with a Host of its own (such as https://kern.example.com): its forms are accepted from
    /// there.
    #[arg(long, value_name = "URL", value_parser = parse_origin)]
    pub public_origin: Option<PublicOrigin>,
    /// Marks the inbox's cookies Secure, so that browsers send them over https alone: for a
    /// server reached over https (an https --public-origin turns it on by itself).
    #[arg(long)]
    pub secure_cookies: bool,
    /// What the server logs to standard error (why a request failed, say): off, error, warn,
    /// info, debug or trace.
    #[arg(long, env = "KERN_LOG", default_value = "info", value_name = "LEVEL")]
    pub log: tracing::level_filters::LevelFilter,
}

/// A cursor given with `--cursor`, checked whatever the target.
fn parse_cursor(text: &str) -> Result<PageCursor, String> {
    text.parse().map_err(|err: kern_core::approval::ParseCursorError| err.to_string())
}

/// A principal's name: what the trail records, so never blank.
fn parse_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("a principal needs a name".to_owned());
    }
    kern_core::limits::check_name("principal", text).map_err(|err| err.to_string())?;
    Ok(text.to_owned())
}

/// A public origin, or why the text is none (a usage error).
fn parse_origin(text: &str) -> Result<PublicOrigin, String> {
    PublicOrigin::parse(text).map_err(|err| err.to_string())
}

/// One of kern's text enums (a status, a scope), by its wire name.
fn parse_text<T: std::str::FromStr<Err = kern_core::ParseEnumError>>(text: &str) -> Result<T, String> {
    text.parse().map_err(|err: kern_core::ParseEnumError| err.to_string())
}

/// A duration: a whole number and a unit, `s`, `m`, `h` or `d` (`30s`, `10m`, `2h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration: use a number and a unit, such as 30s, 10m, 2h or 1d");
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        "d" => number.checked_mul(86_400),
        _ => None,
    };
    seconds.map(Duration::from_secs).ok_or_else(invalid)
}

/// A `--stale-after`: a duration of at least [`MIN_STALE_AFTER`].
fn parse_stale_after(text: &str) -> Result<Duration, String> {
    let stale_after = parse_duration(text)?;
    if stale_after < MIN_STALE_AFTER {
        return Err(format!(
            "`{text}` is too short: a continue under way renews its claim every 20 s, so a run counts as abandoned \
             after 1m at the least (a shorter wait could run its approved calls twice)"
        ));
    }
    Ok(stale_after)
}

/// A time: RFC 3339, or a duration before now.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    parse_instant(text, Direction::Ago)
}

/// A time to come: RFC 3339, or a duration ahead (`30m`).
pub fn parse_deadline(text: &str) -> Result<DateTime<Utc>, String> {
    parse_instant(text, Direction::Ahead)
}

/// Which way from now a duration given for a time reaches.
#[derive(Clone, Copy)]
enum Direction {
    Ago,
    Ahead,
}

/// A time: RFC 3339, or a duration from now, `direction` of it.
fn parse_instant(text: &str, direction: Direction) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        // The years a store keeps, as through a server, which refuses others.
        let at = at.with_timezone(&Utc);
        return if limits::is_time(&at) { Ok(at) } else { Err(format!("`{text}` is past the years kern keeps")) };
    }
    let (way, far) = match direction {
        Direction::Ago => ("ago", "back"),
        Direction::Ahead => ("ahead", "ahead"),
    };
    let duration = parse_duration(text)
        .map_err(|_| format!("`{text}` is not a time: use RFC 3339 (2026-01-31T09:00:00Z) or a duration {way} (2h)"))?;
    let now = Utc::now();
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|duration| match direction {
            Direction::Ago => now.checked_sub_signed(duration),
            Direction::Ahead => now.checked_add_signed(duration),
        })
        .filter(limits::is_time)
        .ok_or_else(|| format!("`{text}` reaches too far {far}"))
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))
}

fn parse_json_object(text: &str) -> Result<Map<String, Value>, String> {
    match parse_json(text)? {
        Value::Object(map) => Ok(map),
        _ => Err("must be a JSON object".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_keys_principal_and_roles_are_not_the_deciders() {
        let cli = Cli::try_parse_from([
            "kern",
            "keys",
            "create",
            "--principal",
            "dave",
            "--roles",
            "ops",
            "--scopes",
            "admin",
        ])
        .unwrap();
        assert_eq!((cli.global.acting_as, cli.global.acting_roles), (None, Vec::<String>::new()));
        let Command::Keys(KeysCommand::Create { principal, roles, .. }) = cli.command else { panic!("keys create") };
        assert_eq!((principal.as_str(), roles), ("dave", vec!["ops".to_owned()]));
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "10", "m", "10x", "-1m", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_rfc_3339_or_a_duration_ago() {
        let at = parse_time("2026-01-31T09:00:00+01:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-01-31T08:00:00+00:00");
        let before = Utc::now();
        let at = parse_time("2h").unwrap();
        let after = Utc::now();
        assert!(before - TimeDelta::hours(2) <= at && at <= after - TimeDelta::hours(2), "{at}");
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("5000000d").is_err(), "before the years a lookup may name");
    }

    #[test]
    fn deadlines_are_rfc_3339_or_a_duration_ahead() {
        assert_eq!(parse_deadline("2026-01-31T09:00:00Z").unwrap().to_rfc3339(), "2026-01-31T09:00:00+00:00");
        let before = Utc::now();
        let at = parse_deadline("30m").unwrap();
        assert!(before + TimeDelta::minutes(30) <= at && at <= Utc::now() + TimeDelta::minutes(30), "{at}");
        assert!(parse_deadline("5000000d").unwrap_err().contains("too far ahead"));
        assert!(parse_deadline("soon").unwrap_err().contains("a duration ahead"));
    }

    #[test]
    fn values_must_be_a_json_object() {
        assert!(parse_json_object(r#"{"reason": "audit"}"#).is_ok());
        assert!(parse_json_object("[1]").is_err());
        assert!(parse_json("{").is_err());
    }
}
