//! Key bindings: ONE table ([`BINDINGS`]) feeds the key dispatch, the help
//! overlay and the hint bar, so they can never disagree. The config file
//! may give an action other keys: the [`Keymap`] in force is that table
//! with those rows' keys replaced, and it alone feeds all three.
//!
//! To add a binding: add an [`Action`] variant if needed (and its name in
//! [`Action::ALL`]), add a row to [`BINDINGS`] in the right [`Context`],
//! and handle the action in `App::perform` (`app.rs`). Help and hints pick
//! it up automatically.

use std::borrow::Cow;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Where a binding applies. The app lists the active contexts, most
/// specific first; the first matching binding wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere, even while typing.
    Global,
    /// The chat screen when not typing.
    Navigation,
    SignIn,
    Sidebar,
    Messages,
    Compose,
    /// The compose box while it edits one of our messages (over `Compose`).
    Editing,
    AccountsSearch,
    AccountsList,
    /// A yes/no question.
    Confirm,
    /// A one-line question (group name, password).
    Prompt,
    /// The reaction picker.
    React,
    /// The search overlay's query field.
    SearchQuery,
    /// The search overlay's results.
    SearchResults,
    Help,
}

impl Context {
    /// The heading of this context in the help overlay.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Navigation => "Chat (not typing)",
            Context::SignIn => "Sign in",
            Context::Sidebar => "Conversations",
            Context::Messages => "Messages",
            Context::Compose => "Compose",
            Context::Editing => "Compose: editing a message",
            Context::AccountsSearch => "Accounts: search",
            Context::AccountsList => "Accounts: list",
            Context::Confirm => "Confirmation",
            Context::Prompt => "Question",
            Context::React => "Reaction picker",
            Context::SearchQuery => "Search: query",
            Context::SearchResults => "Search: results",
            Context::Help => "Help",
        }
    }
}

/// What a key does; interpreted by `App::perform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    /// Stop the process for the shell (Ctrl-Z); `fg` resumes it.
    Suspend,
    /// Mouse capture on/off: off, the terminal selects text.
    ToggleMouse,
    ToggleHelp,
    ToggleCluster,
    FocusNext,
    FocusPrev,
    OpenAccounts,
    Logout,
    DeleteAccount,
    Up,
    Down,
    /// Open the conversation under the sidebar's cursor.
    Open,
    /// Open the next conversation with unread messages.
    NextUnread,
    /// On an empty compose box: edit your last sent message here;
    /// otherwise the cursor goes up a line.
    RecallLast,
    /// Edit the selected message (your own).
    Edit,
    /// Answer the selected message.
    Reply,
    /// Open the reaction picker on the selected message.
    React,
    /// Search the open conversation's messages.
    Find,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Leave the current field or overlay.
    Back,
    FocusCompose,
    Send,
    Newline,
    ToggleMark,
    DeleteMessages,
    Retry,
    SignIn,
    CreateAccount,
    Search,
    NextPage,
    PrevPage,
    StartDirect,
    NewGroup,
    AddMember,
    EditPattern,
    Confirm,
    Cancel,
    Submit,
}

impl Action {
    /// Every action with its name in the config file's `[keys]` table.
    pub const ALL: &'static [(Action, &'static str)] = &[
        (Action::Quit, "quit"),
        (Action::Suspend, "suspend"),
        (Action::ToggleMouse, "toggle_mouse"),
        (Action::ToggleHelp, "help"),
        (Action::ToggleCluster, "cluster"),
        (Action::FocusNext, "next_pane"),
        (Action::FocusPrev, "previous_pane"),
        (Action::OpenAccounts, "accounts"),
        (Action::Logout, "log_out"),
        (Action::DeleteAccount, "delete_account"),
        (Action::Up, "up"),
        (Action::Down, "down"),
        (Action::Open, "open"),
        (Action::NextUnread, "next_unread"),
        (Action::RecallLast, "recall_last"),
        (Action::Edit, "edit"),
        (Action::Reply, "reply"),
        (Action::React, "react"),
        (Action::Find, "find"),
        (Action::PageUp, "page_up"),
        (Action::PageDown, "page_down"),
        (Action::Top, "oldest"),
        (Action::Bottom, "newest"),
        (Action::Back, "back"),
        (Action::FocusCompose, "write"),
        (Action::Send, "send"),
        (Action::Newline, "new_line"),
        (Action::ToggleMark, "mark"),
        (Action::DeleteMessages, "delete"),
        (Action::Retry, "retry"),
        (Action::SignIn, "sign_in"),
        (Action::CreateAccount, "create_account"),
        (Action::Search, "search"),
        (Action::NextPage, "next_page"),
        (Action::PrevPage, "previous_page"),
        (Action::StartDirect, "chat_with"),
        (Action::NewGroup, "new_group"),
        (Action::AddMember, "add_member"),
        (Action::EditPattern, "edit_pattern"),
        (Action::Confirm, "yes"),
        (Action::Cancel, "no"),
        (Action::Submit, "ok"),
    ];

    /// The action's name in the config file.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("?", |(_, name)| name)
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(action, _)| *action)
    }
}

/// One key chord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chord {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

const fn plain(code: KeyCode) -> Chord {
    Chord {
        code,
        modifiers: KeyModifiers::NONE,
    }
}

const fn ch(c: char) -> Chord {
    plain(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Chord {
    Chord {
        code: KeyCode::Char(c),
        modifiers: KeyModifiers::CONTROL,
    }
}

const fn alt(code: KeyCode) -> Chord {
    Chord {
        code,
        modifiers: KeyModifiers::ALT,
    }
}

/// A row of the bindings table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub keys: Cow<'static, [Chord]>,
    pub context: Context,
    pub action: Action,
    pub description: &'static str,
}

const fn bind(
    keys: &'static [Chord],
    context: Context,
    action: Action,
    description: &'static str,
) -> Binding {
    Binding {
        keys: Cow::Borrowed(keys),
        context,
        action,
        description,
    }
}

use Action as A;
use Context as C;
use KeyCode as K;

/// Every key binding of the application, by context. Within a context the
/// order is the hint bar's order: most useful first.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    // Sign in.
    bind(&[plain(K::Enter)], C::SignIn, A::SignIn, "sign in"),
    bind(&[ctrl('n')], C::SignIn, A::CreateAccount, "create account"),
    bind(&[plain(K::Tab), plain(K::Down), plain(K::Up), plain(K::BackTab)], C::SignIn, A::FocusNext, "next field"),
    // Conversations.
    bind(&[plain(K::Up), ch('k')], C::Sidebar, A::Up, "previous conversation"),
    bind(&[plain(K::Down), ch('j')], C::Sidebar, A::Down, "next conversation"),
    bind(&[plain(K::Enter), ch('l'), plain(K::Right)], C::Sidebar, A::Open, "open"),
    bind(&[ch('i')], C::Sidebar, A::FocusCompose, "write"),
    // Messages.
    bind(&[plain(K::Up), ch('k')], C::Messages, A::Up, "older"),
    bind(&[plain(K::Down), ch('j')], C::Messages, A::Down, "newer"),
    bind(&[plain(K::Enter), ch('i')], C::Messages, A::FocusCompose, "write"),
    bind(&[ch('R')], C::Messages, A::Reply, "reply"),
    bind(&[ch('+')], C::Messages, A::React, "react"),
    bind(&[ch('e')], C::Messages, A::Edit, "edit own message"),
    bind(&[ch(' ')], C::Messages, A::ToggleMark, "mark own message"),
    bind(&[ch('d'), plain(K::Delete)], C::Messages, A::DeleteMessages, "delete marked/selected"),
    bind(&[ch('r')], C::Messages, A::Retry, "retry failed"),
    bind(&[ch('/')], C::Messages, A::Find, "search messages"),
    bind(&[plain(K::End), ch('G')], C::Messages, A::Bottom, "newest"),
    bind(&[plain(K::Home), ch('g')], C::Messages, A::Top, "oldest loaded"),
    bind(&[plain(K::PageUp), ctrl('b')], C::Messages, A::PageUp, "page up"),
    bind(&[plain(K::PageDown), ctrl('f')], C::Messages, A::PageDown, "page down"),
    // Compose.
    bind(&[plain(K::Enter)], C::Compose, A::Send, "send"),
    bind(&[alt(K::Enter)], C::Compose, A::Newline, "new line"),
    bind(&[plain(K::Esc)], C::Compose, A::Back, "stop typing"),
    bind(&[ctrl('r')], C::Compose, A::Retry, "retry failed"),
    bind(&[plain(K::Up)], C::Compose, A::RecallLast, "edit your last message (empty box)"),
    // Compose, editing a message.
    bind(&[plain(K::Enter)], C::Editing, A::Send, "save"),
    bind(&[plain(K::Esc)], C::Editing, A::Back, "cancel editing"),
    // Chat screen, not typing.
    bind(&[ch('n')], C::Navigation, A::NextUnread, "next unread"),
    bind(&[ch('a')], C::Navigation, A::OpenAccounts, "accounts / new chat"),
    bind(&[ch('c')], C::Navigation, A::ToggleCluster, "cluster panel"),
    bind(&[ch('?')], C::Navigation, A::ToggleHelp, "help"),
    bind(&[ch('q')], C::Navigation, A::Quit, "quit"),
    bind(&[ch('M')], C::Navigation, A::ToggleMouse, "mouse off/on (select text)"),
    bind(&[ch('L')], C::Navigation, A::Logout, "log out"),
    bind(&[ch('X')], C::Navigation, A::DeleteAccount, "delete account"),
    // Accounts browser.
    bind(&[plain(K::Enter)], C::AccountsSearch, A::Search, "search"),
    bind(&[plain(K::Down), plain(K::Tab)], C::AccountsSearch, A::FocusNext, "to results"),
    bind(&[plain(K::Esc)], C::AccountsSearch, A::Back, "close"),
    bind(&[plain(K::Enter)], C::AccountsList, A::StartDirect, "chat with"),
    bind(&[ch(' ')], C::AccountsList, A::ToggleMark, "mark"),
    bind(&[ch('g')], C::AccountsList, A::NewGroup, "group with marked"),
    bind(&[ch('m')], C::AccountsList, A::AddMember, "add to open group"),
    bind(&[ch('n'), plain(K::PageDown)], C::AccountsList, A::NextPage, "next page"),
    bind(&[ch('p'), plain(K::PageUp)], C::AccountsList, A::PrevPage, "previous page"),
    bind(&[ch('/'), plain(K::Tab)], C::AccountsList, A::EditPattern, "edit pattern"),
    bind(&[plain(K::Up), ch('k')], C::AccountsList, A::Up, "previous"),
    bind(&[plain(K::Down), ch('j')], C::AccountsList, A::Down, "next"),
    bind(&[plain(K::Esc), ch('q')], C::AccountsList, A::Back, "close"),
    // Dialogs.
    bind(&[ch('y'), plain(K::Enter)], C::Confirm, A::Confirm, "yes"),
    bind(&[ch('n'), plain(K::Esc)], C::Confirm, A::Cancel, "no"),
    bind(&[plain(K::Enter)], C::Prompt, A::Submit, "ok"),
    bind(&[plain(K::Esc)], C::Prompt, A::Cancel, "cancel"),
    bind(&[plain(K::Enter)], C::React, A::Submit, "toggle reaction"),
    bind(&[plain(K::Left), plain(K::Up)], C::React, A::Up, "previous emoji"),
    bind(&[plain(K::Right), plain(K::Down)], C::React, A::Down, "next emoji"),
    bind(&[plain(K::Esc)], C::React, A::Cancel, "cancel"),
    bind(&[plain(K::Enter)], C::SearchQuery, A::Search, "search"),
    bind(&[plain(K::Down), plain(K::Tab)], C::SearchQuery, A::FocusNext, "to results"),
    bind(&[plain(K::Esc)], C::SearchQuery, A::Back, "close"),
    bind(&[plain(K::Enter)], C::SearchResults, A::Open, "go to message"),
    bind(&[plain(K::Up), ch('k')], C::SearchResults, A::Up, "newer"),
    bind(&[plain(K::Down), ch('j')], C::SearchResults, A::Down, "older (the end loads more)"),
    bind(&[ch('/'), plain(K::Tab)], C::SearchResults, A::EditPattern, "edit query"),
    bind(&[plain(K::Esc), ch('q')], C::SearchResults, A::Back, "close"),
    bind(&[plain(K::Esc), ch('?'), ch('q')], C::Help, A::ToggleHelp, "close help"),
    bind(&[plain(K::Up), ch('k')], C::Help, A::Up, "scroll up"),
    bind(&[plain(K::Down), ch('j')], C::Help, A::Down, "scroll down"),
    // Everywhere.
    bind(&[ctrl('c')], C::Global, A::Quit, "quit"),
    bind(&[plain(K::Tab)], C::Global, A::FocusNext, "next pane"),
    bind(&[plain(K::BackTab)], C::Global, A::FocusPrev, "previous pane"),
    bind(&[plain(K::F(1))], C::Global, A::ToggleHelp, "help"),
    bind(&[plain(K::F(2))], C::Global, A::ToggleCluster, "cluster panel"),
    bind(&[plain(K::F(3))], C::Global, A::ToggleMouse, "mouse off/on (select text)"),
    bind(&[ctrl('z')], C::Global, A::Suspend, "suspend (fg resumes)"),
];

impl Chord {
    /// Whether `key` is this chord. Shift is ignored for characters, since
    /// terminals disagree on reporting it for `?`, `G` and friends.
    pub fn matches(&self, key: &KeyEvent) -> bool {
        let mut modifiers = key.modifiers;
        let mut code = key.code;
        if let KeyCode::Char(c) = code {
            modifiers.remove(KeyModifiers::SHIFT);
            // Some terminals report Ctrl+letter with an upper-case letter.
            if modifiers.contains(KeyModifiers::CONTROL) {
                code = KeyCode::Char(c.to_ascii_lowercase());
            }
        }
        if code == KeyCode::BackTab {
            modifiers.remove(KeyModifiers::SHIFT);
        }
        code == self.code && modifiers == self.modifiers
    }

    /// A chord as the config file writes it: one character (`q`, `?`),
    /// a key name (`Enter`, `Esc`, `Tab`, `S-Tab`, `Up`, `Down`, `Left`,
    /// `Right`, `PgUp`, `PgDn`, `Home`, `End`, `Del`, `Space`, `F1`–`F12`),
    /// or either after `C-`/`Ctrl-`/`^` or `A-`/`Alt-`/`M-`. The labels
    /// help shows (`^R`, `Alt-Enter`, `↑`) are read too.
    pub fn parse(text: &str) -> Result<Chord, String> {
        let text = text.trim();
        let (modifiers, rest) = if let Some(rest) = strip_any(text, &["C-", "Ctrl-", "ctrl-"]) {
            (KeyModifiers::CONTROL, rest)
        } else if let Some(rest) = strip_any(text, &["A-", "Alt-", "alt-", "M-"]) {
            (KeyModifiers::ALT, rest)
        } else if let Some(rest) = text.strip_prefix('^').filter(|r| !r.is_empty()) {
            (KeyModifiers::CONTROL, rest)
        } else {
            (KeyModifiers::NONE, text)
        };
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) if modifiers == KeyModifiers::CONTROL => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            (Some(c), None) => match c {
                '↑' => KeyCode::Up,
                '↓' => KeyCode::Down,
                '←' => KeyCode::Left,
                '→' => KeyCode::Right,
                c if c.is_control() => {
                    return Err(format!("'{}' is not a key", c.escape_default()))
                }
                c => KeyCode::Char(c),
            },
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "s-tab" | "backtab" | "shift-tab" => KeyCode::BackTab,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "pgup" | "pageup" => KeyCode::PageUp,
                "pgdn" | "pagedown" => KeyCode::PageDown,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "del" | "delete" => KeyCode::Delete,
                "backspace" => KeyCode::Backspace,
                "space" => KeyCode::Char(' '),
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n @ 1..=12) => KeyCode::F(n),
                    _ => return Err(format!("'{text}' is not a key")),
                },
                _ => return Err(format!("'{text}' is not a key")),
            },
        };
        Ok(Chord { code, modifiers })
    }

    /// Whether the chord would be typed as text in a text field.
    fn types_text(&self) -> bool {
        matches!(self.code, KeyCode::Char(_)) && self.modifiers == KeyModifiers::NONE
    }

    /// How the chord is written in help and hints.
    pub fn label(&self) -> String {
        let key = match self.code {
            KeyCode::Enter => "Enter".to_string(),
            KeyCode::Esc => "Esc".to_string(),
            KeyCode::Tab => "Tab".to_string(),
            KeyCode::BackTab => "S-Tab".to_string(),
            KeyCode::Up => "↑".to_string(),
            KeyCode::Down => "↓".to_string(),
            KeyCode::Left => "←".to_string(),
            KeyCode::Right => "→".to_string(),
            KeyCode::PageUp => "PgUp".to_string(),
            KeyCode::PageDown => "PgDn".to_string(),
            KeyCode::Home => "Home".to_string(),
            KeyCode::End => "End".to_string(),
            KeyCode::Delete => "Del".to_string(),
            KeyCode::F(n) => format!("F{n}"),
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            other => format!("{other:?}"),
        };
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            format!("^{}", key.to_uppercase())
        } else if self.modifiers.contains(KeyModifiers::ALT) {
            format!("Alt-{key}")
        } else {
            key
        }
    }
}

impl Binding {
    /// All of the binding's chords, e.g. `↑/k`.
    pub fn keys_label(&self) -> String {
        self.keys
            .iter()
            .map(Chord::label)
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn strip_any<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .filter(|rest| !rest.is_empty())
}

/// Contexts in which a plain character is text being typed.
fn is_typing(context: Context) -> bool {
    matches!(
        context,
        Context::Global
            | Context::Compose
            | Context::Editing
            | Context::SignIn
            | Context::AccountsSearch
            | Context::Prompt
            | Context::React
            | Context::SearchQuery
    )
}

/// The bindings in force: [`BINDINGS`], with the keys of some actions
/// replaced (the config file's `[keys]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Default for Keymap {
    fn default() -> Self {
        Self {
            bindings: BINDINGS.to_vec(),
        }
    }
}

impl Keymap {
    /// The table with every row of each action given its new keys, but
    /// where text is typed (the compose box, fields, and "everywhere"),
    /// which keeps its plain characters as text: there a row gets only
    /// the list's other keys, and without any it is dropped. Refused (with
    /// why): no keys, an action left with no key at all, or one key for two
    /// actions in one context.
    pub fn with_overrides(overrides: &[(Action, Vec<Chord>)]) -> Result<Self, String> {
        let mut bindings = BINDINGS.to_vec();
        for (action, keys) in overrides {
            if keys.is_empty() {
                return Err(format!("'{}' needs at least one key", action.name()));
            }
            for binding in bindings.iter_mut().filter(|b| b.action == *action) {
                let typing = is_typing(binding.context);
                let kept: Vec<Chord> = keys
                    .iter()
                    .copied()
                    .filter(|k| !(typing && k.types_text()))
                    .collect();
                binding.keys = Cow::Owned(kept);
            }
            let had_rows = bindings.iter().any(|b| b.action == *action);
            bindings.retain(|b| b.action != *action || !b.keys.is_empty());
            if had_rows && !bindings.iter().any(|b| b.action == *action) {
                let plain = keys.iter().map(Chord::label).collect::<Vec<_>>().join(", ");
                return Err(format!(
                    "'{}' is used while typing, where '{plain}' would be text: \
                     use a Ctrl or Alt chord or a named key",
                    action.name()
                ));
            }
        }
        for (i, a) in bindings.iter().enumerate() {
            for b in &bindings[i + 1..] {
                if a.context != b.context || a.action == b.action {
                    continue;
                }
                if let Some(chord) = a.keys.iter().find(|k| b.keys.contains(k)) {
                    return Err(format!(
                        "'{}' is bound to both '{}' and '{}' in {}",
                        chord.label(),
                        a.action.name(),
                        b.action.name(),
                        a.context.title()
                    ));
                }
            }
        }
        Ok(Self { bindings })
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The action bound to `key` in the first of `contexts` that binds it.
    /// Key releases are ignored.
    pub fn resolve(&self, contexts: &[Context], key: &KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        contexts.iter().find_map(|context| {
            self.bindings
                .iter()
                .filter(|b| b.context == *context)
                .find(|b| b.keys.iter().any(|chord| chord.matches(key)))
                .map(|b| b.action)
        })
    }

    /// The bindings to advertise in the hint bar for `contexts`, most
    /// specific first, skipping keys shadowed by a more specific context.
    pub fn hints(&self, contexts: &[Context]) -> Vec<&Binding> {
        let mut shown: Vec<&Binding> = Vec::new();
        for context in contexts {
            for binding in self.bindings.iter().filter(|b| b.context == *context) {
                let shadowed = shown
                    .iter()
                    .any(|s| s.keys.iter().any(|k| binding.keys.contains(k)));
                if !shadowed {
                    shown.push(binding);
                }
            }
        }
        shown
    }

    /// The keys of `action` in `context`, e.g. `y/Enter` (empty if
    /// unbound), for text that names keys outside the hint bar (dialogs).
    pub fn label_of(&self, context: Context, action: Action) -> String {
        self.bindings
            .iter()
            .find(|b| b.context == context && b.action == action)
            .map(Binding::keys_label)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn arrows_and_vim_keys_do_the_same() {
        let ctx = [Context::Messages, Context::Navigation, Context::Global];
        let up = Keymap::default().resolve(&ctx, &key(KeyCode::Up, KeyModifiers::NONE));
        let k = Keymap::default().resolve(&ctx, &key(KeyCode::Char('k'), KeyModifiers::NONE));
        assert_eq!(up, Some(Action::Up));
        assert_eq!(k, Some(Action::Up));
    }

    #[test]
    fn specific_context_wins_and_typing_is_not_stolen() {
        let compose = [Context::Compose, Context::Global];
        assert_eq!(
            Keymap::default().resolve(&compose, &key(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            Keymap::default().resolve(&compose, &key(KeyCode::Enter, KeyModifiers::NONE)),
            Some(Action::Send)
        );
        assert_eq!(
            Keymap::default().resolve(&compose, &key(KeyCode::Enter, KeyModifiers::ALT)),
            Some(Action::Newline)
        );
        assert_eq!(
            Keymap::default().resolve(&compose, &key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }

    #[test]
    fn shifted_characters_match() {
        let ctx = [Context::Navigation];
        assert_eq!(
            Keymap::default().resolve(&ctx, &key(KeyCode::Char('?'), KeyModifiers::SHIFT)),
            Some(Action::ToggleHelp)
        );
    }

    #[test]
    fn the_default_table_is_a_valid_keymap_and_every_action_has_a_name() {
        assert_eq!(Keymap::with_overrides(&[]), Ok(Keymap::default()));
        for binding in BINDINGS {
            assert_eq!(
                Action::from_name(binding.action.name()),
                Some(binding.action)
            );
        }
        // Every action named for the config file is bound somewhere.
        for (action, name) in Action::ALL {
            assert!(
                BINDINGS.iter().any(|b| b.action == *action),
                "{name} has no binding"
            );
        }
    }

    #[test]
    fn chords_parse_as_written_and_as_labelled() {
        let parse = |s: &str| Chord::parse(s).map(|c| c.label());
        for (text, label) in [
            ("q", "q"),
            ("C-x", "^X"),
            ("Ctrl-X", "^X"),
            ("^r", "^R"),
            ("A-Enter", "Alt-Enter"),
            ("Alt-b", "Alt-b"),
            ("enter", "Enter"),
            ("S-Tab", "S-Tab"),
            ("PgDn", "PgDn"),
            ("F3", "F3"),
            ("Space", "Space"),
            ("↑", "↑"),
        ] {
            assert_eq!(parse(text).as_deref(), Ok(label), "{text}");
        }
        for bad in ["", "F13", "Ctrl-", "nope", "\u{1b}"] {
            assert!(Chord::parse(bad).is_err(), "{bad:?}");
        }
        // Every label of the table reads back as its chord.
        for binding in BINDINGS {
            for chord in binding.keys.iter() {
                assert_eq!(Chord::parse(&chord.label()), Ok(*chord));
            }
        }
    }

    #[test]
    fn overrides_replace_an_actions_keys_everywhere_and_are_checked() {
        let x = Chord::parse("x").unwrap();
        let keymap = Keymap::with_overrides(&[(Action::ToggleCluster, vec![x])]).unwrap();
        let nav = [Context::Messages, Context::Navigation, Context::Global];
        let press = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(
            keymap.resolve(&nav, &press('x')),
            Some(Action::ToggleCluster)
        );
        assert_eq!(keymap.resolve(&nav, &press('c')), None);
        // Not while typing, where x is text: F2 (Everywhere) is gone.
        assert!(!keymap
            .bindings()
            .iter()
            .any(|b| b.action == Action::ToggleCluster && b.context == Context::Global));
        let compose = [Context::Compose, Context::Global];
        assert_eq!(keymap.resolve(&compose, &press('x')), None);
        // An action only used while typing cannot have a plain key.
        let err = Keymap::with_overrides(&[(Action::Send, vec![x])]).unwrap_err();
        assert!(err.contains("would be text"), "{err}");
        let ctrl_s = Chord::parse("C-s").unwrap();
        let keymap = Keymap::with_overrides(&[(Action::Send, vec![ctrl_s])]).unwrap();
        assert_eq!(keymap.label_of(Context::Compose, Action::Send), "^S");
        // One key, two actions, one context.
        let del = Chord::parse("Del").unwrap();
        let err = Keymap::with_overrides(&[(Action::Retry, vec![del])]).unwrap_err();
        assert!(err.contains("both"), "{err}");
        assert!(Keymap::with_overrides(&[(Action::Quit, vec![])]).is_err());
    }

    #[test]
    fn every_binding_has_keys_and_words() {
        for b in BINDINGS {
            assert!(!b.keys.is_empty() && !b.description.is_empty(), "{b:?}");
        }
    }
}
