//! The sign-in / create-account screen.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use ratatui_textarea::TextArea;

use super::{centered, overlay, pane_style};
use crate::app::{App, Field, Pending};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let form = &app.sign_in;
    let boxed = centered(area, 56, 13);
    let inner = overlay(
        frame,
        boxed,
        " raftchat — sign in or create an account ",
        pane_style(true),
    );

    let [_, user_area, pass_area, _, message_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);

    field(
        frame,
        user_area,
        "User name",
        &form.username,
        form.field == Field::Username,
    );
    field(
        frame,
        pass_area,
        "Password",
        &form.password,
        form.field == Field::Password,
    );

    let message = match (&form.pending, &form.error, &form.info) {
        (Some(Pending::SigningIn), _, _) => {
            Line::styled("Signing in…", Style::default().fg(Color::Yellow))
        }
        (Some(Pending::Creating), _, _) => {
            Line::styled("Creating the account…", Style::default().fg(Color::Yellow))
        }
        (None, Some(error), _) => Line::styled(
            error.clone(),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        (None, None, Some(info)) => Line::styled(info.clone(), Style::default().fg(Color::Green)),
        (None, None, None) => Line::default(),
    };
    frame.render_widget(
        Paragraph::new(message).wrap(ratatui::widgets::Wrap { trim: true }),
        message_area,
    );
}

fn field(frame: &mut Frame, area: Rect, title: &str, input: &TextArea<'static>, focused: bool) {
    let mut input = input.clone();
    input.set_block(
        Block::default()
            .borders(Borders::ALL)
            .title(format!(" {title} "))
            .border_style(pane_style(focused)),
    );
    input.set_cursor_line_style(Style::default());
    if !focused {
        input.set_cursor_style(Style::default());
    }
    frame.render_widget(&input, area);
}
