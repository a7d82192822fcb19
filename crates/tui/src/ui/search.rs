//! The search overlay (`/`): the query, then the matches newest first,
//! each `23 Nov 09:05  bob  …text with the match…` on one line.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};
use ratatui::Frame;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::{one_line, overlay, pane_style, truncate_columns};
use crate::app::{App, SearchPanel};
use crate::time;

/// Columns of the sender's name in a row.
const SENDER_COLUMNS: usize = 12;

pub fn render(frame: &mut Frame, area: Rect, app: &App, panel: &SearchPanel) {
    let boxed = crate::layout::search_box(area);
    let name = app
        .conversations
        .list
        .iter()
        .find(|c| c.id() == Some(panel.conversation_id))
        .map(|c| c.label())
        .unwrap_or_default();
    let title = format!(" Search {} ", one_line(&name));
    let inner = overlay(
        frame,
        boxed,
        truncate_columns(&title, usize::from(boxed.width.saturating_sub(2))),
        Style::default().fg(Color::Cyan),
    );
    let [query_area, list_area, footer_area] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);

    let mut input = panel.input.clone();
    input.set_block(
        Block::default()
            .borders(Borders::ALL)
            .border_style(pane_style(!panel.list_focused)),
    );
    input.set_cursor_line_style(Style::default());
    if panel.list_focused {
        input.set_cursor_style(Style::default());
    }
    frame.render_widget(&input, query_area);

    let list_block = Block::default()
        .borders(Borders::ALL)
        .border_style(pane_style(panel.list_focused));
    let width = usize::from(list_block.inner(list_area).width);
    let query = panel.searched.as_deref().unwrap_or_default();
    let items: Vec<ListItem> = panel
        .results
        .iter()
        .map(|m| {
            let when = time::date_time(m.sent_ms, &app.config.time_zone);
            let sender = truncate_columns(&one_line(&m.sender), SENDER_COLUMNS);
            let pad = " ".repeat(SENDER_COLUMNS.saturating_sub(sender.width()));
            let lead = format!("{when}  ");
            let room = width.saturating_sub(lead.width() + SENDER_COLUMNS + 2);
            let mut spans = vec![
                Span::styled(lead, Style::default().fg(Color::DarkGray)),
                Span::styled(
                    format!("{sender}{pad}  "),
                    Style::default().fg(Color::Magenta),
                ),
            ];
            spans.extend(snippet(&m.body, query, room));
            ListItem::new(Line::from(spans))
        })
        .collect();
    let empty = items.is_empty();
    let list = List::new(items)
        .block(list_block)
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected((!empty).then_some(panel.selected));
    frame.render_stateful_widget(list, list_area, &mut state);

    let status = match &panel.searched {
        _ if panel.loading && empty => "Searching…".to_string(),
        None => "Type words to find in this conversation, then Enter.".to_string(),
        Some(query) if empty => format!("No messages match “{}”.", one_line(query)),
        Some(_) => {
            let count = panel.results.len();
            let noun = if count == 1 { "match" } else { "matches" };
            let tail = if panel.loading {
                " · loading more…"
            } else if panel.more {
                " · more at the end of the list"
            } else {
                ""
            };
            format!("{count} {noun}{tail} · Enter: go to message")
        }
    };
    let status = truncate_columns(&status, usize::from(footer_area.width));
    frame.render_widget(
        Paragraph::new(Line::styled(status, Style::default().fg(Color::Yellow))),
        footer_area,
    );
}

/// The text of a match on one line, at most `width` columns, with the
/// first place `query` occurs (ignoring case) highlighted and kept in
/// view: the text before it is cut from the left when it would push it
/// out.
fn snippet(body: &str, query: &str, width: usize) -> Vec<Span<'static>> {
    let text = one_line(body);
    let Some((start, end)) = find_ignoring_case(&text, query) else {
        return vec![Span::raw(truncate_columns(&text, width))];
    };
    let (before, hit, after) = (&text[..start], &text[start..end], &text[end..]);
    // When the match would not fit, at most a third of the room before it.
    let lead_room = width / 3;
    let before = if before.width() + hit.width() > width && before.width() > lead_room {
        format!("…{}", tail_columns(before, lead_room.saturating_sub(1)))
    } else {
        before.to_string()
    };
    let mut left = width.saturating_sub(before.width());
    let hit = truncate_columns(hit, left);
    left = left.saturating_sub(hit.width());
    let after = truncate_columns(after, left);
    vec![
        Span::raw(before),
        Span::styled(
            hit,
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        ),
        Span::raw(after),
    ]
}

/// The byte range of the first place `needle` occurs in `text`, character
/// by character ignoring case; `None` if it does not (or is empty).
fn find_ignoring_case(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    let same = |a: char, b: char| a == b || a.to_lowercase().eq(b.to_lowercase());
    text.char_indices().find_map(|(start, _)| {
        let mut rest = text[start..].char_indices();
        for wanted in needle.chars() {
            match rest.next() {
                Some((_, c)) if same(c, wanted) => {}
                _ => return None,
            }
        }
        let end = rest.next().map_or(text.len(), |(i, _)| start + i);
        Some((start, end))
    })
}

/// The end of `text` that fits in `width` columns, by whole graphemes.
fn tail_columns(text: &str, width: usize) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 0;
    for grapheme in text.graphemes(true).rev() {
        let w = grapheme.width();
        if used + w > width {
            break;
        }
        used += w;
        kept.push(grapheme);
    }
    kept.reverse();
    kept.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(spans: &[Span]) -> String {
        spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn the_match_is_found_ignoring_case_and_kept_in_view() {
        assert_eq!(find_ignoring_case("Hello World", "world"), Some((6, 11)));
        assert_eq!(find_ignoring_case("ÉCOLE é", "école"), Some((0, 6)));
        assert_eq!(find_ignoring_case("abc", "abcd"), None);
        assert_eq!(find_ignoring_case("abc", ""), None);
        let body = format!("{} needle and the rest", "x ".repeat(40));
        let spans = snippet(&body, "NEEDLE", 30);
        assert_eq!(spans[1].content, "needle");
        assert!(text(&spans).starts_with('…'), "{spans:?}");
        assert!(text(&spans).width() <= 30, "{spans:?}");
        // Wide characters count double; nothing past the width.
        let spans = snippet("漢字漢字 needle 漢字漢字漢字漢字漢字", "needle", 20);
        assert!(text(&spans).width() <= 20, "{spans:?}");
        assert_eq!(spans[1].content, "needle");
        // Control characters never reach the terminal.
        let spans = snippet("a\u{1b}[2J needle\u{7}", "needle", 40);
        assert!(!text(&spans).chars().any(char::is_control), "{spans:?}");
    }
}
