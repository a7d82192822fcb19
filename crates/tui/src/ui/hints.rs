//! The key-hint bar, generated from the bindings table for the active contexts.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::App;
use crate::keys;

/// The hints that fit, in the table's order (skipping any too long for the
/// room left); the way to the help overlay
/// (which lists every key) is kept at the end whenever it is available.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let width = usize::from(area.width);
    let cost =
        |b: &keys::Binding| b.keys_label().chars().count() + b.description.chars().count() + 3;
    let contexts = app.contexts();
    let hints = app.config.keymap.hints(&contexts);
    let help = hints
        .iter()
        .copied()
        .find(|b| b.action == keys::Action::ToggleHelp);
    let mut used = help.map_or(0, cost);
    let mut shown: Vec<&keys::Binding> = Vec::new();
    for binding in hints
        .iter()
        .copied()
        .filter(|b| !help.is_some_and(|h| std::ptr::eq(*b, h)))
    {
        // One that does not fit is skipped; a shorter one after it may.
        if used + cost(binding) > width {
            continue;
        }
        used += cost(binding);
        shown.push(binding);
    }
    shown.extend(help.filter(|h| cost(h) <= width));
    let mut spans = Vec::new();
    for binding in shown {
        spans.push(Span::styled(
            binding.keys_label(),
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
