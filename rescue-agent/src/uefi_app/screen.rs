//! The technician's screen, drawn through the firmware's Graphics Output
//! Protocol: a header (product, version, profile, machine), the log of what
//! the agent does, a progress line, the BitLocker prompt with the Key ID in
//! large type, and a verdict that fills the screen (readable from the aisle).
//!
//! Nothing drawn here goes to the text console, so nothing typed here is
//! mirrored to the serial port: the recovery key's digits exist only as
//! pixels. The whole screen is kept in memory and sent to the firmware in
//! one transfer per change.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::convert::Infallible;
use embedded_graphics::mono_font::ascii::FONT_10X20;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use uefi::boot::{self, OpenProtocolAttributes, OpenProtocolParams, ScopedProtocol};
use uefi::proto::console::gop::{BltOp, BltPixel, BltRegion, GraphicsOutput};

/// Width and height of one character of the font at scale 1.
const CHAR_W: usize = 10;
const CHAR_H: usize = 20;
/// Height of the header band.
const HEADER_H: usize = 2 * (2 * CHAR_H) + 24;
/// Height of the progress line at the bottom.
const STATUS_H: usize = CHAR_H + 16;

/// Colours.
pub const WHITE: Rgb888 = Rgb888::new(0xF0, 0xF0, 0xF0);
pub const YELLOW: Rgb888 = Rgb888::new(0xFF, 0xD7, 0x40);
const BACKGROUND: Rgb888 = Rgb888::new(0x10, 0x14, 0x1C);
const HEADER_BG: Rgb888 = Rgb888::new(0x1E, 0x3A, 0x6E);
const STATUS_BG: Rgb888 = Rgb888::new(0x30, 0x34, 0x3C);
const PANEL_BG: Rgb888 = Rgb888::new(0x22, 0x2A, 0x38);
const GREEN: Rgb888 = Rgb888::new(0x10, 0x7C, 0x10);
const RED: Rgb888 = Rgb888::new(0xB0, 0x10, 0x10);
const NEUTRAL: Rgb888 = Rgb888::new(0x3A, 0x48, 0x5A);
const AMBER: Rgb888 = Rgb888::new(0x9A, 0x50, 0x00);

/// What the prompt panel shows.
struct Prompt {
    volume: String,
    key_ids: Vec<String>,
    description: Option<String>,
    field: String,
    /// The latest line said while the prompt is open (a wrong block, a wrong key).
    message: String,
}

/// The verdict's look.
#[derive(Clone, Copy)]
pub enum Verdict {
    /// FIXED, on green.
    Fixed,
    /// NOTHING TO DO, on a neutral colour.
    NothingToDo,
    /// FAILED, on red.
    Failed,
    /// SAFE MODE SET, on amber: the PC needs the steps shown below it.
    SafeModeSet,
}

/// An in-memory picture of the screen with a scale factor for drawing text.
struct Canvas<'a> {
    px: &'a mut [BltPixel],
    w: usize,
    h: usize,
    x0: usize,
    y0: usize,
    scale: usize,
}

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new((self.w / self.scale) as u32, (self.h / self.scale) as u32)
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(&mut self, pixels: I) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            let (Ok(px), Ok(py)) = (usize::try_from(p.x), usize::try_from(p.y)) else { continue };
            let (x, y) = (self.x0 + px * self.scale, self.y0 + py * self.scale);
            for dy in 0..self.scale {
                let row = y + dy;
                if row >= self.h {
                    break;
                }
                for dx in 0..self.scale {
                    if x + dx < self.w {
                        self.px[row * self.w + x + dx] = BltPixel::new(c.r(), c.g(), c.b());
                    }
                }
            }
        }
        Ok(())
    }
}

/// The graphics screen.
pub struct Screen {
    gop: ScopedProtocol<GraphicsOutput>,
    w: usize,
    h: usize,
    px: Vec<BltPixel>,
    header: [String; 2],
    log: VecDeque<(String, Rgb888)>,
    status: String,
    prompt: Option<Prompt>,
    /// A line came while the prompt was open and no key field followed yet:
    /// the next line closes the prompt (the session has moved on).
    closing: bool,
    /// Once the verdict is shown it stays; later lines become its footer.
    verdict: Option<(Verdict, String, Option<String>)>,
}

impl Screen {
    /// The screen, when the firmware has a graphics output; `None` on
    /// serial-only machines (the text console is used then).
    pub fn open() -> Option<Screen> {
        let handle = boot::get_handle_for_protocol::<GraphicsOutput>().ok()?;
        let params = OpenProtocolParams { handle, agent: boot::image_handle(), controller: None };
        // SAFETY: GetProtocol leaves the firmware's console connected; the
        // protocol stays valid while boot services run, which is our whole life.
        let gop = unsafe { boot::open_protocol::<GraphicsOutput>(params, OpenProtocolAttributes::GetProtocol) }.ok()?;
        let (w, h) = gop.current_mode_info().resolution();
        if w < 640 || h < 400 {
            return None;
        }
        let mut s = Screen {
            gop,
            w,
            h,
            px: vec![BltPixel::new(0, 0, 0); w * h],
            header: [String::from("rescue-agent"), String::new()],
            log: VecDeque::new(),
            status: String::new(),
            prompt: None,
            closing: false,
            verdict: None,
        };
        s.redraw();
        Some(s)
    }

    /// Sets the header's two lines (product, version, profile; the machine).
    pub fn header(&mut self, first: &str, second: &str) {
        self.header = [String::from(first), String::from(second)];
        self.redraw();
    }

    /// Adds a line to the log (shown in the prompt panel while it is open,
    /// or under the verdict once it is shown).
    pub fn line(&mut self, text: &str, color: Rgb888) {
        if let Some((v, word, reason)) = self.verdict.take() {
            self.verdict(v, &word, reason.as_deref(), text);
            return;
        }
        if let Some(p) = &mut self.prompt {
            if self.closing {
                self.prompt = None;
                self.closing = false;
            } else {
                p.message = String::from(text);
                self.closing = true;
            }
        }
        self.log.push_back((String::from(text), color));
        while self.log.len() > 200 {
            self.log.pop_front();
        }
        self.redraw();
    }

    /// Shows `text` as the progress line.
    pub fn progress(&mut self, text: &str) {
        self.status = String::from(text);
        self.redraw();
    }

    /// Opens the BitLocker prompt panel.
    pub fn key_prompt(&mut self, volume: &str, key_ids: &[String], description: Option<&str>) {
        self.prompt = Some(Prompt {
            volume: String::from(volume),
            key_ids: key_ids.to_vec(),
            description: description.map(String::from),
            field: String::new(),
            message: String::new(),
        });
        self.closing = false;
        self.status = String::from("Waiting for the recovery key");
        self.redraw();
    }

    /// Redraws the prompt's key field (the digits as typed: pixels only);
    /// outside the BitLocker prompt (the site PIN) it is the progress line.
    pub fn field(&mut self, text: &str) {
        match &mut self.prompt {
            Some(p) => p.field = String::from(text),
            None => self.status = String::from(text),
        }
        self.closing = false;
        self.redraw();
    }

    /// Fills the screen with the verdict and its reason.
    pub fn verdict(&mut self, v: Verdict, word: &str, reason: Option<&str>, footer: &str) {
        let bg = match v {
            Verdict::Fixed => GREEN,
            Verdict::NothingToDo => NEUTRAL,
            Verdict::Failed => RED,
            Verdict::SafeModeSet => AMBER,
        };
        self.fill(0, 0, self.w, self.h, bg);
        // As large as fits: 90% of the width, 40% of the height.
        let scale = (self.w * 9 / 10 / (word.len().max(1) * CHAR_W)).min(self.h * 4 / 10 / CHAR_H).max(2);
        let y = self.h / 6;
        self.text_centered(word, y, scale, WHITE);
        let mut y = y + scale * CHAR_H + 3 * CHAR_H;
        if let Some(r) = reason {
            for l in wrap(r, self.w / (2 * CHAR_W) - 4).into_iter().take(6) {
                self.text_centered(&l, y, 2, WHITE);
                y += 2 * CHAR_H + 6;
            }
        }
        self.text_centered(footer, self.h - 2 * CHAR_H, 1, WHITE);
        self.flush();
        self.verdict = Some((v, String::from(word), reason.map(String::from)));
    }

    fn redraw(&mut self) {
        let (w, h) = (self.w, self.h);
        self.fill(0, 0, w, h, BACKGROUND);
        self.fill(0, 0, w, HEADER_H, HEADER_BG);
        let header = self.header.clone();
        self.text(&header[0], 16, 8, 2, WHITE);
        self.text(&header[1], 16, 8 + 2 * CHAR_H + 8, 2, WHITE);
        let body_top = HEADER_H + 8;
        let body_bottom = h - STATUS_H - 8;
        match self.prompt.take() {
            Some(p) => {
                self.draw_prompt(&p, body_top, body_bottom);
                self.prompt = Some(p);
            }
            None => {
                let cols = w / CHAR_W - 2;
                let rows = (body_bottom - body_top) / CHAR_H;
                let mut lines: Vec<(String, Rgb888)> = Vec::new();
                for (l, c) in self.log.iter() {
                    for part in wrap(l, cols) {
                        lines.push((part, *c));
                    }
                }
                let start = lines.len().saturating_sub(rows);
                for (i, (l, c)) in lines[start..].iter().enumerate() {
                    self.text(l, CHAR_W, body_top + i * CHAR_H, 1, *c);
                }
            }
        }
        self.fill(0, h - STATUS_H, w, STATUS_H, STATUS_BG);
        let status = self.status.clone();
        self.text(&status, CHAR_W, h - STATUS_H + 8, 1, YELLOW);
        self.flush();
    }

    fn draw_prompt(&mut self, p: &Prompt, top: usize, bottom: usize) {
        let w = self.w;
        self.fill(CHAR_W, top, w - 2 * CHAR_W, bottom - top, PANEL_BG);
        let mut y = top + 12;
        self.text("BitLocker recovery key needed", 2 * CHAR_W, y, 2, YELLOW);
        y += 2 * CHAR_H + 8;
        self.text(&p.volume, 2 * CHAR_W, y, 1, WHITE);
        y += CHAR_H + 4;
        if let Some(d) = &p.description {
            self.text(d, 2 * CHAR_W, y, 1, WHITE);
            y += CHAR_H + 4;
        }
        y += 12;
        for id in &p.key_ids {
            // The Key ID as Windows' recovery screen shows it: large.
            self.text("Key ID:", 2 * CHAR_W, y + CHAR_H, 2, WHITE);
            self.text(id.get(..8).unwrap_or(id), 2 * CHAR_W + 9 * 2 * CHAR_W, y, 4, YELLOW);
            y += 4 * CHAR_H + 4;
            self.text(id, 2 * CHAR_W, y, 1, WHITE);
            y += CHAR_H + 16;
        }
        self.text("Type the 48-digit recovery key, then Enter. Esc skips this volume.", 2 * CHAR_W, y, 1, WHITE);
        y += CHAR_H + 12;
        let field = p.field.clone();
        let scale = if field.len() * 3 * CHAR_W + 4 * CHAR_W < w { 3 } else { 2 };
        self.text(&field, 2 * CHAR_W, y, scale, WHITE);
        y += scale * CHAR_H + 12;
        let message = p.message.clone();
        self.text(&message, 2 * CHAR_W, y, 1, YELLOW);
    }

    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb888) {
        let px = BltPixel::new(c.r(), c.g(), c.b());
        for row in y..(y + h).min(self.h) {
            let start = row * self.w + x.min(self.w);
            let end = row * self.w + (x + w).min(self.w);
            self.px[start..end].fill(px);
        }
    }

    fn text(&mut self, s: &str, x: usize, y: usize, scale: usize, c: Rgb888) {
        let mut canvas = Canvas { px: &mut self.px, w: self.w, h: self.h, x0: x, y0: y, scale };
        let ascii: String =
            s.chars().map(|ch| if ch.is_ascii() && !ch.is_ascii_control() { ch } else { '?' }).collect();
        let _ = Text::with_baseline(&ascii, Point::zero(), MonoTextStyle::new(&FONT_10X20, c), Baseline::Top)
            .draw(&mut canvas);
    }

    fn text_centered(&mut self, s: &str, y: usize, scale: usize, c: Rgb888) {
        let width = s.chars().count() * CHAR_W * scale;
        self.text(s, self.w.saturating_sub(width) / 2, y, scale, c);
    }

    fn flush(&mut self) {
        let _ = self.gop.blt(BltOp::BufferToVideo {
            buffer: &self.px,
            src: BltRegion::Full,
            dest: (0, 0),
            dims: (self.w, self.h),
        });
    }
}

/// `s` cut into lines of at most `cols` characters, at spaces where it can.
fn wrap(s: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(8);
    let mut out = Vec::new();
    let mut line = String::new();
    for word in s.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > cols {
            out.push(core::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > cols {
            let rest: String = line.chars().skip(cols).collect();
            line = line.chars().take(cols).collect();
            out.push(core::mem::replace(&mut line, rest));
        }
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}
