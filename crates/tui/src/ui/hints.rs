//! The key-hint bar, generated from the bindings table for the active contexts.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::App;
use crate::keys;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let width = usize::from(area.width);
    let mut used = 0;
    let mut spans = Vec::new();
    for binding in keys::hints(&app.contexts()) {
        let keys = binding.keys_label();
        let cost = keys.chars().count() + binding.description.chars().count() + 3;
        if used + cost > width {
            break;
        }
        used += cost;
        spans.push(Span::styled(
            keys,
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(
            format!(" {}  ", binding.description),
            Style::default().fg(Color::Gray),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
