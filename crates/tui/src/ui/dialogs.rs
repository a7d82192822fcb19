//! Small modal dialogs: yes/no confirmations and one-line questions.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::{centered, overlay};
use crate::app::{App, ConfirmKind, Prompt, PromptKind};
use crate::keys::{Action, Context};

pub fn render_confirm(frame: &mut Frame, area: Rect, app: &App, kind: &ConfirmKind) {
    let (yes, no, question, detail) = match kind {
        ConfirmKind::DeleteMessages(ids) => (
            "yes",
            "no",
            format!("Delete {} message(s) for everyone?", ids.len()),
            None,
        ),
        ConfirmKind::Quit { waiting } => (
            "quit anyway",
            "stay",
            format!("{} Quit anyway?", waiting_text(*waiting)),
            Some(kept_text(app, *waiting)),
        ),
        ConfirmKind::Logout { waiting } => (
            "log out anyway",
            "stay",
            format!("{} Log out anyway?", waiting_text(*waiting)),
            Some(kept_text(app, *waiting)),
        ),
    };
    let height = if detail.is_some() { 6 } else { 5 };
    let boxed = centered(area, 60, height);
    frame.render_widget(Clear, boxed);
    let mut text = vec![Line::styled(
        question,
        Style::default().add_modifier(Modifier::BOLD),
    )];
    if let Some(detail) = detail {
        text.push(Line::raw(detail));
    }
    text.push(Line::styled(
        format!(
            "{}: {yes}    {}: {no}",
            app.config
                .keymap
                .label_of(Context::Confirm, Action::Confirm),
            app.config.keymap.label_of(Context::Confirm, Action::Cancel)
        ),
        Style::default().fg(Color::DarkGray),
    ));
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

fn waiting_text(waiting: usize) -> String {
    match waiting {
        1 => "1 message is waiting to be sent.".to_string(),
        n => format!("{n} messages are waiting to be sent."),
    }
}

/// What becomes of waiting messages if the user goes anyway.
fn kept_text(app: &App, waiting: usize) -> String {
    let (they, them) = if waiting == 1 {
        ("It is", "it")
    } else {
        ("They are", "them")
    };
    if let Some(user) = app.saved.user.as_ref().filter(|_| app.saved.available) {
        format!("{they} saved on this computer and sent when you next sign in as {user}.")
    } else {
        let they = if waiting == 1 { "It" } else { "They" };
        format!("{they} could not be saved on this computer: going now loses {them}.")
    }
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
    let inner = overlay(frame, boxed, title, Style::default().fg(Color::Yellow));
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
