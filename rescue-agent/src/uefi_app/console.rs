//! Screen, serial and keyboard. The screen is the graphics one
//! ([`Screen`]) where the firmware has it, else the text console. Every
//! status line goes to the screen and,
//! with the fixed prefix [`SERIAL_PREFIX`], to every serial port, so tests
//! and servers with serial consoles read a clean line protocol. Keys come
//! from the firmware's console input, which includes the serial terminal.

use super::screen::{self, Screen, Verdict};
use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;
use embedded_graphics::pixelcolor::Rgb888;
use rescue_engine::run::ports::KeyPrompt;
use rescue_engine::run::prompt::Key;
use uefi::boot::{self, EventType, OpenProtocolAttributes, OpenProtocolParams, ScopedProtocol, TimerTrigger, Tpl};
use uefi::proto::console::serial::Serial;
use uefi::proto::console::text::{Color, Key as UefiKey, ScanCode};
use uefi::system;

/// Prefix of every line the agent writes to serial.
pub const SERIAL_PREFIX: &str = "RESCUE: ";

pub struct Console {
    serial: Vec<ScopedProtocol<Serial>>,
    /// The key-entry field is on the screen's current line (no newline yet).
    field_open: bool,
    /// The graphics screen; `None` on machines without one (text console).
    screen: Option<Screen>,
}

/// A text-console colour as the graphics screen draws it.
fn rgb(c: Color) -> Rgb888 {
    match c {
        Color::Yellow => screen::YELLOW,
        Color::LightRed => Rgb888::new(0xFF, 0x70, 0x70),
        Color::LightGreen => Rgb888::new(0x70, 0xFF, 0x70),
        Color::LightCyan => Rgb888::new(0x70, 0xE0, 0xFF),
        _ => screen::WHITE,
    }
}

impl Console {
    /// Opens the serial ports non-exclusively (an exclusive open would
    /// disconnect the firmware's own console from them) and clears the screen.
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
        system::with_stdout(|out| {
            let _ = out.set_color(Color::White, Color::Black);
            let _ = out.clear();
        });
        Console { serial, field_open: false, screen: Screen::open() }
    }

    /// Whether the graphics screen is in use (else the text console).
    pub fn graphics(&self) -> bool {
        self.screen.is_some()
    }

    /// The header's two lines (graphics only; the text console has none).
    pub fn header(&mut self, first: &str, second: &str) {
        if let Some(s) = &mut self.screen {
            s.header(first, second);
        }
    }

    /// Shows the verdict: the whole screen in graphics, a banner on the text
    /// console; one `RESULT:` line on serial.
    pub fn verdict(&mut self, v: Verdict, word: &str, reason: Option<&str>, color: Color) {
        match &mut self.screen {
            Some(s) => s.verdict(v, word, reason, ""),
            None => {
                self.screen_line("", Color::White);
                for l in rescue_engine::run::banner::big(word) {
                    self.screen_line(&l, color);
                }
                self.screen_line("", Color::White);
            }
        }
        match reason {
            Some(r) => self.colored(&format!("RESULT: {word}: {r}"), color),
            None => self.colored(&format!("RESULT: {word}"), color),
        }
    }

    fn screen_line(&mut self, text: &str, color: Color) {
        if let Some(s) = &mut self.screen {
            s.line(text, rgb(color));
            return;
        }
        let newline_first = core::mem::take(&mut self.field_open);
        system::with_stdout(|out| {
            use core::fmt::Write;
            if newline_first {
                let _ = write!(out, "\r\n");
            }
            let _ = out.set_color(color, Color::Black);
            let _ = write!(out, "{text}\r\n");
            let _ = out.set_color(Color::White, Color::Black);
        });
    }

    fn serial(&mut self, text: &str) {
        for s in &mut self.serial {
            let _ = s.write(SERIAL_PREFIX.as_bytes());
            let _ = s.write(text.as_bytes());
            let _ = s.write(b"\r\n");
        }
    }

    /// A status line on screen and serial.
    pub fn line(&mut self, text: &str) {
        self.screen_line(text, Color::White);
        self.serial(text);
    }

    /// A line in a colour (warnings, the verdict).
    pub fn colored(&mut self, text: &str, color: Color) {
        self.screen_line(text, color);
        self.serial(text);
    }

    /// Shows `prompt` and waits for one key press.
    pub fn wait_key(&mut self, prompt: &str) {
        self.line(prompt);
        let _ = self.read_key(None);
    }

    /// Waits for a key, or `None` when `timeout` passes first (a zero
    /// timeout only takes a key already waiting).
    pub fn read_key(&mut self, timeout: Option<Duration>) -> Option<Key> {
        if timeout == Some(Duration::ZERO) {
            return system::with_stdin(|input| input.read_key().ok().flatten()).map(map_key);
        }
        let key_event = system::with_stdin(|input| input.wait_for_key_event().ok())?;
        let timer = match timeout {
            Some(t) => {
                // SAFETY: a plain timer event without a notification function.
                unsafe { boot::create_event(EventType::TIMER, Tpl::APPLICATION, None, None) }.ok().inspect(|ev| {
                    let _ = boot::set_timer(ev, TimerTrigger::Relative(t));
                })
            }
            None => None,
        };
        loop {
            let mut events: Vec<uefi::Event> = Vec::new();
            // SAFETY: the events stay alive while we wait on copies of them.
            events.push(unsafe { key_event.unsafe_clone() });
            if let Some(t) = &timer {
                // SAFETY: as above; the timer outlives the wait.
                events.push(unsafe { t.unsafe_clone() });
            }
            let which = boot::wait_for_event(&events).unwrap_or(0);
            if which == 1 {
                if let Some(t) = timer {
                    let _ = boot::close_event(t);
                }
                return None;
            }
            let Some(key) = system::with_stdin(|input| input.read_key().ok().flatten()) else { continue };
            let mapped = map_key(key);
            if let Some(t) = timer {
                let _ = boot::close_event(t);
            }
            return Some(mapped);
        }
    }
}

fn map_key(key: UefiKey) -> Key {
    match key {
        UefiKey::Printable(c) => match char::from(c) {
            '\r' | '\n' => Key::Enter,
            '\u{8}' => Key::Backspace,
            '\u{1b}' => Key::Escape,
            c => Key::Char(c),
        },
        UefiKey::Special(ScanCode::ESCAPE) => Key::Escape,
        UefiKey::Special(_) => Key::Other,
    }
}

/// Milliseconds from the CPU's free-running counter (x86-64: the time-stamp
/// counter; ARM64: the generic timer's virtual count), calibrated against
/// the firmware's stall.
#[derive(Clone, Copy)]
pub struct Clock {
    ticks_per_ms: u64,
    start: u64,
}

#[cfg(target_arch = "x86_64")]
fn counter() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86-64.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

#[cfg(target_arch = "aarch64")]
fn counter() -> u64 {
    let v: u64;
    // SAFETY: CNTVCT_EL0 is readable at EL1 and EL2 (where UEFI runs); the
    // read touches no memory.
    unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

impl Clock {
    pub fn calibrate() -> Clock {
        let a = counter();
        boot::stall(Duration::from_millis(20));
        let b = counter();
        Clock { ticks_per_ms: (b.saturating_sub(a) / 20).max(1), start: a }
    }
    /// The raw counter now (differs between PCs and boots).
    pub fn counter(&self) -> u64 {
        counter()
    }
    pub fn ms(&self) -> u64 {
        counter().saturating_sub(self.start) / self.ticks_per_ms
    }
}

impl rescue_engine::run::ports::Console for Console {
    fn line(&mut self, text: &str) {
        Console::line(self, text)
    }
    fn field(&mut self, text: &str) {
        // The digits exist only as pixels on the graphics screen; on the text
        // console (mirrored to serial by the firmware) and in the serial log
        // they are shown as `#`.
        let masked: alloc::string::String = text.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
        match &mut self.screen {
            Some(s) => s.field(text),
            None => {
                system::with_stdout(|out| {
                    use core::fmt::Write;
                    let _ = out.set_color(Color::Yellow, Color::Black);
                    let _ = write!(out, "\r{masked}");
                    let _ = out.set_color(Color::White, Color::Black);
                });
                self.field_open = true;
            }
        }
        self.serial(&masked);
    }
    fn key_prompt(&mut self, p: &KeyPrompt<'_>) {
        for l in p.lines() {
            self.line(&l);
        }
        if let Some(s) = &mut self.screen {
            s.key_prompt(p.volume, p.key_ids, p.description);
        }
    }
    fn progress(&mut self, text: &str) {
        self.line(text);
        if let Some(s) = &mut self.screen {
            s.progress(text);
        }
    }
    fn key(&mut self, timeout_s: Option<u32>) -> Option<Key> {
        self.read_key(timeout_s.map(|s| Duration::from_secs(s as u64)))
    }
}
