//! Every external tool a test runs has a time limit: a hung ntfs-3g,
//! dislocker or wine fails its test with the command named, instead of
//! holding the whole run until CI's watchdog.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest any one tool may run (the slowest, a BitLocker encryption
/// of a test disk or wine's first start, take about a minute on 2 cores).
pub const TOOL_LIMIT: Duration = Duration::from_secs(600);

/// Runs `cmd` to the end like [`Command::output`], but kills it and panics
/// naming it when it runs longer than `limit`. Stdin is closed.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran longer than {limit:?} and was stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// [`output_within`] with [`TOOL_LIMIT`].
pub fn output(cmd: &mut Command) -> std::io::Result<Output> {
    output_within(cmd, TOOL_LIMIT)
}
