//! The one commit protocol every rule kind goes through: file deletions,
//! hive writes and BCD writes.
//!
//! 1. **plan**: the caller computes every write first (nothing written);
//! 2. **gate**: [`Target::clear`] checks the target may be written and puts
//!    a pending journal reset (an unclean `$LogFile` under the `reset`
//!    policy) in front of the writes;
//! 3. **dry run**: stops here, returning the writes that would be made;
//! 4. **backup**: the caller's copy of the original; when it fails nothing
//!    is written and the pending reset goes back to the gate
//!    ([`Target::unclear`]) for a later change;
//! 5. **journal + execute**: the writes run in their planned order (a
//!    registry change carries its transaction-log entry first);
//! 6. **poison**: a write that fails part-way closes the target: nothing
//!    more is written to it in this run.

use alloc::string::String;

/// Where a change is written: an NTFS volume behind its gate, or the files
/// of an EFI System Partition.
pub trait Target {
    /// The planned writes.
    type Writes;
    /// Checks the target may be written; returns the writes as they will
    /// run (a pending journal reset first).
    fn clear(&mut self, writes: Self::Writes) -> Result<Self::Writes, String>;
    /// Undoes what [`Target::clear`] took when the change stops before its first write.
    fn unclear(&mut self);
    /// Runs the writes in order. On failure the target is closed for the rest of the run.
    fn execute(&mut self, writes: &Self::Writes) -> Result<(), String>;
}

/// What a commit did.
pub enum Committed<W, B> {
    /// A dry run: the writes that would be made.
    DryRun(W),
    /// Written, with what the backup step returned.
    Done(W, B),
}

/// Commits `writes` to `target` in the protocol's order (see the module
/// docs); `backup` runs after the gate and before the first write. An error
/// means nothing of this change was written, or (from `execute`) that the
/// target is now closed.
pub fn commit<T: Target, B>(
    target: &mut T,
    writes: T::Writes,
    dry_run: bool,
    backup: impl FnOnce() -> Result<B, String>,
) -> Result<Committed<T::Writes, B>, String> {
    let writes = target.clear(writes)?;
    if dry_run {
        return Ok(Committed::DryRun(writes));
    }
    let kept = match backup() {
        Ok(k) => k,
        Err(why) => {
            target.unclear();
            return Err(why);
        }
    };
    target.execute(&writes)?;
    Ok(Committed::Done(writes, kept))
}
