//! The engine shared by agents and teams.
//!
//! Modules point one way: [`step`] (the values a step passes around) and [`toolbox`] are
//! leaves; the [`gate`] decides paused calls; the [`runner`] is the loop; [`delegation`] plugs a
//! team's members into the loop and the cycle; the [`cycle`] starts, continues and recovers runs
//! and stores each step, under the [`hold`] it keeps on a run it resumes; [`settings`] builds
//! runners. `Agent` and `Team` are thin handles over a
//! [`Cycle`].

mod cycle;
mod delegation;
mod gate;
mod hold;
mod runner;
mod settings;
mod step;
mod toolbox;

pub(crate) use cycle::Cycle;
pub(crate) use delegation::{Member, Roster};
pub(crate) use runner::Runner;
pub use settings::{DEFAULT_MAX_CALLS_PER_TURN, DEFAULT_MAX_ROUNDS};
pub(crate) use settings::{Settings, settings_setters};
pub(crate) use step::RunRequest;
