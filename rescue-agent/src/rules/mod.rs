//! The profile and what its rules do to one volume: delete files
//! ([`delete`]), set registry values ([`registry`]).

pub mod delete;
pub mod profile;
pub mod registry;
