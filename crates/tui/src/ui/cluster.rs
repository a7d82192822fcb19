//! The cluster panel: every replica as it reports itself.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};
use ratatui::Frame;

use crate::app::App;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let header = Row::new([
        "id",
        "url",
        "role",
        "term",
        "leader",
        "commit",
        "applied",
        "reachable",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = app.cluster.iter().map(|report| match &report.status {
        Ok(s) => {
            let role_style = match (s.role.as_str(), s.has_quorum) {
                (_, Some(false)) => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
                ("leader", _) => Style::default()
                    .fg(Color::Green)
                    .add_modifier(Modifier::BOLD),
                ("candidate", _) => Style::default().fg(Color::Yellow),
                _ => Style::default(),
            };
            Row::new(vec![
                Cell::from(s.id.to_string()),
                Cell::from(if s.url.is_empty() {
                    report.server.clone()
                } else {
                    s.url.clone()
                }),
                Cell::from(s.role_label()).style(role_style),
                Cell::from(s.term.to_string()),
                Cell::from(if s.leader_id == 0 {
                    "-".to_string()
                } else {
                    s.leader_id.to_string()
                }),
                Cell::from(s.commit_index.to_string()),
                Cell::from(s.applied_index.to_string()),
                Cell::from("yes").style(Style::default().fg(Color::Green)),
            ])
        }
        Err(reason) => Row::new(vec![
            Cell::from("?"),
            Cell::from(report.server.clone()),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from(format!("no: {reason}")).style(Style::default().fg(Color::Red)),
        ]),
    });
    // "follower (no quorum)" when a replica sees no quorum.
    let role_width = app
        .cluster
        .iter()
        .filter_map(|r| r.status.as_ref().ok())
        .map(|s| s.role_label().len() as u16)
        .max()
        .unwrap_or(0)
        .max(10);
    let widths = [
        Constraint::Length(3),
        Constraint::Length(24),
        Constraint::Length(role_width),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths).header(header).block(
        Block::default()
            .borders(Borders::ALL)
            .title(" Cluster (c / F2 to hide) ")
            .border_style(Style::default().fg(Color::DarkGray)),
    );
    frame.render_widget(table, area);
}
