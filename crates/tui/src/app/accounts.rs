//! The accounts browser: wildcard search with paging, marks for groups.

use ratatui_textarea::TextArea;

use crate::model::AccountInfo;

/// The accounts overlay's state.
#[derive(Debug, Clone)]
pub struct AccountsBrowser {
    pub pattern: TextArea<'static>,
    /// The result list has focus (else the pattern field).
    pub list_focused: bool,
    pub results: Vec<AccountInfo>,
    pub selected: usize,
    /// Names marked for a new group or to add to the open group.
    pub marked: Vec<String>,
    /// The `after` cursor of every page up to the current one ("" first).
    pub page_cursors: Vec<String>,
    /// How many accounts come before each page in `page_cursors`.
    pub page_starts: Vec<usize>,
    /// How many accounts match the searched pattern, once counted:
    /// (count, complete); not complete means "at least".
    pub total: Option<(u64, bool)>,
    /// The pattern of the shown (or requested) results.
    pub searched: String,
    /// The cursor of the following page; empty on the last page.
    pub next_after: String,
    pub loading: bool,
}

impl AccountsBrowser {
    pub fn new() -> Self {
        let mut pattern = TextArea::default();
        pattern.set_placeholder_text("pattern, e.g. al* or ?ob (empty = everyone)");
        Self {
            pattern,
            list_focused: false,
            results: Vec::new(),
            selected: 0,
            marked: Vec::new(),
            page_cursors: vec![String::new()],
            page_starts: vec![0],
            total: None,
            searched: String::new(),
            next_after: String::new(),
            loading: false,
        }
    }

    pub fn pattern_text(&self) -> String {
        self.pattern.lines().concat().trim().to_string()
    }

    pub fn page_number(&self) -> usize {
        self.page_cursors.len()
    }

    /// How many accounts come before the shown page.
    pub fn first_shown(&self) -> usize {
        self.page_starts.last().copied().unwrap_or(0)
    }

    pub fn current_after(&self) -> String {
        self.page_cursors.last().cloned().unwrap_or_default()
    }

    /// Whether a reply for (`pattern`, `after`) is the one we wait for.
    pub fn expects(&self, pattern: &str, after: &str) -> bool {
        self.searched == pattern && self.current_after() == after
    }

    pub fn selected_account(&self) -> Option<&AccountInfo> {
        self.results.get(self.selected)
    }

    pub fn toggle_mark(&mut self) {
        let Some(name) = self.selected_account().map(|a| a.username.clone()) else {
            return;
        };
        if let Some(pos) = self.marked.iter().position(|m| m == &name) {
            self.marked.remove(pos);
        } else {
            self.marked.push(name);
        }
    }

    /// The marked names, or the selected one when none is marked.
    pub fn chosen(&self) -> Vec<String> {
        if self.marked.is_empty() {
            self.selected_account()
                .map(|a| vec![a.username.clone()])
                .unwrap_or_default()
        } else {
            self.marked.clone()
        }
    }

    pub fn move_selection(&mut self, delta: isize) {
        if self.results.is_empty() {
            self.selected = 0;
            return;
        }
        let last = self.results.len() - 1;
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }
}

impl Default for AccountsBrowser {
    fn default() -> Self {
        Self::new()
    }
}
