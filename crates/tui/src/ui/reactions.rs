//! The reaction picker: the row of common emoji, the one chosen, and a
//! field to type any other.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::{centered, overlay};
use crate::app::{App, ReactPicker, COMMON_EMOJI};
use crate::keys::{Action, Chord, Context};

pub fn render(frame: &mut Frame, area: Rect, app: &App, picker: &ReactPicker) {
    let boxed = centered(area, 44, 9);
    let inner = overlay(frame, boxed, " React ", Style::default().fg(Color::Yellow));
    let [row_area, input_area, status_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(3),
        Constraint::Length(2),
    ])
    .areas(inner);

    let typed = !picker.input.lines().concat().trim().is_empty();
    let mut spans = Vec::new();
    for (i, emoji) in COMMON_EMOJI.iter().enumerate() {
        let mut style = Style::default();
        if picker.mine.as_deref() == Some(*emoji) {
            style = style.fg(Color::Cyan).add_modifier(Modifier::UNDERLINED);
        }
        if i == picker.selected && !typed {
            style = style.add_modifier(Modifier::REVERSED);
        }
        spans.push(Span::raw(" "));
        spans.push(Span::styled(emoji.to_string(), style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), row_area);

    let mut input = picker.input.clone();
    input.set_block(Block::default().borders(Borders::ALL));
    input.set_cursor_line_style(Style::default());
    frame.render_widget(&input, input_area);

    let keymap = &app.config.keymap;
    // The first key of each, to fit: `←/→: choose`.
    let first = |action: Action| {
        keymap
            .bindings()
            .iter()
            .find(|b| b.context == Context::React && b.action == action)
            .and_then(|b| b.keys.first())
            .map(Chord::label)
            .unwrap_or_default()
    };
    let status = match &picker.error {
        Some(error) => Line::styled(error.clone(), Style::default().fg(Color::Red)),
        None => Line::styled(
            format!(
                "{}/{}: choose  {}: toggle  {}: cancel",
                first(Action::Up),
                first(Action::Down),
                first(Action::Submit),
                first(Action::Cancel),
            ),
            Style::default().fg(Color::DarkGray),
        ),
    };
    frame.render_widget(Paragraph::new(status), status_area);
}
