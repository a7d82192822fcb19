//! Screen geometry, shared by drawing (`ui/`) and by the state (`app/`):
//! where a mouse click lands and how many rows a page has must agree with
//! what is drawn, so both compute it here, purely from the state and the
//! terminal size.

use ratatui::layout::{Constraint, Flex, Layout, Rect};

use crate::app::{App, Screen};

/// Height of the cluster panel: borders, header and five replicas.
const CLUSTER_PANEL_HEIGHT: u16 = 8;
/// Width of the conversation list, borders included.
pub const SIDEBAR_WIDTH: u16 = 28;
/// Most text lines the compose box shows before it scrolls.
const COMPOSE_MAX_LINES: u16 = 5;
/// The accounts browser's box at most.
pub const ACCOUNTS_BOX: (u16, u16) = (64, 40);
/// Rows of the accounts box that are not the list: its borders (2), the
/// pattern field (3), the list's borders (2) and the footer (2).
const ACCOUNTS_CHROME: u16 = 9;

/// The rows of the whole screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenAreas {
    pub body: Rect,
    pub cluster: Rect,
    pub notice: Rect,
    pub status: Rect,
    pub hints: Rect,
}

/// The panes of the chat screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatAreas {
    pub sidebar: Rect,
    pub messages: Rect,
    pub compose: Rect,
}

pub fn screen(full: Rect, app: &App) -> ScreenAreas {
    let notice_height = u16::from(app.notice.is_some());
    let cluster_height = if app.show_cluster {
        CLUSTER_PANEL_HEIGHT.max(u16::try_from(app.cluster.len()).unwrap_or(0) + 3)
    } else {
        0
    };
    let [body, cluster, notice, status, hints] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(cluster_height),
        Constraint::Length(notice_height),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(full);
    ScreenAreas {
        body,
        cluster,
        notice,
        status,
        hints,
    }
}

pub fn chat(body: Rect, app: &App) -> ChatAreas {
    let [sidebar, right] =
        Layout::horizontal([Constraint::Length(SIDEBAR_WIDTH), Constraint::Min(20)]).areas(body);
    let [messages, compose] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(compose_height(app))])
            .areas(right);
    ChatAreas {
        sidebar,
        messages,
        compose,
    }
}

/// Rows the compose box needs, borders included.
pub fn compose_height(app: &App) -> u16 {
    let lines = u16::try_from(app.compose.lines().len()).unwrap_or(COMPOSE_MAX_LINES);
    lines.clamp(1, COMPOSE_MAX_LINES) + 2
}

/// The first conversation the sidebar shows when `rows` fit: the list
/// scrolls just enough to keep the cursor in view (as ratatui's `List`
/// would; it is given this offset so both agree).
pub fn sidebar_offset(app: &App, rows: u16) -> usize {
    let cursor = app.conversations.cursor_index().unwrap_or(0);
    cursor.saturating_sub(usize::from(rows.max(1)) - 1)
}

/// The area inside a bordered box.
pub fn inner(area: Rect) -> Rect {
    Rect {
        x: area.x.saturating_add(1),
        y: area.y.saturating_add(1),
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    }
}

/// A rectangle of at most `width` x `height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

/// The accounts browser's box in the screen's body.
pub fn accounts_box(body: Rect) -> Rect {
    centered(body, ACCOUNTS_BOX.0, ACCOUNTS_BOX.1)
}

/// The search overlay's box in the screen's body (at most 90 x 30).
pub fn search_box(body: Rect) -> Rect {
    centered(body, 90, 30)
}

/// Accounts per page: as many as the list shows on this screen (at least
/// one; 10 before the size is known).
pub fn accounts_page_size(app: &App) -> u32 {
    let Some(full) = app.size else {
        return 10;
    };
    let body = screen(full, app).body;
    let rows = accounts_box(body).height.saturating_sub(ACCOUNTS_CHROME);
    u32::from(rows.max(1))
}

/// What a click at (`column`, `row`) is on, for the chat screen without
/// an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spot {
    /// The `n`th conversation of the sidebar's list.
    Conversation(usize),
    Sidebar,
    Messages,
    Compose,
}

pub fn spot(app: &App, column: u16, row: u16) -> Option<Spot> {
    let full = app.size?;
    if app.screen != Screen::Chat || app.overlay.is_some() {
        return None;
    }
    let areas = chat(screen(full, app).body, app);
    let at = ratatui::layout::Position::new(column, row);
    if areas.sidebar.contains(at) {
        let list = inner(areas.sidebar);
        if !list.contains(at) {
            return Some(Spot::Sidebar);
        }
        let index = sidebar_offset(app, list.height) + usize::from(row - list.y);
        return Some(if index < app.conversations.list.len() {
            Spot::Conversation(index)
        } else {
            Spot::Sidebar
        });
    }
    if areas.messages.contains(at) {
        return Some(Spot::Messages);
    }
    areas.compose.contains(at).then_some(Spot::Compose)
}
