//! The bell and desktop notifications for messages outside the open
//! conversation and mentions of the user: the only code that writes them.
//!
//! Text from the network goes into escape sequences here, so every
//! control character (and `;`, OSC 777's separator) is dropped first.

use std::io::Write;
use std::path::Path;

use crate::config::Notify;
use crate::event::Effect;

/// Carries out [`Effect::Bell`] or [`Effect::Notify`]; best effort.
pub fn execute(effect: &Effect) {
    match effect {
        Effect::Bell => write_terminal("\u{7}"),
        Effect::Notify { how, title, body } => {
            let (title, body) = (clean(title), clean(body));
            match how {
                Notify::Off => {}
                Notify::Osc9 => write_terminal(&format!("\u{1b}]9;{title}: {body}\u{7}")),
                Notify::Osc777 => {
                    write_terminal(&format!("\u{1b}]777;notify;{title};{body}\u{7}"));
                }
                Notify::NotifySend => notify_send(&title, &body),
            }
        }
        _ => {}
    }
}

/// `text` without control characters or `;`, at most 200 characters.
pub fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && *c != ';')
        .take(200)
        .collect()
}

fn write_terminal(sequence: &str) {
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(sequence.as_bytes());
    let _ = stdout.flush();
}

/// Runs `notify-send` if it is on the `PATH`, without waiting for it
/// (a task reaps it); nothing happens when it is not installed.
fn notify_send(title: &str, body: &str) {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| Path::new(&dir).join("notify-send").is_file())
    });
    if !found {
        return;
    }
    let child = tokio::process::Command::new("notify-send")
        .arg("--app-name=raftchat")
        .arg(title)
        .arg(body)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn nothing_from_the_network_escapes_into_the_sequence() {
        assert_eq!(clean("bo\u{1b}]0;x\u{7}b; in #a\nb"), "bo]0xb in #ab");
    }
}
