//! The help overlay, generated from the same bindings table as the hint bar.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::centered;
use crate::keys::{Context, Keymap};

/// The help text: every context with its bindings, then the legend.
pub fn help_lines(keymap: &Keymap) -> Vec<Line<'static>> {
    let mut contexts: Vec<Context> = Vec::new();
    for binding in keymap.bindings() {
        if !contexts.contains(&binding.context) {
            contexts.push(binding.context);
        }
    }
    let mut lines = Vec::new();
    for context in contexts {
        lines.push(Line::styled(
            context.title(),
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
        for binding in keymap.bindings().iter().filter(|b| b.context == context) {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {:<18}", binding.keys_label()),
                    Style::default().fg(Color::Cyan),
                ),
                Span::raw(binding.description),
            ]));
        }
    }
    lines.push(Line::default());
    lines.push(Line::styled(
        "Own messages: ◌ queued  ○ accepted (in flight)  ✓ committed  ✗ failed",
        Style::default().fg(Color::Gray),
    ));
    lines.push(Line::styled(
        "Mouse: click a conversation to open it, the wheel scrolls; M or F3 turns the mouse off so the terminal selects text.",
        Style::default().fg(Color::Gray),
    ));
    lines.push(Line::styled(
        "Messages typed offline are sent in order once a quorum is back; unsent text survives a restart.",
        Style::default().fg(Color::Gray),
    ));
    lines
}

pub fn render(frame: &mut Frame, area: Rect, keymap: &Keymap, scroll: u16) {
    let width = area.width.saturating_sub(8).min(90);
    let height = area.height.saturating_sub(4);
    let boxed = centered(area, width, height);
    frame.render_widget(Clear, boxed);
    let help = Paragraph::new(help_lines(keymap))
        .scroll((scroll, 0))
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Help — ↑/↓ scroll, Esc or ? close ")
                .border_style(Style::default().fg(Color::Cyan)),
        );
    frame.render_widget(help, boxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_binding_of_the_table() {
        let keymap = Keymap::default();
        let text: Vec<String> = help_lines(&keymap).iter().map(|l| l.to_string()).collect();
        for binding in crate::keys::BINDINGS {
            let row = format!("  {:<18}{}", binding.keys_label(), binding.description);
            assert!(text.contains(&row), "missing from help: {row}");
        }
    }
}
