//! Small modal dialogs: yes/no confirmations and one-line questions.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::centered;
use crate::app::{ConfirmKind, Prompt, PromptKind};

pub fn render_confirm(frame: &mut Frame, area: Rect, kind: &ConfirmKind) {
    let question = match kind {
        ConfirmKind::DeleteMessages(ids) => {
            format!("Delete {} message(s) for everyone?", ids.len())
        }
    };
    let boxed = centered(area, 50, 5);
    frame.render_widget(Clear, boxed);
    let text = vec![
        Line::styled(question, Style::default().add_modifier(Modifier::BOLD)),
        Line::styled(
            "y / Enter: yes    n / Esc: no",
            Style::default().fg(Color::DarkGray),
        ),
    ];
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Confirm ")
                .border_style(Style::default().fg(Color::Yellow)),
        ),
        boxed,
    );
}

pub fn render_prompt(frame: &mut Frame, area: Rect, prompt: &Prompt) {
    let (title, question) = match &prompt.kind {
        PromptKind::GroupName { members } => (
            " New group ",
            if members.is_empty() {
                "Group name (just you for now):".to_string()
            } else {
                format!("Group name, with {}:", members.join(", "))
            },
        ),
        PromptKind::DeleteAccountPassword => (
            " Delete account ",
            "This deletes your account for good. Type your password to confirm:".to_string(),
        ),
    };
    let boxed = centered(area, 60, 9);
    frame.render_widget(Clear, boxed);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(Style::default().fg(Color::Yellow));
    let inner = block.inner(boxed);
    frame.render_widget(block, boxed);
    let [question_area, input_area, status_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(3),
        Constraint::Length(2),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(question).wrap(Wrap { trim: true }),
        question_area,
    );
    let mut input = prompt.input.clone();
    input.set_block(Block::default().borders(Borders::ALL));
    input.set_cursor_line_style(Style::default());
    frame.render_widget(&input, input_area);
    let status = match (&prompt.error, prompt.busy) {
        (_, true) => Line::styled("Working…", Style::default().fg(Color::Yellow)),
        (Some(error), false) => Line::styled(error.clone(), Style::default().fg(Color::Red)),
        (None, false) => Line::styled(
            "Enter: ok    Esc: cancel",
            Style::default().fg(Color::DarkGray),
        ),
    };
    frame.render_widget(Paragraph::new(status), status_area);
}
