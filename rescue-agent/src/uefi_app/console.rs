//! Screen and serial output. Every status line goes to the screen and, with
//! the fixed prefix [`SERIAL_PREFIX`], to every serial port, so tests and
//! servers with serial consoles read a clean line protocol.

use alloc::vec::Vec;
use uefi::boot::{self, OpenProtocolAttributes, OpenProtocolParams, ScopedProtocol};
use uefi::proto::console::serial::Serial;
use uefi::system;

/// Prefix of every line the agent writes to serial.
pub const SERIAL_PREFIX: &str = "RESCUE: ";

pub struct Console {
    serial: Vec<ScopedProtocol<Serial>>,
}

impl Console {
    /// Opens the serial ports non-exclusively (an exclusive open would
    /// disconnect the firmware's own console from them).
    pub fn open() -> Console {
        let mut serial = Vec::new();
        if let Ok(handles) = boot::find_handles::<Serial>() {
            for h in handles {
                let params = OpenProtocolParams { handle: h, agent: boot::image_handle(), controller: None };
                // SAFETY: GetProtocol does not take ownership; the firmware keeps
                // the handle alive while boot services run, which is all our life.
                if let Ok(p) = unsafe { boot::open_protocol::<Serial>(params, OpenProtocolAttributes::GetProtocol) } {
                    serial.push(p);
                }
            }
        }
        Console { serial }
    }

    /// Prints a status line on screen and on serial.
    pub fn line(&mut self, text: &str) {
        system::with_stdout(|out| {
            use core::fmt::Write;
            let _ = write!(out, "{text}\r\n");
        });
        for s in &mut self.serial {
            let _ = s.write(SERIAL_PREFIX.as_bytes());
            let _ = s.write(text.as_bytes());
            let _ = s.write(b"\r\n");
        }
    }

    /// Shows `prompt` and waits for one key press.
    pub fn wait_key(&mut self, prompt: &str) {
        self.line(prompt);
        system::with_stdin(|input| {
            let _ = input.reset(false);
            if let Ok(ev) = input.wait_for_key_event() {
                let _ = boot::wait_for_event(&[ev]);
            }
            let _ = input.read_key();
        });
    }
}
