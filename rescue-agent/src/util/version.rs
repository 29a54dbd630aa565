//! The agent's version, readable from a built binary.

/// The engine and agent version (the crate version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Marker placed before the version string in the agent binary, so that
/// `rescue inspect` can read the version of any agent on a stick.
pub const MARKER: &[u8] = b"RESCUE-AGENT-VERSION:";
