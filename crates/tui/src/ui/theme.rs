//! Colour themes. The screen is drawn with the dark theme's colours, each
//! standing for a role (cyan: accent, dark gray: secondary text, ...);
//! another theme maps those roles to its own colours on the drawn frame,
//! as `NO_COLOR` strips them, so no part of the UI needs to know.

use ratatui::buffer::Buffer;
use ratatui::style::Color;

/// The colour of each role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Focused borders, keys, your own name (drawn cyan).
    pub accent: Color,
    /// Secondary text: times, hints, unfocused borders (dark gray).
    pub dim: Color,
    /// Counts, waiting messages, warnings (yellow).
    pub warn: Color,
    /// Other people's names (magenta).
    pub others: Color,
    /// Descriptions in the hint bar and help (gray).
    pub text: Color,
    /// Online, delivered (green).
    pub ok: Color,
    /// Errors, failed messages (red).
    pub error: Color,
}

impl Theme {
    /// For dark terminal backgrounds: the colours the UI is drawn with.
    pub const DARK: Theme = Theme {
        accent: Color::Cyan,
        dim: Color::DarkGray,
        warn: Color::Yellow,
        others: Color::Magenta,
        text: Color::Gray,
        ok: Color::Green,
        error: Color::Red,
    };

    /// For light backgrounds: no yellow or light gray on white.
    pub const LIGHT: Theme = Theme {
        accent: Color::Blue,
        dim: Color::DarkGray,
        warn: Color::Indexed(130),
        others: Color::Magenta,
        text: Color::Reset,
        ok: Color::Green,
        error: Color::Red,
    };

    /// The theme called `name` (`dark`, `light`).
    pub fn named(name: &str) -> Option<Theme> {
        match name {
            "dark" => Some(Self::DARK),
            "light" => Some(Self::LIGHT),
            _ => None,
        }
    }

    fn map(&self, color: Color) -> Color {
        match color {
            Color::Cyan => self.accent,
            Color::DarkGray => self.dim,
            Color::Yellow => self.warn,
            Color::Magenta => self.others,
            Color::Gray => self.text,
            Color::Green => self.ok,
            Color::Red => self.error,
            other => other,
        }
    }

    /// Recolours a frame drawn with [`Theme::DARK`]'s colours.
    pub fn apply(&self, buffer: &mut Buffer) {
        if *self == Self::DARK {
            return;
        }
        for cell in buffer.content.iter_mut() {
            cell.set_fg(self.map(cell.fg));
            cell.set_bg(self.map(cell.bg));
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Self::DARK
    }
}
