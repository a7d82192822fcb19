//! Keyboard, mouse and paste: from key events to actions on the state.

use crossterm::event::{KeyCode, KeyModifiers, MouseButton};

use crate::layout::Spot;

use super::*;

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if let Some(action) = self.config.keymap.resolve(&self.contexts(), &key) {
            return self.perform(action);
        }
        // Unbound keys type into the focused text field, if any. Its keys
        // are readline's (Ctrl-A/E/W/K, Alt-B/F), but for Ctrl-U, which
        // was undo.
        if let Some(field) = self.text_field_mut() {
            if key.code == KeyCode::Char('u') && key.modifiers == KeyModifiers::CONTROL {
                field.delete_line_by_head();
            } else {
                field.input(key);
            }
            if self.screen == Screen::SignIn {
                self.sign_in.error = None;
            }
        }
        if let Some(Overlay::React(picker)) = &mut self.overlay {
            picker.error = None;
        }
        Vec::new()
    }

    pub(super) fn on_mouse(&mut self, mouse: MouseEvent) -> Vec<Effect> {
        let delta = match mouse.kind {
            MouseEventKind::ScrollUp => -1,
            MouseEventKind::ScrollDown => 1,
            MouseEventKind::Down(MouseButton::Left) => {
                return self.on_click(mouse.column, mouse.row)
            }
            _ => return Vec::new(),
        };
        match &mut self.overlay {
            Some(Overlay::Help { scroll }) => {
                *scroll = scroll.saturating_add_signed(i16::try_from(delta).unwrap_or(0));
                Vec::new()
            }
            Some(Overlay::Accounts(browser)) => {
                browser.move_selection(delta);
                Vec::new()
            }
            Some(Overlay::Search(_)) => self.search_step(delta),
            Some(_) => Vec::new(),
            None if self.screen == Screen::Chat => self.move_cursor(delta * WHEEL_MESSAGES),
            None => Vec::new(),
        }
    }

    /// A left click on the chat screen: a conversation in the sidebar
    /// opens it (as `Enter` does); a pane gets the keyboard.
    fn on_click(&mut self, column: u16, row: u16) -> Vec<Effect> {
        match crate::layout::spot(self, column, row) {
            Some(Spot::Conversation(index)) => {
                let key = self.conversations.list[index].key.clone();
                self.focus = Focus::Messages;
                self.open_conversation(key)
            }
            Some(Spot::Sidebar) => {
                self.focus = Focus::Sidebar;
                Vec::new()
            }
            Some(Spot::Messages) => {
                self.focus = Focus::Messages;
                Vec::new()
            }
            Some(Spot::Compose) => {
                self.focus = Focus::Compose;
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    pub(super) fn on_paste(&mut self, text: &str) {
        let multi_line = self.overlay.is_none() && self.focus == Focus::Compose;
        // Terminals (and tmux) send a pasted line break as CR, CRLF or LF.
        let text = if multi_line {
            text.replace("\r\n", "\n").replace('\r', "\n")
        } else {
            text.replace(['\r', '\n'], "")
        };
        if let Some(field) = self.text_field_mut() {
            field.insert_str(text);
        }
    }

    /// The text field that receives typing, if one has focus.
    pub(super) fn text_field_mut(&mut self) -> Option<&mut TextArea<'static>> {
        match &mut self.overlay {
            Some(Overlay::Accounts(browser)) if !browser.list_focused => Some(&mut browser.pattern),
            Some(Overlay::Prompt(prompt)) if !prompt.busy => Some(&mut prompt.input),
            Some(Overlay::React(picker)) => Some(&mut picker.input),
            Some(Overlay::Search(panel)) if !panel.list_focused => Some(&mut panel.input),
            Some(_) => None,
            None => match self.screen {
                Screen::SignIn if self.sign_in.pending.is_none() => Some(self.sign_in.field_mut()),
                Screen::SignIn => None,
                Screen::Chat if self.focus == Focus::Compose => Some(&mut self.compose),
                Screen::Chat => None,
            },
        }
    }

    /// Carries out a bound action in the current context.
    pub(super) fn perform(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => {
                self.quit();
                Vec::new()
            }
            Action::Suspend => {
                self.suspend_requested = true;
                Vec::new()
            }
            Action::ToggleMouse => {
                self.mouse_capture = !self.mouse_capture;
                self.notify(if self.mouse_capture {
                    "Mouse on: click a conversation, wheel scrolls."
                } else {
                    "Mouse off: the terminal selects text (hold Shift in some terminals when it is on)."
                });
                Vec::new()
            }
            Action::ToggleHelp => {
                self.overlay = match self.overlay {
                    Some(Overlay::Help { .. }) => None,
                    None => Some(Overlay::Help { scroll: 0 }),
                    ref other => other.clone(),
                };
                Vec::new()
            }
            Action::ToggleCluster => {
                self.show_cluster = !self.show_cluster;
                Vec::new()
            }
            Action::FocusNext | Action::FocusPrev => {
                self.cycle_focus(action == Action::FocusNext);
                Vec::new()
            }
            Action::OpenAccounts => self.open_accounts(),
            Action::Logout => match self.waiting_to_send() {
                0 => self.log_out(),
                waiting => {
                    self.overlay = Some(Overlay::Confirm(ConfirmKind::Logout { waiting }));
                    Vec::new()
                }
            },
            Action::DeleteAccount => {
                self.overlay = Some(Overlay::Prompt(Prompt::new(
                    PromptKind::DeleteAccountPassword,
                )));
                Vec::new()
            }
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.move_cursor(-PAGE_MESSAGES),
            Action::PageDown => self.move_cursor(PAGE_MESSAGES),
            Action::Top => self.move_cursor(isize::MIN / 2),
            Action::Bottom => {
                self.view.anchor = None;
                self.view.jump_to = None;
                Vec::new()
            }
            Action::Back => {
                if self.overlay.is_some() {
                    self.overlay = None;
                } else if self.focus != Focus::Compose || !self.cancel_compose_mode() {
                    // Esc first leaves editing or replying, then the box.
                    self.focus = Focus::Messages;
                }
                Vec::new()
            }
            Action::FocusCompose => {
                // From the sidebar: into the conversation under its cursor.
                let effects = if self.focus == Focus::Sidebar {
                    self.open_highlighted()
                } else {
                    Vec::new()
                };
                self.focus = Focus::Compose;
                effects
            }
            Action::Open if matches!(self.overlay, Some(Overlay::Search(_))) => {
                self.open_search_result()
            }
            Action::Open => {
                let effects = self.open_highlighted();
                self.focus = Focus::Messages;
                effects
            }
            Action::NextUnread => self.open_next_unread(),
            Action::RecallLast => {
                self.edit_last();
                Vec::new()
            }
            Action::Edit => {
                self.edit_selected();
                Vec::new()
            }
            Action::Reply => {
                self.reply_to_selected();
                Vec::new()
            }
            Action::React => {
                self.open_react_picker();
                Vec::new()
            }
            Action::Send => match &self.compose_mode {
                Some(ComposeMode::Editing { message_id, .. }) => self.save_edit(*message_id),
                _ => self.send_compose(),
            },
            Action::Newline => {
                self.compose.insert_newline();
                Vec::new()
            }
            Action::ToggleMark => {
                self.toggle_mark();
                Vec::new()
            }
            Action::DeleteMessages => {
                self.ask_delete_messages();
                Vec::new()
            }
            Action::Retry => self.retry_failed(),
            Action::SignIn => self.submit_sign_in(false),
            Action::CreateAccount => self.submit_sign_in(true),
            Action::Find => {
                self.open_search();
                Vec::new()
            }
            Action::Search if matches!(self.overlay, Some(Overlay::Search(_))) => self.run_search(),
            Action::Search => self.search_accounts(true),
            Action::NextPage => self.accounts_page(true),
            Action::PrevPage => self.accounts_page(false),
            Action::StartDirect => self.start_direct(),
            Action::NewGroup => {
                self.ask_group_name();
                Vec::new()
            }
            Action::AddMember => self.add_members(),
            Action::EditPattern => {
                match &mut self.overlay {
                    Some(Overlay::Accounts(browser)) => browser.list_focused = false,
                    Some(Overlay::Search(panel)) => panel.list_focused = false,
                    _ => {}
                }
                Vec::new()
            }
            Action::Confirm => self.confirm(),
            Action::Cancel => {
                self.overlay = None;
                Vec::new()
            }
            Action::Submit if matches!(self.overlay, Some(Overlay::React(_))) => {
                self.submit_reaction()
            }
            Action::Submit => self.submit_prompt(),
        }
    }

    /// Quits, asking first while messages wait to be sent (they are kept
    /// for the next run). Asked again (e.g. `Ctrl-C` twice), it quits.
    fn quit(&mut self) {
        let asked = matches!(
            self.overlay,
            Some(Overlay::Confirm(ConfirmKind::Quit { .. }))
        );
        match self.waiting_to_send() {
            waiting if waiting > 0 && !asked => {
                self.overlay = Some(Overlay::Confirm(ConfirmKind::Quit { waiting }));
            }
            _ => self.should_quit = true,
        }
    }

    /// Own messages of this session not committed yet.
    fn waiting_to_send(&self) -> usize {
        if self.screen == Screen::Chat {
            self.outbox.len()
        } else {
            0
        }
    }

    pub(super) fn log_out(&mut self) -> Vec<Effect> {
        self.sign_out(Some("Signed out."));
        vec![Effect::Logout]
    }

    pub(super) fn cycle_focus(&mut self, forward: bool) {
        match &mut self.overlay {
            Some(Overlay::Accounts(browser)) => browser.list_focused = !browser.list_focused,
            Some(Overlay::Search(panel)) => {
                panel.list_focused = !panel.list_focused && !panel.results.is_empty();
            }
            Some(_) => {}
            None if self.screen == Screen::SignIn => self.sign_in.toggle_field(),
            None => {
                // The sidebar's cursor goes back to the open conversation.
                self.conversations.highlighted = None;
                self.focus = match (self.focus, forward) {
                    (Focus::Sidebar, true) | (Focus::Compose, false) => Focus::Messages,
                    (Focus::Messages, true) | (Focus::Sidebar, false) => Focus::Compose,
                    (Focus::Compose, true) | (Focus::Messages, false) => Focus::Sidebar,
                }
            }
        }
    }

    /// Up/Down by one, in whatever list has focus.
    pub(super) fn step(&mut self, delta: isize) -> Vec<Effect> {
        match &mut self.overlay {
            Some(Overlay::Help { scroll }) => {
                *scroll = scroll.saturating_add_signed(i16::try_from(delta).unwrap_or(0));
                Vec::new()
            }
            Some(Overlay::Accounts(browser)) => {
                browser.move_selection(delta);
                Vec::new()
            }
            Some(Overlay::React(picker)) => {
                picker.move_selection(delta);
                Vec::new()
            }
            Some(Overlay::Search(_)) => self.search_step(delta),
            Some(_) => Vec::new(),
            None if self.focus == Focus::Sidebar => self.select_conversation(delta),
            None => self.move_cursor(delta),
        }
    }
}
