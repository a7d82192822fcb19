//! The status line: server, leader, term, RTT and the connection state.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{App, LinkState};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let connection = &app.connection;
    let mut spans = state_spans(app);
    let sep = || Span::styled(" │ ", Style::default().fg(Color::DarkGray));

    let server = connection
        .server()
        .map(str::to_string)
        .or_else(|| app.config.servers.first().cloned())
        .unwrap_or_default();
    spans.push(sep());
    spans.push(Span::raw(format!("server {server}")));
    spans.push(sep());
    spans.push(Span::raw(match &connection.leader {
        Some((id, url)) if !url.is_empty() => format!("leader {id} {url}"),
        Some((id, _)) => format!("leader {id}"),
        None if connection.has_polled() => "no leader".to_string(),
        None => "leader ?".to_string(),
    }));
    spans.push(sep());
    spans.push(Span::raw(match connection.term {
        Some(term) => format!("term {term}"),
        None => "term ?".to_string(),
    }));
    spans.push(sep());
    // Only a round trip of now: the library keeps the last one forever.
    let silence = connection
        .server()
        .and_then(|server| connection.silence_ms(server, app.now_ms));
    spans.push(Span::raw(
        match (connection.fresh_rtt(app.now_ms), silence) {
            (Some(rtt), _) => format!("rtt {} ms", rtt.as_millis()),
            (None, Some(ms)) => format!("no answer for {} s", ms.div_ceil(1000)),
            (None, None) => "rtt ?".to_string(),
        },
    ));
    // No background of its own: a fixed one was unreadable on light
    // themes.
    let line = Line::from(spans);
    frame.render_widget(Paragraph::new(line), area);
}

fn state_spans(app: &App) -> Vec<Span<'static>> {
    let bold = |color| Style::default().fg(color).add_modifier(Modifier::BOLD);
    match app.link_state() {
        LinkState::Connecting => vec![Span::styled(
            format!("{} connecting", spinner(app.ticks)),
            bold(Color::Yellow),
        )],
        LinkState::Connected => vec![Span::styled("● connected", bold(Color::Green))],
        LinkState::LeaderChanged => vec![Span::styled("◆ leader changed", bold(Color::Cyan))],
        LinkState::Reconnecting { next, error } => {
            let mut spans = vec![Span::styled(
                format!(
                    "{} reconnecting → {}",
                    spinner(app.ticks),
                    next.unwrap_or_else(|| "?".to_string())
                ),
                bold(Color::Yellow),
            )];
            if let Some(error) = error {
                spans.push(Span::styled(
                    format!(" ({})", super::truncate(&error, 28)),
                    Style::default().fg(Color::DarkGray),
                ));
            }
            spans
        }
        LinkState::Silent { server, for_ms } => vec![Span::styled(
            format!(
                "{} waiting for {server} ({} s)",
                spinner(app.ticks),
                for_ms.div_ceil(1000)
            ),
            bold(Color::Yellow),
        )],
        LinkState::NoQuorum => vec![Span::styled(
            "✗ no quorum",
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        )],
    }
}

fn spinner(ticks: u64) -> &'static str {
    SPINNER[usize::try_from(ticks % SPINNER.len() as u64).unwrap_or(0)]
}

/// The transient notice line, when there is one.
pub fn render_notice(frame: &mut Frame, area: Rect, app: &App) {
    let Some(notice) = &app.notice else {
        return;
    };
    let style = if notice.is_error {
        Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::default().fg(Color::Green)
    };
    frame.render_widget(
        Paragraph::new(Line::styled(notice.text.clone(), style)),
        area,
    );
}
