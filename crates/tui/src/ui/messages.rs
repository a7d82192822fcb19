//! The message pane: day separators, sender and time, delivery marks for
//! own messages, a cursor for selection and a "N more below" indicator.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::pane_style;
use crate::app::{App, Conversation, Delivery, Entry, Focus};
use crate::model::ConversationKind;
use crate::time;

/// Width of the `HH:MM ` column; continuation lines are indented by it.
const TIME_COLUMN: usize = 6;

/// The mark after an own message's sender name.
pub fn delivery_mark(entry: &Entry) -> &'static str {
    if entry.failed.is_some() {
        return "✗";
    }
    match entry.delivery {
        Some(Delivery::Queued) => "◌",
        Some(Delivery::Accepted) => "○",
        Some(Delivery::Committed) => "✓",
        None => "",
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let focused = app.focus == Focus::Messages && app.overlay.is_none();
    let Some(conv) = app.conversations.open() else {
        let block = Block::default()
            .borders(Borders::ALL)
            .title(" Messages ")
            .border_style(pane_style(focused));
        let hint = Paragraph::new(Line::styled(
            "No conversation open. Press a to find people and start one.",
            Style::default().fg(Color::DarkGray),
        ))
        .block(block);
        frame.render_widget(hint, area);
        return;
    };
    let title = match conv.kind {
        ConversationKind::Group => format!(" #{} · {} ", conv.name, conv.members.join(", ")),
        ConversationKind::Direct => format!(" {} ", conv.name),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(super::truncate(
            &title,
            usize::from(area.width.saturating_sub(4)),
        ))
        .border_style(pane_style(focused));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = visible_lines(app, conv, inner, focused);
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The lines that fit in `area`, ending with the cursor message.
fn visible_lines(app: &App, conv: &Conversation, area: Rect, focused: bool) -> Vec<Line<'static>> {
    let width = usize::from(area.width).max(TIME_COLUMN + 1);
    let height = usize::from(area.height);
    let entries = &conv.log.entries;
    if entries.is_empty() {
        let text = if conv.log.loading || !conv.log.loaded {
            "Loading…"
        } else {
            "No messages yet. Say hello!"
        };
        return vec![Line::styled(text, Style::default().fg(Color::DarkGray))];
    }
    let bottom = app
        .view
        .anchor
        .and_then(|key| conv.log.position(key))
        .unwrap_or(entries.len() - 1);
    let below = entries.len() - 1 - bottom;

    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut previous_day = None;
    for (index, entry) in entries.iter().enumerate().take(bottom + 1) {
        let day = time::day_of(entry.sent_ms, app.config.utc_offset_secs);
        if previous_day != Some(day) {
            lines.push(day_separator(day, width));
            previous_day = Some(day);
        }
        let selected = focused && index == bottom;
        let marked = entry.id.is_some_and(|id| app.view.marked.contains(&id));
        lines.extend(entry_lines(app, entry, width, selected, marked));
    }

    let mut room = height;
    let indicator = (below > 0).then(|| {
        Line::styled(
            format!("  ↓ {below} more below (G: newest)"),
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )
    });
    if indicator.is_some() {
        room = room.saturating_sub(1);
    }
    let mut shown: Vec<Line<'static>> = if lines.len() > room {
        lines.split_off(lines.len() - room)
    } else {
        let mut top = Vec::new();
        if conv.log.more {
            top.push(Line::styled(
                "  ↑ older messages: scroll up to load",
                Style::default().fg(Color::DarkGray),
            ));
        }
        if top.len() + lines.len() > room {
            top.clear();
        }
        top.extend(lines);
        top
    };
    if let Some(indicator) = indicator {
        shown.push(indicator);
    }
    shown
}

fn day_separator(day: time::Day, width: usize) -> Line<'static> {
    let label = format!(" {} ", time::day_label(day));
    let side = width.saturating_sub(label.chars().count()) / 2;
    Line::styled(
        format!("{}{label}{}", "─".repeat(side), "─".repeat(side)),
        Style::default().fg(Color::DarkGray),
    )
}

fn entry_lines(
    app: &App,
    entry: &Entry,
    width: usize,
    selected: bool,
    marked: bool,
) -> Vec<Line<'static>> {
    let clock = time::clock(entry.sent_ms, app.config.utc_offset_secs);
    let sender_style = if entry.is_own() {
        Style::default()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
            .fg(Color::Magenta)
            .add_modifier(Modifier::BOLD)
    };
    let mut header = vec![
        Span::styled(
            if marked {
                "»".to_string()
            } else {
                String::new()
            } + &clock
                + " ",
            Style::default().fg(Color::DarkGray),
        ),
        Span::styled(entry.sender.clone(), sender_style),
    ];
    let mark = delivery_mark(entry);
    if !mark.is_empty() {
        let style = if entry.failed.is_some() {
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(Color::Green)
        };
        header.push(Span::styled(format!(" {mark}"), style));
    }
    if let Some(reason) = &entry.failed {
        header.push(Span::styled(
            format!(" not sent: {reason} (r: retry)"),
            Style::default().fg(Color::Red),
        ));
    }
    let mut lines = vec![Line::from(header)];
    let indent = " ".repeat(TIME_COLUMN);
    for text_line in entry.body.split('\n') {
        for chunk in wrap(text_line, width - TIME_COLUMN) {
            lines.push(Line::raw(format!("{indent}{chunk}")));
        }
    }
    if selected {
        for line in &mut lines {
            line.style = Style::default().add_modifier(Modifier::REVERSED);
        }
    }
    lines
}

/// Splits `text` into pieces of at most `width` characters, preferring
/// to break at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let word_len = word.chars().count();
        let current_len = current.chars().count();
        if current_len > 0 && current_len + 1 + word_len > width {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        while current.chars().count() > width {
            let head: String = current.chars().take(width).collect();
            current = current.chars().skip(width).collect();
            out.push(head);
        }
    }
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("hello world", 5), vec!["hello", "world"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("", 3), vec![""]);
    }
}
