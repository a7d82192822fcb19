//! The reaction picker: a row of common emoji, or any typed in, toggled
//! on the selected message.

use super::*;

/// The picker's row. Each is one code point drawn two columns wide
/// everywhere (no variation selectors, which terminals disagree on).
pub const COMMON_EMOJI: &[&str] = &["👍", "👎", "😂", "🎉", "😮", "😢", "👀", "🔥"];

/// The server's limit on a reaction, in bytes.
const MAX_EMOJI_BYTES: usize = 32;

/// The picker over message `message_id`.
#[derive(Debug, Clone)]
pub struct ReactPicker {
    pub message_id: u64,
    /// Index into [`COMMON_EMOJI`]: what Enter picks when nothing is typed.
    pub selected: usize,
    /// Free input: any emoji (or short text) instead of the row's.
    pub input: TextArea<'static>,
    /// Our reaction on the message now, if any (picking it removes it).
    pub mine: Option<String>,
    pub error: Option<String>,
}

impl ReactPicker {
    fn new(message_id: u64, mine: Option<String>) -> Self {
        let selected = mine
            .as_deref()
            .and_then(|m| COMMON_EMOJI.iter().position(|e| *e == m))
            .unwrap_or(0);
        let mut input = TextArea::default();
        input.set_placeholder_text("or type one");
        Self {
            message_id,
            selected,
            input,
            mine,
            error: None,
        }
    }

    pub fn move_selection(&mut self, delta: isize) {
        let n = COMMON_EMOJI.len();
        let step = delta.rem_euclid(isize::try_from(n).unwrap_or(1));
        self.selected = (self.selected + usize::try_from(step).unwrap_or(0)) % n;
    }

    /// What Enter would toggle: the typed text, else the selected emoji.
    pub fn choice(&self) -> String {
        let typed = self.input.lines().concat();
        let typed = typed.trim();
        if typed.is_empty() {
            COMMON_EMOJI[self.selected.min(COMMON_EMOJI.len() - 1)].to_string()
        } else {
            typed.to_string()
        }
    }
}

/// Why `emoji` cannot be a reaction (the server's rule: 1–32 bytes, no
/// control characters or spaces), if it cannot.
fn invalid_reaction(emoji: &str) -> Option<String> {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Some(format!("A reaction is 1–{MAX_EMOJI_BYTES} bytes."));
    }
    if emoji.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some("A reaction has no spaces or control characters.".to_string());
    }
    None
}

impl App {
    /// `+` on a message: opens the picker for it.
    pub(super) fn open_react_picker(&mut self) {
        let me = self.me().to_string();
        let Some(entry) = self.cursor_entry() else {
            self.notify("No message selected.");
            return;
        };
        let Some(id) = entry.id else {
            self.notify_error("This message is not sent yet: react once it is.");
            return;
        };
        let mine = entry
            .reactions
            .iter()
            .find(|r| r.users.iter().any(|u| is_me(u, &me)))
            .map(|r| r.emoji.clone());
        self.overlay = Some(Overlay::React(ReactPicker::new(id, mine)));
    }

    /// Enter in the picker: toggles the choice (the change shows when the
    /// cluster reports it).
    pub(super) fn submit_reaction(&mut self) -> Vec<Effect> {
        let Some(Overlay::React(picker)) = &mut self.overlay else {
            return Vec::new();
        };
        let emoji = picker.choice();
        if let Some(why) = invalid_reaction(&emoji) {
            picker.error = Some(why);
            return Vec::new();
        }
        let message_id = picker.message_id;
        self.overlay = None;
        let request_id = self.new_request_id("r");
        vec![Effect::React {
            message_id,
            request_id,
            emoji,
        }]
    }
}
