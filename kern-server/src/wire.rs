//! What goes over the wire: the reference's JSON shapes and kern's additions.

pub mod approval;
pub mod events;
pub mod form;
pub mod key;
pub mod requirement;
pub mod run;
