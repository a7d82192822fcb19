//! `chat-tui`, the raftchat terminal client.
//!
//! # How it fits together
//!
//! ```text
//!  crossterm events ─┐                      ┌─> ui::draw(frame, &app)   (pure)
//!  clock ticks ──────┼─> AppEvent ─> App::update ─> Vec<Effect> ─> net.rs, store.rs
//!  their results ────┘     (event.rs)   (app.rs, pure)                 │
//!        ^────────────────── NetEvent, StoreEvent ─────────────────────┘
//! ```
//!
//! - `app.rs` (+ `app/`): all state and the one pure transition
//!   `App::update(event) -> effects`. No I/O, no clock.
//! - `keys.rs`: the single table of key bindings; it drives dispatch, the
//!   help overlay and the hint bar.
//! - `ui/`: rendering, one file per part of the screen, pure from `&App`.
//! - `net.rs`: the only code that calls the client library.
//! - `store.rs`: the only code that touches files: the outbox and drafts
//!   kept across runs, carried out by the loop before the next frame.
//! - `alert.rs`: the bell and desktop notifications.
//! - `config.rs`: the config file, merged with the flags before start.
//! - `layout.rs`: screen geometry shared by `ui/` and `app/` (clicks,
//!   page sizes).
//! - `model.rs`, `event.rs`: the data and messages shared by the above.
//! - this file: terminal setup/teardown and the event loop.
//!
//! # Adding a key binding
//!
//! 1. Add a row to `keys::BINDINGS` (keys, context, action, description).
//!    Reuse an `Action` or add a variant to `keys::Action` (and its name
//!    for the config file's `[keys]` in `Action::ALL`).
//! 2. Handle a new action in `App::perform` (app.rs).
//! 3. Help and hint bar update themselves. Add a test in `app/tests.rs`.
//!
//! # Adding a screen or overlay
//!
//! 1. Add its state: a `Screen` variant, or an `Overlay` variant holding
//!    its own struct (see `app/accounts.rs`).
//! 2. Give it a `keys::Context`, return it from `App::contexts`, and bind
//!    its keys in `keys::BINDINGS`.
//! 3. Write `ui/<name>.rs` with a `render` function and call it from
//!    `ui::draw`. Add an insta snapshot test in `tests/tui_render.rs`.
//! 4. If it needs the network, add an `Effect` and a `NetEvent` and carry
//!    it out in `net.rs`; if it needs files, an `Effect` carried out in
//!    `store.rs` (answering with a `StoreEvent`).

mod alert;
mod app;
mod args;
mod config;
mod event;
mod keys;
mod layout;
mod model;
mod net;
mod store;
mod time;
mod ui;

pub use app::*;
pub use args::{Args, DEFAULT_SERVERS};
pub use config::{Notify, Settings};
pub use event::{AppEvent, Draft, Effect, NetEvent, QueuedMessage, SendTo, StoreEvent};
pub use keys::{Action, Binding, Chord, Context, Keymap, BINDINGS};
pub use model::*;
pub use store::Store;
pub use ui::{draw, honour_no_color, shown_up_to, strip_colors, Theme};

use std::io::{self, Stdout};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyEventKind,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen, SetTitle,
};
use crossterm::ExecutableCommand;
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

/// Spinner and clock resolution.
const TICK: Duration = Duration::from_millis(200);

/// Runs the terminal client until the user quits.
///
/// The terminal is restored on every exit path: normal return, error
/// (the guard's `Drop`), panic (a panic hook) and SIGTERM/SIGHUP.
pub async fn run(args: Args) -> anyhow::Result<()> {
    // Before the terminal is taken: errors are printed as usual.
    let settings = Settings::resolve(&args)?;
    let servers = settings.servers.clone();
    if servers.is_empty() {
        anyhow::bail!("no servers given (--servers host:port,... or servers in the config file)");
    }
    let (net_tx, mut net_rx) = mpsc::unbounded_channel();
    let client = args::client_config(&servers, settings.ca.as_ref(), args.timeout())?;
    let mut net = net::Net::start(client, net_tx)?;
    let mut app = App::new(AppConfig {
        request_prefix: net::request_prefix(),
        // TZ, else /etc/localtime; UTC when neither is readable.
        time_zone: jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
        user: settings.user.clone(),
        servers: servers.clone(),
        mouse: settings.mouse,
        keymap: settings.keymap.clone(),
        theme: settings.theme,
        bell: settings.bell,
        notify: settings.notify,
    });
    let mut store = Store::for_servers(&servers);
    app.update(AppEvent::Tick { now_ms: now_ms() });

    let no_color = ui::no_color_wanted();
    ui::honour_no_color();
    let mut terminal = TerminalGuard::enter(app.mouse_capture)?;
    if let Ok(size) = terminal.terminal.size() {
        handle(
            &mut app,
            &mut net,
            &mut store,
            AppEvent::Resize {
                width: size.width,
                height: size.height,
            },
        );
    }
    let mut input = EventStream::new();
    let mut ticks = tokio::time::interval(TICK);
    let mut terminate = Signals::new()?;
    let mut title = String::new();

    while !app.should_quit {
        terminal.terminal.draw(|frame| {
            ui::draw(frame, &app);
            if no_color {
                ui::strip_colors(frame.buffer_mut());
            }
        })?;
        // What the frame showed counts as read (below the cursor too).
        if let Some((conversation_id, up_to)) = app
            .size
            .and_then(|full| ui::shown_up_to(&app, full))
            .filter(|(_, up_to)| *up_to > app.view.shown_up_to)
        {
            handle(
                &mut app,
                &mut net,
                &mut store,
                AppEvent::Shown {
                    conversation_id,
                    up_to,
                },
            );
        }
        let wanted = app.terminal_title();
        if wanted != title {
            // Best effort: not every terminal supports titles.
            let _ = io::stdout().execute(SetTitle(&wanted));
            title = wanted;
        }

        let event = tokio::select! {
            input_event = input.next() => match input_event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => AppEvent::Key(key),
                Some(Ok(Event::Mouse(mouse))) => AppEvent::Mouse(mouse),
                Some(Ok(Event::Paste(text))) => AppEvent::Paste(text),
                Some(Ok(Event::Resize(width, height))) => AppEvent::Resize { width, height },
                Some(Ok(_)) => continue, // resize, focus: just redraw
                Some(Err(err)) => return Err(err.into()),
                // stdin closed: end as for SIGTERM.
                None => end_now(&mut app),
            },
            Some(net_event) = net_rx.recv() => AppEvent::Net(net_event),
            _ = ticks.tick() => AppEvent::Tick { now_ms: now_ms() },
            _ = terminate.recv() => end_now(&mut app),
        };
        // Keep "now" fresh for whatever the event does.
        handle(
            &mut app,
            &mut net,
            &mut store,
            AppEvent::Tick { now_ms: now_ms() },
        );
        handle(&mut app, &mut net, &mut store, event);
        if std::mem::take(&mut app.suspend_requested) {
            terminal.suspend()?;
        }
        terminal.capture_mouse(app.mouse_capture);
    }
    drop(terminal);
    Ok(())
}

/// Feeds `event` to the state and carries out the effects in order: the
/// local store's at once (a save is done before the next frame is drawn,
/// a load answered before the next event), the network's in the
/// background.
fn handle(app: &mut App, net: &mut net::Net, store: &mut Store, event: AppEvent) {
    let mut effects: std::collections::VecDeque<Effect> = app.update(event).into();
    while let Some(effect) = effects.pop_front() {
        if effect.is_alert() {
            alert::execute(&effect);
            continue;
        }
        match store.execute(&effect) {
            Some(Some(answer)) => effects.extend(app.update(AppEvent::Store(answer))),
            Some(None) => {}
            None => net.execute(effect),
        }
    }
}

/// Ends the loop after this event without asking; handling it still
/// saves the drafts at once (queued messages are always saved already).
fn end_now(app: &mut App) -> AppEvent {
    app.should_quit = true;
    AppEvent::Tick { now_ms: now_ms() }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// SIGTERM and SIGHUP end the loop (without asking, drafts saved), so the
/// terminal is restored.
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.hup.recv() => {},
        }
    }
}

/// Owns the terminal in raw/alternate-screen mode; restores it on drop
/// and, through a panic hook, on panic.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// Whether the mouse is captured now.
    mouse: bool,
}

impl TerminalGuard {
    fn enter(mouse: bool) -> anyhow::Result<Self> {
        install_panic_hook();
        let terminal =
            take_terminal(mouse).and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match terminal {
            Ok(terminal) => Ok(Self { terminal, mouse }),
            Err(err) => {
                restore_terminal();
                Err(err.into())
            }
        }
    }

    /// Ctrl-Z: gives the terminal back to the shell and stops this process
    /// as job control expects (raw mode turns the key into a key event, not
    /// a signal); once resumed (`fg`), takes the terminal again and redraws
    /// everything. Without job control the stop signal is discarded and
    /// this returns at once.
    fn suspend(&mut self) -> anyhow::Result<()> {
        restore_terminal();
        // SAFETY: raise only signals this process.
        unsafe {
            libc::raise(libc::SIGTSTP);
        }
        take_terminal(self.mouse)?;
        self.terminal.clear()?;
        Ok(())
    }

    /// Turns mouse capture on or off (best effort: a terminal that does
    /// not take it keeps working with the keyboard).
    fn capture_mouse(&mut self, on: bool) {
        if on == self.mouse {
            return;
        }
        let result = if on {
            io::stdout().execute(EnableMouseCapture).map(drop)
        } else {
            io::stdout().execute(DisableMouseCapture).map(drop)
        };
        if result.is_ok() {
            self.mouse = on;
        }
    }
}

/// Raw mode, the alternate screen, mouse capture (if `mouse`) and
/// bracketed paste: what [`restore_terminal`] undoes.
fn take_terminal(mouse: bool) -> io::Result<()> {
    enable_raw_mode()?;
    let mut stdout = io::stdout();
    stdout
        .execute(EnterAlternateScreen)?
        .execute(EnableBracketedPaste)?;
    if mouse {
        stdout.execute(EnableMouseCapture)?;
    }
    Ok(())
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
        let _ = self.terminal.show_cursor();
    }
}

/// Leaves raw mode and the alternate screen. Safe to call more than once.
fn restore_terminal() {
    let mut stdout = io::stdout();
    let _ = stdout.execute(DisableBracketedPaste);
    let _ = stdout.execute(DisableMouseCapture);
    let _ = stdout.execute(LeaveAlternateScreen);
    let _ = disable_raw_mode();
    let _ = stdout.execute(crossterm::cursor::Show);
}

/// Restores the terminal before the default hook prints the panic, so
/// the message is readable and the shell usable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
}
