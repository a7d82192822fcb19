//! `/`: searching the open conversation's messages (gRPC `Search`).
//!
//! The overlay has a query field and a list of the matches, newest first,
//! a page at a time: moving onto the last one asks for the next page
//! (`before` = its id). `Enter` on a match closes the overlay and puts the
//! message cursor on that message, loading older history pages until it
//! is there (pages below the oldest loaded one, so the loaded history
//! never has a hole in it).

use ratatui_textarea::TextArea;

use super::*;

/// Matches asked for per page.
pub const SEARCH_PAGE: u32 = 20;

/// The search overlay's state.
#[derive(Debug, Clone)]
pub struct SearchPanel {
    /// The conversation searched.
    pub conversation_id: u64,
    pub input: TextArea<'static>,
    /// The result list has the keyboard (else the query field).
    pub list_focused: bool,
    /// The query of the results shown (or asked for); `None` before the
    /// first search.
    pub searched: Option<String>,
    /// Newest first.
    pub results: Vec<Message>,
    /// Older matches remain on the server.
    pub more: bool,
    /// A page is on its way.
    pub loading: bool,
    pub selected: usize,
}

impl SearchPanel {
    pub fn new(conversation_id: u64) -> Self {
        let mut input = TextArea::default();
        input.set_placeholder_text("words to find (Enter: search)");
        Self {
            conversation_id,
            input,
            list_focused: false,
            searched: None,
            results: Vec::new(),
            more: false,
            loading: false,
            selected: 0,
        }
    }

    pub fn query_text(&self) -> String {
        self.input.lines().concat().trim().to_string()
    }
}

impl App {
    /// `/` in the messages: the search overlay for the open conversation.
    pub(super) fn open_search(&mut self) {
        match self.conversations.open().map(Conversation::id) {
            Some(Some(id)) => self.overlay = Some(Overlay::Search(SearchPanel::new(id))),
            Some(None) => self.notify("Nothing to search here yet."),
            None => self.notify("Open a conversation first."),
        }
    }

    /// `Enter` in the query field: the first page of matches.
    pub(super) fn run_search(&mut self) -> Vec<Effect> {
        let Some(Overlay::Search(panel)) = &mut self.overlay else {
            return Vec::new();
        };
        let query = panel.query_text();
        if query.is_empty() {
            return Vec::new();
        }
        panel.searched = Some(query.clone());
        panel.results.clear();
        panel.selected = 0;
        panel.more = false;
        panel.loading = true;
        vec![Effect::SearchMessages {
            conversation_id: panel.conversation_id,
            query,
            before: 0,
        }]
    }

    /// A page of matches arrived: kept if it is the one asked for.
    pub(super) fn on_search_results(
        &mut self,
        conversation_id: u64,
        query: &str,
        before: u64,
        messages: Vec<Message>,
        more: bool,
    ) {
        let Some(Overlay::Search(panel)) = &mut self.overlay else {
            return;
        };
        if panel.conversation_id != conversation_id || panel.searched.as_deref() != Some(query) {
            return; // for an earlier query
        }
        let last = panel.results.last().map_or(0, |m| m.id);
        if before != last {
            return; // a page that no longer follows the list
        }
        for message in messages {
            if !panel.results.iter().any(|m| m.id == message.id) {
                panel.results.push(message);
            }
        }
        panel.more = more;
        panel.loading = false;
        if before == 0 && !panel.results.is_empty() {
            panel.list_focused = true;
        }
    }

    /// Up/Down in the results; onto the last one, the next page is asked
    /// for; Up on the first goes back to the query.
    pub(super) fn search_step(&mut self, delta: isize) -> Vec<Effect> {
        let Some(Overlay::Search(panel)) = &mut self.overlay else {
            return Vec::new();
        };
        if panel.results.is_empty() {
            return Vec::new();
        }
        if panel.selected == 0 && delta < 0 {
            panel.list_focused = false;
            return Vec::new();
        }
        let last = panel.results.len() - 1;
        panel.selected = panel.selected.saturating_add_signed(delta).min(last);
        let Some(query) = panel.searched.clone() else {
            return Vec::new();
        };
        if panel.selected < last || !panel.more || panel.loading {
            return Vec::new();
        }
        panel.loading = true;
        vec![Effect::SearchMessages {
            conversation_id: panel.conversation_id,
            query,
            before: panel.results[last].id,
        }]
    }

    /// `Enter` on a match: the overlay closes and the message cursor goes
    /// to that message.
    pub(super) fn open_search_result(&mut self) -> Vec<Effect> {
        let Some(Overlay::Search(panel)) = &self.overlay else {
            return Vec::new();
        };
        let Some(id) = panel.results.get(panel.selected).map(|m| m.id) else {
            return Vec::new();
        };
        let key = ConvKey::Id(panel.conversation_id);
        self.overlay = None;
        self.focus = Focus::Messages;
        let mut effects = Vec::new();
        if self.conversations.open.as_ref() != Some(&key) {
            effects.extend(self.open_conversation(key));
        }
        self.view.jump_to = Some(id);
        effects.extend(self.continue_jump());
        effects
    }

    /// Puts the message cursor on the message a search result named once
    /// it is loaded, asking for the next older history page until it is;
    /// a message no longer there is reported.
    pub(super) fn continue_jump(&mut self) -> Vec<Effect> {
        let Some(id) = self.view.jump_to else {
            return Vec::new();
        };
        let Some(conv) = self.conversations.open_mut() else {
            self.view.jump_to = None;
            return Vec::new();
        };
        if let Some(entry) = conv.log.find_id(id) {
            self.view.anchor = Some(entry.key());
            self.view.jump_to = None;
            return Vec::new();
        }
        if conv.log.loading || !conv.log.loaded {
            return Vec::new(); // the page under way may hold it
        }
        match (conv.id(), conv.log.oldest_id()) {
            (Some(conversation_id), Some(oldest)) if conv.log.more && oldest > id => {
                conv.log.loading = true;
                vec![Effect::LoadHistory {
                    conversation_id,
                    before: oldest,
                }]
            }
            _ => {
                self.view.jump_to = None;
                self.notify("That message is not there any more (deleted).");
                Vec::new()
            }
        }
    }
}
