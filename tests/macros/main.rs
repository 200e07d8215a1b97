//! The `#[tool]` and `#[approval]` macros, used through the facade the way users write them:
//! the generated definitions (schemas, names, flags, approval policies), calls through the
//! `Tool` trait with good and bad JSON, and the compile errors (trybuild, `tests/ui/`).

mod approval;
mod call;
mod definition;
mod ui;
