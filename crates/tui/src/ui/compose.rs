//! The compose box: multi-line, usable while offline.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use raftchat_proto::contract::MAX_BODY_BYTES;

use super::{one_line, pane_style, truncate_columns};
use crate::app::{App, ComposeMode, ConvKey, Focus, LinkState};
use crate::keys::{Action, Context};

/// Columns of a quoted message in the title while replying.
const QUOTE_COLUMNS: usize = 40;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let focused = app.focus == Focus::Compose && app.overlay.is_none();
    let to = app
        .conversations
        .open()
        .map_or_else(|| "nobody".to_string(), |conv| conv.label());
    let keymap = &app.config.keymap;
    let cancel = keymap.label_of(Context::Compose, Action::Back);
    let mode = Style::default().fg(Color::Yellow);
    let mut title = match &app.compose_mode {
        Some(ComposeMode::Editing { .. }) => vec![Span::styled(
            format!(
                " Editing your message · {}: save · {}: cancel ",
                keymap.label_of(Context::Editing, Action::Send),
                keymap.label_of(Context::Editing, Action::Back),
            ),
            mode,
        )],
        Some(ComposeMode::Replying { sender, text, .. }) => {
            let lead = format!(" Replying to {}: ", one_line(sender));
            let tail = format!(" · {cancel}: cancel ");
            // The quote gets what the border leaves of the title's room.
            let room = usize::from(area.width.saturating_sub(2))
                .saturating_sub(lead.width() + tail.width())
                .min(QUOTE_COLUMNS);
            let quote = truncate_columns(one_line(text).trim(), room);
            vec![Span::styled(format!("{lead}{quote}{tail}"), mode)]
        }
        None => vec![Span::raw(format!(" To {to} "))],
    };
    if matches!(app.conversations.open, Some(ConvKey::NewDirect(_))) {
        title.push(Span::styled(
            "(the first message starts the conversation) ",
            Style::default().fg(Color::DarkGray),
        ));
    }
    if !app.outbox.is_empty() {
        title.push(Span::styled(
            format!("· {} waiting to send ", app.outbox.len()),
            Style::default().fg(Color::Yellow),
        ));
    }
    let bytes = app.compose_body().len();
    if bytes > MAX_BODY_BYTES * 3 / 4 {
        let color = if bytes > MAX_BODY_BYTES {
            Color::Red
        } else {
            Color::Yellow
        };
        title.push(Span::styled(
            format!("· {bytes}/{MAX_BODY_BYTES} bytes "),
            Style::default().fg(color),
        ));
    }
    if app.link_state() == LinkState::NoQuorum {
        title.push(Span::styled(
            "· offline: messages are queued ",
            Style::default().fg(Color::Red),
        ));
    }
    let mut input = app.compose.clone();
    input.set_block(
        Block::default()
            .borders(Borders::ALL)
            .title(Line::from(title))
            .border_style(pane_style(focused)),
    );
    input.set_cursor_line_style(Style::default());
    if !focused {
        input.set_cursor_style(Style::default());
    }
    frame.render_widget(&input, area);
}
