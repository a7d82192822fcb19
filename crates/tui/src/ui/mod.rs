//! Rendering: `draw(frame, &app)` is a pure function of the state.
//!
//! One file per part of the screen; each exposes `render(frame, area, app)`.

mod accounts;
mod cluster;
mod compose;
mod dialogs;
mod help;
mod hints;
mod messages;
mod reactions;
mod search;
mod sidebar;
mod sign_in;
mod status;
mod theme;

pub use messages::shown_up_to;
pub use theme::Theme;

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear};
use ratatui::Frame;

use super::app::{App, Overlay, Screen};
use super::layout;

/// Draws the whole screen for `app`.
/// Whether the user asked for no colours (`NO_COLOR` set and not empty,
/// no-color.org).
pub fn no_color_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Makes `NO_COLOR` mean "no colours" and nothing more. crossterm honours
/// it by writing an empty SGR sequence for every colour change, which
/// terminals read as "reset everything": the selection's reverse video and
/// bold went with it, and the selection was invisible. crossterm is told
/// to write colours as usual, and [`strip_colors`] takes them out of each
/// frame instead.
pub fn honour_no_color() {
    crossterm::style::Colored::set_ansi_color_disabled(false);
}

/// Drops every colour from a drawn frame, keeping bold, reverse video and
/// the other modifiers.
pub fn strip_colors(buffer: &mut ratatui::buffer::Buffer) {
    for cell in buffer.content.iter_mut() {
        cell.set_fg(Color::Reset);
        cell.set_bg(Color::Reset);
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let areas = layout::screen(frame.area(), app);
    let body = areas.body;
    match app.screen {
        Screen::SignIn => sign_in::render(frame, body, app),
        Screen::Chat => render_chat(frame, body, app),
    }
    if app.show_cluster {
        cluster::render(frame, areas.cluster, app);
    }
    status::render_notice(frame, areas.notice, app);
    status::render(frame, areas.status, app);
    hints::render(frame, areas.hints, app);

    match &app.overlay {
        Some(Overlay::Help { scroll }) => {
            help::render(frame, frame.area(), &app.config.keymap, *scroll);
        }
        Some(Overlay::Accounts(browser)) => accounts::render(frame, body, app, browser),
        Some(Overlay::Confirm(kind)) => dialogs::render_confirm(frame, body, app, kind),
        Some(Overlay::Prompt(prompt)) => dialogs::render_prompt(frame, body, prompt),
        Some(Overlay::React(picker)) => reactions::render(frame, body, app, picker),
        Some(Overlay::Search(panel)) => search::render(frame, body, app, panel),
        None => {}
    }
    app.config.theme.apply(frame.buffer_mut());
}

fn render_chat(frame: &mut Frame, area: Rect, app: &App) {
    let areas = layout::chat(area, app);
    sidebar::render(frame, areas.sidebar, app);
    messages::render(frame, areas.messages, app);
    compose::render(frame, areas.compose, app);
}

pub(crate) use crate::layout::centered;

/// Clears `boxed` over whatever is under it and draws a bordered box
/// there, `title` on its top edge in `border`'s style; returns the area
/// inside the border. Every overlay starts this way.
pub(crate) fn overlay<'a>(
    frame: &mut Frame,
    boxed: Rect,
    title: impl Into<Line<'a>>,
    border: Style,
) -> Rect {
    frame.render_widget(Clear, boxed);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(border);
    let inner = block.inner(boxed);
    frame.render_widget(block, boxed);
    inner
}

/// Border style of a pane: highlighted when it has the keyboard.
pub(crate) fn pane_style(focused: bool) -> Style {
    if focused {
        Style::default()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default().fg(Color::DarkGray)
    }
}

/// `text` cut to `width` characters, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text` on one line: line breaks, tabs and every other control
/// character become spaces (for quotes and titles; ratatui drops control
/// characters anyway, but a line break must not glue words together).
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text` cut to at most `width` terminal columns, by whole grapheme
/// clusters (an emoji is two columns and is never split), with an
/// ellipsis when cut.
pub(crate) fn truncate_columns(text: &str, width: usize) -> String {
    use unicode_segmentation::UnicodeSegmentation;
    use unicode_width::UnicodeWidthStr;
    if text.width() <= width {
        return text.to_string();
    }
    let room = width.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for grapheme in text.graphemes(true) {
        let w = grapheme.width();
        if used + w > room {
            break;
        }
        out.push_str(grapheme);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}
