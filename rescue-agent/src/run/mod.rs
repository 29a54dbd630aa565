//! One run over a machine: every disk, every volume opened (BitLocker
//! unlocked by site key, given credentials or the prompt), the profile's
//! rules on each Windows volume, Safe Mode, the verdict and the report.
//! The agent and `rescue apply` both call [`session::run`]; they differ
//! only in the [`ports`] they supply.

pub mod banner;
pub mod ports;
pub mod prompt;
pub mod report;
pub mod session;
pub mod sitekeys;
pub mod unlock;
pub mod volumes;
