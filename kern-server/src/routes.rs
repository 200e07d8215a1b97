//! The route handlers, one module a resource.

pub mod approvals;
pub mod audit;
pub mod config;
pub mod events;
pub mod keys;
pub mod ops;
mod paging;
pub mod runs;
