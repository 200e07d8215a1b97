//! Teams (in progress).

/// A team.
#[derive(Debug)]
pub struct Team;
