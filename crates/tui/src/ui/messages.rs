//! The message pane: day separators, sender and time (once for a run of
//! messages by one sender), delivery marks for own messages, a cursor for
//! selection and a "N more below" indicator.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::{one_line, pane_style, truncate_columns};
use crate::app::{is_me, mentions, App, Conversation, Delivery, Entry, Focus, Note, Screen};
use crate::layout;
use crate::model::ConversationKind;
use crate::time;

/// Width of the `HH:MM ` column; continuation lines are indented by it.
const TIME_COLUMN: usize = 6;
/// Messages of one sender this close after the previous one go under its
/// `HH:MM sender` line instead of repeating it.
const GROUP_MS: u64 = 5 * 60 * 1000;

/// The mark after an own message's sender name.
pub fn delivery_mark(entry: &Entry) -> &'static str {
    if entry.failed.is_some() {
        return "✗";
    }
    match entry.delivery {
        Some(Delivery::Queued) => "◌",
        Some(Delivery::Accepted) => "○",
        Some(Delivery::Committed) => "✓",
        None => "",
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let focused = app.focus == Focus::Messages && app.overlay.is_none();
    let Some(conv) = app.conversations.open() else {
        let block = Block::default()
            .borders(Borders::ALL)
            .title(" Messages ")
            .border_style(pane_style(focused));
        let hint = Paragraph::new(Line::styled(
            "No conversation open. Press a to find people and start one.",
            Style::default().fg(Color::DarkGray),
        ))
        .block(block);
        frame.render_widget(hint, area);
        return;
    };
    let title = match conv.kind {
        ConversationKind::Group => format!(" #{} · {} ", conv.name, conv.members.join(", ")),
        ConversationKind::Direct => format!(" {} ", conv.name),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(super::truncate(
            &title,
            usize::from(area.width.saturating_sub(4)),
        ))
        .border_style(pane_style(focused));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (lines, _) = visible_lines(app, conv, inner, focused);
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The open conversation and the newest of its messages the pane shows
/// whole on a `full`-sized screen ("read when shown" counts what is drawn
/// below the cursor too, when the pane is filled from the top). `None`
/// under an overlay, or with nothing to show.
pub fn shown_up_to(app: &App, full: Rect) -> Option<(u64, u64)> {
    if app.screen != Screen::Chat || app.overlay.is_some() {
        return None;
    }
    let conv = app.conversations.open()?;
    let areas = layout::chat(layout::screen(full, app).body, app);
    let (_, last) = visible_lines(app, conv, layout::inner(areas.messages), false);
    let up_to = conv.log.newest_id_through(last?);
    Some((conv.id()?, up_to)).filter(|_| up_to > 0)
}

/// The lines that fit in `area`: normally ending with the cursor
/// message; when everything from the start of the loaded history to the
/// cursor fits, the pane is filled from the top instead (the messages
/// after the cursor follow), not left blank below one message.
/// Also says which entry is the last one shown whole.
fn visible_lines(
    app: &App,
    conv: &Conversation,
    area: Rect,
    focused: bool,
) -> (Vec<Line<'static>>, Option<usize>) {
    let width = usize::from(area.width).max(TIME_COLUMN + 1);
    let height = usize::from(area.height);
    let entries = &conv.log.entries;
    let notes = &conv.notes;
    if entries.is_empty() {
        let text = if conv.log.loading || !conv.log.loaded {
            "Loading…"
        } else {
            "No messages yet. Say hello!"
        };
        let mut lines: Vec<Line<'static>> = notes.iter().map(|n| note_line(app, n)).collect();
        lines.push(Line::styled(text, Style::default().fg(Color::DarkGray)));
        return (lines, None);
    }
    let bottom = app
        .view
        .anchor
        .and_then(|key| conv.log.position(key))
        .unwrap_or(entries.len() - 1);

    let mut lines: Vec<Line<'static>> = Vec::new();
    // Lines after each entry (its separators included).
    let mut ends: Vec<usize> = Vec::new();
    let mut previous_day = None;
    // Notes go before the first message newer than they are (pending own
    // messages are newer than all), the rest after the last message.
    let mut next_note = 0;
    let mut render = |index: usize, lines: &mut Vec<Line<'static>>| {
        let entry = &entries[index];
        let due = match entry.id {
            Some(id) => notes[next_note..]
                .iter()
                .take_while(|n| n.after_id < id)
                .count(),
            None => notes.len() - next_note,
        };
        // A day separator before whatever comes first on a new day.
        let mut new_day = |at_ms: u64, lines: &mut Vec<Line<'static>>| {
            let day = time::day_of(at_ms, &app.config.time_zone);
            let changed = previous_day != Some(day);
            if changed {
                lines.push(day_separator(day, width));
                previous_day = Some(day);
            }
            changed
        };
        for note in &notes[next_note..next_note + due] {
            new_day(note.at_ms, lines);
            lines.push(note_line(app, note));
        }
        next_note += due;
        let mut continued = due == 0 && index > 0 && continues(app, &entries[index - 1], entry);
        if new_day(entry.sent_ms, lines) {
            continued = false;
        }
        if entry.id.is_some() && entry.id == app.view.new_from {
            lines.push(new_messages_line(width));
            continued = false;
        }
        let selected = focused && index == bottom;
        let marked = entry.id.is_some_and(|id| app.view.marked.contains(&id));
        let mut entry_lines = entry_lines(app, entry, width, selected, marked);
        if continued {
            entry_lines.remove(0);
        }
        lines.extend(entry_lines);
        if index + 1 == entries.len() {
            for note in &notes[next_note..] {
                let day = time::day_of(note.at_ms, &app.config.time_zone);
                if previous_day != Some(day) {
                    lines.push(day_separator(day, width));
                    previous_day = Some(day);
                }
                lines.push(note_line(app, note));
            }
            next_note = notes.len();
        }
    };
    for index in 0..=bottom {
        render(index, &mut lines);
        ends.push(lines.len());
    }
    let older = conv.log.more.then(|| {
        Line::styled(
            "  ↑ older messages: scroll up to load",
            Style::default().fg(Color::DarkGray),
        )
    });
    let top_rows = usize::from(older.is_some());
    let more_after = bottom + 1 < entries.len();
    let indicator = |below: usize| {
        Line::styled(
            format!("  ↓ {below} more below (G: newest)"),
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )
    };

    if top_rows + lines.len() + usize::from(more_after) <= height {
        // From the top: the history's start, the cursor, then what follows.
        let mut next = bottom + 1;
        while next < entries.len() && top_rows + lines.len() < height {
            render(next, &mut lines);
            ends.push(lines.len());
            next += 1;
        }
        let mut shown: Vec<Line<'static>> = older.into_iter().collect();
        if next == entries.len() && top_rows + lines.len() <= height {
            shown.extend(lines);
            return (shown, Some(entries.len() - 1));
        }
        let room = height.saturating_sub(top_rows + 1);
        let whole = ends.iter().take_while(|end| **end <= room).count();
        lines.truncate(room);
        shown.extend(lines);
        shown.push(indicator(entries.len() - whole));
        return (shown, whole.checked_sub(1));
    }

    let below = entries.len() - 1 - bottom;
    let room = height.saturating_sub(usize::from(below > 0));
    let mut shown: Vec<Line<'static>> = if lines.len() > room {
        lines.split_off(lines.len() - room)
    } else {
        let mut top: Vec<Line<'static>> = older.into_iter().collect();
        if top.len() + lines.len() > room {
            top.clear();
        }
        top.extend(lines);
        top
    };
    if below > 0 {
        shown.push(indicator(below));
    }
    (shown, Some(bottom))
}

/// A membership change among the messages: `HH:MM — bob joined`.
fn note_line(app: &App, note: &Note) -> Line<'static> {
    Line::styled(
        format!(
            "{} — {}",
            time::clock(note.at_ms, &app.config.time_zone),
            note.text
        ),
        Style::default()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::ITALIC),
    )
}

/// Above the first message that was unread when the conversation was
/// opened.
fn new_messages_line(width: usize) -> Line<'static> {
    rule(
        "new messages",
        width,
        Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
    )
}

fn day_separator(day: time::Day, width: usize) -> Line<'static> {
    rule(
        &time::day_label(day),
        width,
        Style::default().fg(Color::DarkGray),
    )
}

/// `label` centred in a horizontal rule `width` columns wide.
fn rule(label: &str, width: usize, style: Style) -> Line<'static> {
    let label = format!(" {label} ");
    let side = width.saturating_sub(label.chars().count()) / 2;
    Line::styled(
        format!("{}{label}{}", "─".repeat(side), "─".repeat(side)),
        style,
    )
}

/// Whether `entry` goes under `previous`'s header: same sender, within
/// [`GROUP_MS`], and a header that would say nothing new (the same
/// delivery mark and "seen", no failure, not marked for deletion).
fn continues(app: &App, previous: &Entry, entry: &Entry) -> bool {
    let same_marks = delivery_mark(previous) == delivery_mark(entry)
        && previous.failed.is_none()
        && entry.failed.is_none()
        && entry.edit_failed.is_none()
        && own_seen(app, previous) == own_seen(app, entry);
    let marked = entry.id.is_some_and(|id| app.view.marked.contains(&id));
    previous.sender.eq_ignore_ascii_case(&entry.sender)
        && entry.sent_ms >= previous.sent_ms
        && entry.sent_ms - previous.sent_ms <= GROUP_MS
        && same_marks
        && !marked
}

/// The "seen" label of an own committed message.
fn own_seen(app: &App, entry: &Entry) -> Option<String> {
    entry
        .id
        .filter(|_| entry.is_own())
        .and_then(|id| seen_label(app, id))
}

/// The lines of one message: its `HH:MM sender` header, then its text.
fn entry_lines(
    app: &App,
    entry: &Entry,
    width: usize,
    selected: bool,
    marked: bool,
) -> Vec<Line<'static>> {
    let clock = time::clock(entry.sent_ms, &app.config.time_zone);
    let sender_style = if entry.is_own() {
        Style::default()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
            .fg(Color::Magenta)
            .add_modifier(Modifier::BOLD)
    };
    let mut header = vec![
        Span::styled(
            if marked {
                "»".to_string()
            } else {
                String::new()
            } + &clock
                + " ",
            Style::default().fg(Color::DarkGray),
        ),
        Span::styled(entry.sender.clone(), sender_style),
    ];
    let mark = delivery_mark(entry);
    if !mark.is_empty() {
        let style = if entry.failed.is_some() {
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(Color::Green)
        };
        header.push(Span::styled(format!(" {mark}"), style));
    }
    if let Some(reason) = &entry.failed {
        header.push(Span::styled(
            format!(" not sent: {reason} (r: retry)"),
            Style::default().fg(Color::Red),
        ));
    }
    if let Some((_, reason)) = &entry.edit_failed {
        header.push(Span::styled(
            format!(" edit not saved: {reason} (e: try again)"),
            Style::default().fg(Color::Red),
        ));
    }
    if let Some(seen) = own_seen(app, entry) {
        header.push(Span::styled(
            format!(" {seen}"),
            Style::default().fg(Color::DarkGray),
        ));
    }
    let mut lines = vec![Line::from(header)];
    let indent = " ".repeat(TIME_COLUMN);
    let text_width = width - TIME_COLUMN;
    if entry.reply_to != 0 {
        lines.push(quote_line(app, entry.reply_to, text_width));
    }
    let body_style = if mentions_me(app, entry) {
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    for text_line in entry.text().split('\n') {
        for chunk in wrap(text_line, text_width) {
            lines.push(Line::styled(format!("{indent}{chunk}"), body_style));
        }
    }
    if let Some(marker) = edit_marker(app, entry) {
        let fits = lines
            .last()
            .is_some_and(|last| last.width() + marker.width() <= width);
        let span = Span::styled(marker, Style::default().fg(Color::DarkGray));
        match lines.last_mut() {
            Some(last) if fits => last.push_span(span),
            _ => lines.push(Line::from(vec![Span::raw(indent.clone()), span])),
        }
    }
    if !entry.reactions.is_empty() {
        lines.push(reactions_line(app, entry, width));
    }
    if selected {
        for line in &mut lines {
            line.style = Style::default().add_modifier(Modifier::REVERSED);
        }
    }
    lines
}

/// Whether `entry` is someone else's group message that mentions us.
fn mentions_me(app: &App, entry: &Entry) -> bool {
    let me = app.me.as_deref().unwrap_or_default();
    !entry.is_own()
        && !is_me(&entry.sender, me)
        && app
            .conversations
            .open()
            .is_some_and(|c| c.kind == ConversationKind::Group)
        && mentions(entry.text(), me)
}

/// ` (edited HH:MM)` after an edited message's text; ` (saving edit…)`
/// while our edit is on its way.
fn edit_marker(app: &App, entry: &Entry) -> Option<String> {
    if entry.edit_pending.is_some() {
        return Some(" (saving edit…)".to_string());
    }
    (entry.edited_at_ms > 0).then(|| {
        format!(
            " (edited {})",
            time::clock(entry.edited_at_ms, &app.config.time_zone)
        )
    })
}

/// The one-line quote above a reply: `> bob: the start of its text…`.
/// The original is looked up among the loaded messages: older than all
/// of them (with more on the server) it is "an earlier message", else
/// it was deleted.
fn quote_line(app: &App, reply_to: u64, width: usize) -> Line<'static> {
    let indent = " ".repeat(TIME_COLUMN);
    let style = Style::default()
        .fg(Color::DarkGray)
        .add_modifier(Modifier::ITALIC);
    let log = app.conversations.open().map(|c| &c.log);
    let original = log.and_then(|log| log.find_id(reply_to));
    let Some(original) = original else {
        let earlier = log
            .is_some_and(|log| log.more && log.oldest_id().is_some_and(|oldest| reply_to < oldest));
        let text = if earlier {
            "> (an earlier message)"
        } else {
            "> (deleted message)"
        };
        return Line::styled(format!("{indent}{text}"), style);
    };
    let sender = one_line(&original.sender);
    let lead = format!("> {sender}: ");
    let room = width.saturating_sub(lead.width());
    let text = truncate_columns(one_line(original.text()).trim(), room);
    Line::from(vec![
        Span::styled(format!("{indent}{lead}"), style),
        Span::styled(text, style),
    ])
}

/// `👍 2  🎉 1` under a message; the reaction that is ours stands out.
fn reactions_line(app: &App, entry: &Entry, width: usize) -> Line<'static> {
    let me = app.me.as_deref().unwrap_or_default();
    let mut spans = vec![Span::raw(" ".repeat(TIME_COLUMN))];
    let mut used = TIME_COLUMN;
    for reaction in &entry.reactions {
        // At most a few columns of whatever the server holds.
        let emoji = truncate_columns(&one_line(&reaction.emoji), 8);
        let text = format!("{emoji} {}", reaction.users.len());
        if used + text.width() + 2 > width {
            spans.push(Span::raw("…"));
            break;
        }
        used += text.width() + 2;
        let style = if reaction.users.iter().any(|u| is_me(u, me)) {
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::default().fg(Color::Gray)
        };
        spans.push(Span::styled(text, style));
        spans.push(Span::raw("  "));
    }
    Line::from(spans)
}

/// "seen" under an own message another member has read (in a group, who:
/// "seen by bob, carol", "seen by bob, carol, dave +2").
fn seen_label(app: &App, id: u64) -> Option<String> {
    let conv = app.conversations.open()?;
    let readers = conv.seen_by(id);
    if readers.is_empty() {
        return None;
    }
    if conv.kind == ConversationKind::Direct {
        return Some("seen".to_string());
    }
    const NAMED: usize = 3;
    let mut label = format!("seen by {}", readers[..readers.len().min(NAMED)].join(", "));
    if readers.len() > NAMED {
        label.push_str(&format!(" +{}", readers.len() - NAMED));
    }
    Some(label)
}

/// Columns a tab in a message body takes.
const TAB_WIDTH: usize = 4;

/// Splits `text` into pieces at most `width` terminal columns wide,
/// preferring to break at spaces. Widths are display widths (a CJK
/// character takes two columns) and a grapheme cluster is never split (an
/// emoji with its skin tone, a family, a flag stay whole); one wider than
/// `width` gets a piece of its own. Tabs become spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let text = text.replace('\t', &" ".repeat(TAB_WIDTH));
    let mut out = Vec::new();
    let (mut current, mut used) = (String::new(), 0);
    for word in text.split(' ') {
        let word_width = word.width();
        if used > 0 && used + 1 + word_width > width {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        if used > 0 {
            current.push(' ');
            used += 1;
        }
        for grapheme in word.graphemes(true) {
            let w = grapheme.width();
            if used > 0 && used + w > width {
                out.push(std::mem::take(&mut current));
                used = 0;
            }
            current.push_str(grapheme);
            used += w;
        }
    }
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn wraps_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("hello world", 5), vec!["hello", "world"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("", 3), vec![""]);
    }

    #[test]
    fn wraps_by_display_width_and_keeps_graphemes_whole() {
        // Wide characters take two columns each.
        let cjk = "日本語のテキストです";
        let lines = wrap(cjk, 6);
        assert_eq!(lines, vec!["日本語", "のテキ", "ストで", "す"]);
        assert_eq!(lines.concat(), cjk);
        // A 1,000-character message at 60 columns is all there.
        let long = "漢".repeat(1000);
        let lines = wrap(&long, 60);
        assert_eq!(lines.concat(), long);
        assert!(lines.iter().all(|l| l.width() <= 60));
        // Emoji sequences stay whole.
        let thumbs = "👍🏽";
        let family = "👨‍👩‍👧‍👦";
        let flag = "🇯🇵";
        for emoji in [thumbs, family, flag] {
            let text = format!("a{emoji}{emoji}");
            let lines = wrap(&text, 3);
            assert_eq!(lines.concat(), text);
            assert!(lines.iter().any(|l| l.ends_with(emoji)), "{lines:?}");
            assert!(lines.iter().all(|l| l.width() <= 3), "{lines:?}");
        }
        // Wider than the pane: alone on its line.
        assert_eq!(wrap("a漢b", 1), vec!["a", "漢", "b"]);
        assert_eq!(wrap("a\tb", 10), vec!["a    b"]);
    }
}
