//! The accounts browser: search, paging, direct conversations, groups.

use super::*;

impl App {
    pub(super) fn open_accounts(&mut self) -> Vec<Effect> {
        self.overlay = Some(Overlay::Accounts(AccountsBrowser::new()));
        self.search_accounts(true)
    }

    /// Runs the pattern search from the first page (`restart`) or reloads
    /// the current page.
    pub(super) fn search_accounts(&mut self, restart: bool) -> Vec<Effect> {
        let limit = crate::layout::accounts_page_size(self);
        let Some(Overlay::Accounts(browser)) = &mut self.overlay else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        if restart {
            browser.searched = browser.pattern_text();
            browser.page_cursors = vec![String::new()];
            browser.page_starts = vec![0];
            browser.marked.clear();
            browser.total = None;
            effects.push(Effect::CountAccounts {
                pattern: browser.searched.clone(),
            });
        }
        browser.loading = true;
        effects.insert(
            0,
            Effect::ListAccounts {
                pattern: browser.searched.clone(),
                after: browser.current_after(),
                limit,
            },
        );
        effects
    }

    pub(super) fn accounts_page(&mut self, forward: bool) -> Vec<Effect> {
        let Some(Overlay::Accounts(browser)) = &mut self.overlay else {
            return Vec::new();
        };
        if forward {
            if browser.next_after.is_empty() {
                return Vec::new();
            }
            browser.page_cursors.push(browser.next_after.clone());
            browser
                .page_starts
                .push(browser.first_shown() + browser.results.len());
        } else {
            if browser.page_cursors.len() <= 1 {
                return Vec::new();
            }
            browser.page_cursors.pop();
            browser.page_starts.pop();
        }
        self.search_accounts(false)
    }

    pub(super) fn on_accounts(
        &mut self,
        pattern: &str,
        after: &str,
        accounts: Vec<AccountInfo>,
        next_after: String,
    ) {
        for account in &accounts {
            self.presence.insert(
                account.username.clone(),
                Presence {
                    online: account.online,
                    last_seen_ms: account.last_seen_ms,
                },
            );
        }
        let Some(Overlay::Accounts(browser)) = &mut self.overlay else {
            return;
        };
        if !browser.expects(pattern, after) {
            return; // a stale page
        }
        browser.results = accounts;
        browser.next_after = next_after;
        browser.selected = 0;
        browser.loading = false;
        if !browser.results.is_empty() && browser.page_number() == 1 && after.is_empty() {
            browser.list_focused = browser.list_focused || !browser.searched.is_empty();
        }
    }

    pub(super) fn start_direct(&mut self) -> Vec<Effect> {
        let Some(Overlay::Accounts(browser)) = &self.overlay else {
            return Vec::new();
        };
        let Some(peer) = browser.selected_account().map(|a| a.username.clone()) else {
            return Vec::new();
        };
        if is_me(&peer, self.me()) {
            self.notify_error("That is you.");
            return Vec::new();
        }
        self.overlay = None;
        self.focus = Focus::Compose;
        let key = match self.conversations.direct_with(&peer) {
            Some(existing) => existing.key.clone(),
            None => {
                let draft = Conversation::new_direct(&peer, self.now_ms);
                let key = draft.key.clone();
                self.conversations.list.push(draft);
                self.conversations.sort();
                key
            }
        };
        self.open_conversation(key)
    }

    pub(super) fn ask_group_name(&mut self) {
        let Some(Overlay::Accounts(browser)) = &self.overlay else {
            return;
        };
        let me = self.me().to_string();
        let members: Vec<String> = browser
            .chosen()
            .into_iter()
            .filter(|m| !is_me(m, &me))
            .collect();
        self.overlay = Some(Overlay::Prompt(Prompt::new(PromptKind::GroupName {
            members,
        })));
    }

    pub(super) fn add_members(&mut self) -> Vec<Effect> {
        let Some(Overlay::Accounts(browser)) = &self.overlay else {
            return Vec::new();
        };
        let chosen = browser.chosen();
        let Some(conversation_id) = self
            .conversations
            .open()
            .filter(|c| c.kind == ConversationKind::Group)
            .and_then(Conversation::id)
        else {
            self.notify_error("Open a group first, then add members to it.");
            return Vec::new();
        };
        self.overlay = None;
        chosen
            .into_iter()
            .map(|username| Effect::AddMember {
                conversation_id,
                username,
            })
            .collect()
    }

    pub(super) fn submit_prompt(&mut self) -> Vec<Effect> {
        let Some(Overlay::Prompt(prompt)) = &mut self.overlay else {
            return Vec::new();
        };
        if prompt.busy {
            return Vec::new();
        }
        let text = prompt.text();
        if text.trim().is_empty() {
            prompt.error = Some("This cannot be empty.".into());
            return Vec::new();
        }
        match prompt.kind.clone() {
            PromptKind::GroupName { members } => {
                self.overlay = None;
                self.notify("Creating the group…");
                vec![Effect::CreateGroup {
                    name: text.trim().to_string(),
                    members,
                }]
            }
            PromptKind::DeleteAccountPassword => {
                prompt.busy = true;
                prompt.error = None;
                vec![Effect::DeleteAccount { password: text }]
            }
        }
    }
}
