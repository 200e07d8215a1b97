//! The `kern` binary, run as a user runs it, against SQLite and (with
//! `KERN_TEST_POSTGRES_URL`) Postgres: every subcommand, every exit code, and `--json` read
//! back. The data comes from agents paused on approval tools, as an application leaves it.

mod approvals;
mod audit;
mod harness;
mod keys;
mod ops;
mod runs;
mod seed;
mod server;
