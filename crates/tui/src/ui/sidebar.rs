//! The conversation list: latest activity first, unread counts, presence.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState};
use ratatui::Frame;

use super::{pane_style, truncate};
use crate::app::{App, ConvKey, Conversation, Focus};
use crate::model::ConversationKind;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let total = app.total_unread();
    let title = if total > 0 {
        format!(" Conversations ({total} unread) ")
    } else {
        " Conversations ".to_string()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(pane_style(
            app.focus == Focus::Sidebar && app.overlay.is_none(),
        ));
    let width = usize::from(block.inner(area).width);
    let rows = block.inner(area).height;
    let items: Vec<ListItem> = app
        .conversations
        .list
        .iter()
        .map(|conv| ListItem::new(item_line(app, conv, width)))
        .collect();
    let empty = items.is_empty();
    let list = List::new(items)
        .block(block)
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let offset = crate::layout::sidebar_offset(app, rows);
    let mut state = ListState::default()
        .with_offset(offset)
        .with_selected(app.conversations.cursor_index());
    frame.render_stateful_widget(list, area, &mut state);
    if empty {
        let hint = Line::styled(" a: find people", Style::default().fg(Color::DarkGray));
        let inner = Rect {
            x: area.x + 1,
            y: area.y + 1,
            width: area.width.saturating_sub(2),
            height: 1,
        };
        frame.render_widget(hint, inner);
    }
}

fn item_line(app: &App, conv: &Conversation, width: usize) -> Line<'static> {
    let (marker, marker_style) = match conv.kind {
        ConversationKind::Group => ("#", Style::default().fg(Color::Blue)),
        ConversationKind::Direct => match app.presence.get(&conv.name) {
            Some(p) if p.online => ("●", Style::default().fg(Color::Green)),
            Some(_) => ("○", Style::default().fg(Color::DarkGray)),
            None => ("·", Style::default().fg(Color::DarkGray)),
        },
    };
    // `@` before the count: an unread message names us.
    let unread = match conv.unread {
        0 => String::new(),
        n if conv.mentioned_unread() => format!(" @{n}"),
        n => format!(" {n}"),
    };
    let draft = matches!(conv.key, ConvKey::NewDirect(_));
    let name_width = width
        .saturating_sub(2)
        .saturating_sub(unread.chars().count());
    let mut name = truncate(&conv.name, name_width);
    if draft && name.chars().count() + 6 <= name_width {
        name.push_str(" (new)");
    }
    let pad = name_width.saturating_sub(name.chars().count());
    let name_style = if conv.unread > 0 {
        Style::default().add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    Line::from(vec![
        Span::styled(marker, marker_style),
        Span::raw(" "),
        Span::styled(name, name_style),
        Span::raw(" ".repeat(pad)),
        Span::styled(
            unread,
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ),
    ])
}
