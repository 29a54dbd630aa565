//! The test kit's `bitlocker-encrypt` (`testkit/`, never shipped), built or
//! found fresh by cargo once per test binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of `bitlocker-encrypt`.
pub fn bitlocker_encrypt() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let st = Command::new(env!("CARGO"))
                .current_dir(&root)
                .args(["build", "-q", "--locked", "-p", "rescue-testkit"])
                .status()
                .expect("cargo");
            assert!(st.success(), "building the test kit failed");
            root.join("target/debug/bitlocker-encrypt")
        })
        .clone()
}
