//! The accounts browser overlay.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

use super::{overlay, pane_style};
use crate::app::{is_me, AccountsBrowser, App};
use crate::time;

pub fn render(frame: &mut Frame, area: Rect, app: &App, browser: &AccountsBrowser) {
    let boxed = crate::layout::accounts_box(area);
    let inner = overlay(
        frame,
        boxed,
        " Accounts — start a chat or build a group ",
        Style::default().fg(Color::Cyan),
    );
    let [pattern_area, list_area, footer_area] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(1),
        Constraint::Length(2),
    ])
    .areas(inner);

    let mut pattern = browser.pattern.clone();
    pattern.set_block(
        Block::default()
            .borders(Borders::ALL)
            .title(" Search (* and ? wildcards) ")
            .border_style(pane_style(!browser.list_focused)),
    );
    pattern.set_cursor_line_style(Style::default());
    if browser.list_focused {
        pattern.set_cursor_style(Style::default());
    }
    frame.render_widget(&pattern, pattern_area);

    let me = app.me.as_deref().unwrap_or_default();
    let items: Vec<ListItem> = browser
        .results
        .iter()
        .map(|account| {
            let marked = browser.marked.contains(&account.username);
            let (dot, dot_style, seen) = if account.online {
                ("●", Style::default().fg(Color::Green), "online".to_string())
            } else if account.last_seen_ms == 0 {
                (
                    "○",
                    Style::default().fg(Color::DarkGray),
                    "never seen".to_string(),
                )
            } else {
                (
                    "○",
                    Style::default().fg(Color::DarkGray),
                    format!("seen {}", time::ago(account.last_seen_ms, app.now_ms)),
                )
            };
            let you = if is_me(&account.username, me) {
                " (you)"
            } else {
                ""
            };
            ListItem::new(Line::from(vec![
                Span::raw(if marked { "[x] " } else { "[ ] " }),
                Span::styled(dot, dot_style),
                Span::raw(format!(" {:<24}", format!("{}{you}", account.username))),
                Span::styled(seen, Style::default().fg(Color::DarkGray)),
            ]))
        })
        .collect();
    let empty = items.is_empty();
    let list = List::new(items)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" Page {} ", browser.page_number()))
                .border_style(pane_style(browser.list_focused)),
        )
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected((!empty).then_some(browser.selected));
    frame.render_stateful_widget(list, list_area, &mut state);

    let status = if browser.loading {
        "Searching…".to_string()
    } else if empty {
        "No account matches.".to_string()
    } else {
        let more = if browser.next_after.is_empty() {
            "last page"
        } else {
            "n: next page"
        };
        let first = browser.first_shown() + 1;
        let last = browser.first_shown() + browser.results.len();
        let total = match browser.total {
            Some((n, true)) => format!(" of {n}"),
            Some((n, false)) => format!(" of {n}+"),
            None => String::new(),
        };
        format!(
            "{first}–{last}{total} · {} marked · {more}",
            browser.marked.len()
        )
    };
    let footer = vec![
        Line::styled(status, Style::default().fg(Color::Yellow)),
        Line::styled(
            "Enter chat · Space mark · g new group · m add to open group",
            Style::default().fg(Color::DarkGray),
        ),
    ];
    frame.render_widget(Paragraph::new(footer), footer_area);
}
