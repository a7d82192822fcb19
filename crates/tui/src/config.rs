//! The optional config file, `$XDG_CONFIG_HOME/raftchat/config.toml`
//! (`~/.config/raftchat/config.toml` when `XDG_CONFIG_HOME` is unset, or
//! `--config FILE`), merged with the command line: a flag (or its
//! environment variable) wins over the file, the file over the defaults.
//!
//! A file that cannot be used is an error naming the file, the line and
//! the key, before the terminal is taken over.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::args::{Args, DEFAULT_SERVERS};
use crate::keys::{Action, Chord, Keymap};
use crate::ui::Theme;

/// How a message outside the open conversation is announced on the desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notify {
    #[default]
    Off,
    /// The OSC 9 escape (iTerm2, kitty, WezTerm, foot, ...).
    Osc9,
    /// The OSC 777 escape (urxvt, VTE terminals such as GNOME Terminal).
    Osc777,
    /// `notify-send`, if it is installed (nothing happens otherwise).
    NotifySend,
}

/// Everything the client runs with, from flags, file and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    pub servers: Vec<String>,
    pub user: Option<String>,
    pub ca: Option<PathBuf>,
    pub mouse: bool,
    pub bell: bool,
    pub notify: Notify,
    pub theme: Theme,
    pub keymap: Keymap,
}

/// The file's keys (see README's chat-tui section for each).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    servers: Option<Vec<String>>,
    user: Option<String>,
    ca: Option<PathBuf>,
    mouse: Option<bool>,
    bell: Option<bool>,
    notify: Option<Spanned<String>>,
    theme: Option<ThemeFile>,
    keys: Option<BTreeMap<String, Spanned<KeyList>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<Spanned<String>>,
    accent: Option<Spanned<String>>,
    dim: Option<Spanned<String>>,
    warn: Option<Spanned<String>>,
    others: Option<Spanned<String>>,
    text: Option<Spanned<String>>,
    ok: Option<Spanned<String>>,
    error: Option<Spanned<String>>,
}

/// One key or a list of keys.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum KeyList {
    One(String),
    Many(Vec<String>),
}

impl Settings {
    /// The settings for `args`: the config file (`--config`, else the
    /// default place if it exists) under the flags.
    pub fn resolve(args: &Args) -> anyhow::Result<Self> {
        let (path, required) = match &args.config {
            Some(path) => (Some(path.clone()), true),
            None => (default_path(), false),
        };
        let (file, text) = match &path {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => (Some(path.clone()), text),
                Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {
                    (None, String::new())
                }
                Err(err) => anyhow::bail!("{}: {err}", path.display()),
            },
            None => (None, String::new()),
        };
        let shown = file
            .as_ref()
            .map_or_else(|| "config".to_string(), |p| p.display().to_string());
        Self::from_text(&text, &shown, args).map(|mut settings| {
            settings.file = file;
            settings
        })
    }

    /// The settings from the file's `text` (named `file` in errors) and `args`.
    pub fn from_text(text: &str, file: &str, args: &Args) -> anyhow::Result<Self> {
        let parsed: File = toml::from_str(text).map_err(|err| {
            let at = err.span().map(|span| locate(text, span.start));
            anyhow::anyhow!("{}", describe(file, at, err.message()))
        })?;
        let fail = |span: std::ops::Range<usize>, what: String| {
            anyhow::anyhow!("{}", describe(file, Some(locate(text, span.start)), &what))
        };

        let notify = match parsed.notify.as_ref() {
            None => Notify::Off,
            Some(value) => match value.get_ref().as_str() {
                "off" => Notify::Off,
                "osc9" => Notify::Osc9,
                "osc777" => Notify::Osc777,
                "notify-send" => Notify::NotifySend,
                other => {
                    return Err(fail(
                        value.span(),
                        format!("'{other}' is not one of off, osc9, osc777, notify-send"),
                    ))
                }
            },
        };

        let mut theme = Theme::DARK;
        if let Some(file_theme) = &parsed.theme {
            if let Some(name) = &file_theme.name {
                theme = Theme::named(name.get_ref()).ok_or_else(|| {
                    fail(
                        name.span(),
                        format!("'{}' is not a theme (dark, light)", name.get_ref()),
                    )
                })?;
            }
            for (value, role) in [
                (&file_theme.accent, &mut theme.accent),
                (&file_theme.dim, &mut theme.dim),
                (&file_theme.warn, &mut theme.warn),
                (&file_theme.others, &mut theme.others),
                (&file_theme.text, &mut theme.text),
                (&file_theme.ok, &mut theme.ok),
                (&file_theme.error, &mut theme.error),
            ] {
                if let Some(value) = value {
                    *role = value.get_ref().parse().map_err(|_| {
                        fail(
                            value.span(),
                            format!(
                                "'{}' is not a colour (a name such as red or lightblue, \
                                 #rrggbb, or 0-255)",
                                value.get_ref()
                            ),
                        )
                    })?;
                }
            }
        }

        let mut overrides = Vec::new();
        let mut first_key_span = None;
        for (name, keys) in parsed.keys.iter().flatten() {
            first_key_span.get_or_insert(keys.span());
            let action = Action::from_name(name).ok_or_else(|| {
                fail(
                    keys.span(),
                    format!("'{name}' is not an action (see README for the list)"),
                )
            })?;
            let list = match keys.get_ref() {
                KeyList::One(key) => vec![key.clone()],
                KeyList::Many(keys) => keys.clone(),
            };
            let chords = list
                .iter()
                .map(|key| Chord::parse(key))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|why| fail(keys.span(), why))?;
            overrides.push((action, chords, keys.span()));
        }
        let pairs: Vec<(Action, Vec<Chord>)> =
            overrides.iter().map(|(a, c, _)| (*a, c.clone())).collect();
        let keymap = Keymap::with_overrides(&pairs).map_err(|why| {
            // Point at the override the complaint names, else the first.
            let span = overrides
                .iter()
                .find(|(a, _, _)| why.contains(&format!("'{}'", a.name())))
                .map(|(_, _, s)| s.clone())
                .or(first_key_span)
                .unwrap_or(0..0);
            fail(span, why)
        })?;

        let servers = args
            .servers
            .clone()
            .map(|list| split_servers(&list))
            .or(parsed.servers.clone())
            .unwrap_or_else(|| split_servers(DEFAULT_SERVERS));
        Ok(Settings {
            file: None,
            servers: servers
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            user: args.user.clone().or(parsed.user),
            ca: args.ca.clone().or(parsed.ca),
            mouse: !args.no_mouse && parsed.mouse.unwrap_or(true),
            bell: parsed.bell.unwrap_or(true),
            notify,
            theme,
            keymap,
        })
    }
}

fn split_servers(list: &str) -> Vec<String> {
    list.split(',').map(str::to_string).collect()
}

/// `$XDG_CONFIG_HOME/raftchat/config.toml`, else `~/.config/...`.
pub fn default_path() -> Option<PathBuf> {
    Some(
        xdg_dir("XDG_CONFIG_HOME", &[".config"])?
            .join("raftchat")
            .join("config.toml"),
    )
}

/// The XDG base directory `var` names, else `$HOME` joined with
/// `fallback`. The spec: a relative path is invalid and ignored.
pub fn xdg_dir(var: &str, fallback: &[&str]) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| fallback.iter().fold(home, |dir, part| dir.join(part)))
        })
}

/// The line (1-based) of byte `offset` in `text` and the key written on
/// that line, if it has one (`key = ...`).
fn locate(text: &str, offset: usize) -> (usize, Option<String>) {
    let offset = offset.min(text.len());
    let line_no = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"').to_string())
        .filter(|key| !key.is_empty());
    (line_no, key)
}

/// `FILE:LINE: key 'KEY': WHAT`, with control characters of the file
/// kept out of the terminal.
fn describe(file: &str, at: Option<(usize, Option<String>)>, what: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_string()
    };
    match at {
        Some((line, Some(key))) => format!("{file}:{line}: key '{}': {}", clean(&key), clean(what)),
        Some((line, None)) => format!("{file}:{line}: {}", clean(what)),
        None => format!("{file}: {}", clean(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["chat-tui"];
        argv.extend_from_slice(extra);
        Args::parse_from(argv)
    }

    fn settings(text: &str, extra: &[&str]) -> anyhow::Result<Settings> {
        Settings::from_text(text, "config.toml", &args(extra))
    }

    fn error(text: &str) -> String {
        settings(text, &[]).expect_err("a bad file").to_string()
    }

    const EXAMPLE: &str = r##"
servers = ["h1:7001", "h2:7002"]
user = "alice"
mouse = false
bell = false
notify = "osc777"

[theme]
name = "light"
accent = "#0055aa"

[keys]
quit = ["Q", "C-c"]
cluster = "F9"
"##;

    #[test]
    fn the_file_sets_what_flags_do_not() {
        let s = settings(EXAMPLE, &[]).expect("valid");
        assert_eq!(s.servers, vec!["h1:7001", "h2:7002"]);
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert!(!s.mouse && !s.bell);
        assert_eq!(s.notify, Notify::Osc777);
        assert_eq!(s.theme.accent, ratatui::style::Color::Rgb(0, 0x55, 0xaa));
        assert_eq!(s.theme.warn, Theme::LIGHT.warn);
        let labels: Vec<String> = s
            .keymap
            .bindings()
            .iter()
            .filter(|b| b.action == Action::Quit)
            .map(|b| b.keys_label())
            .collect();
        // Q is text while typing: "everywhere" keeps only Ctrl-C.
        assert_eq!(labels, vec!["Q/^C", "^C"]);
    }

    #[test]
    fn flags_win_over_the_file() {
        let s = settings(
            EXAMPLE,
            &["--servers", "x:1", "--user", "bob", "--no-mouse"],
        )
        .expect("valid");
        assert_eq!(s.servers, vec!["x:1"]);
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert!(!s.mouse);
        let s = settings("mouse = true", &["--no-mouse"]).expect("valid");
        assert!(!s.mouse);
        // Nothing anywhere: the defaults.
        let s = settings("", &[]).expect("valid");
        assert_eq!(s.servers.len(), 5);
        assert!(s.mouse && s.bell);
        assert_eq!(s.notify, Notify::Off);
        assert_eq!(s.keymap, Keymap::default());
    }

    /// README's example file is a valid file.
    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\n# ~/.config/raftchat/config.toml")
            .expect("README has the example")
            + "```toml\n".len();
        let end = start + readme[start..].find("```").expect("end of the example");
        let s = settings(&readme[start..end], &[]).expect("the example is valid");
        assert_eq!(s.notify, Notify::Osc9);
        assert_eq!(s.servers.len(), 3);
        assert_eq!(
            s.keymap
                .label_of(crate::keys::Context::Navigation, Action::Quit),
            "Q/^Q"
        );
    }

    #[test]
    fn a_bad_file_names_the_line_and_the_key() {
        for (text, wanted) in [
            (
                "user = \"a\"\nmouse = \"yes\"\n",
                "config.toml:2: key 'mouse': ",
            ),
            ("colour = 1\n", "config.toml:1: key 'colour': unknown field"),
            (
                "notify = \"loud\"\n",
                "config.toml:1: key 'notify': 'loud' is not one of",
            ),
            (
                "[theme]\nname = \"dark\"\nwarn = \"sunset\"\n",
                "config.toml:3: key 'warn': 'sunset' is not a colour",
            ),
            (
                "[keys]\nfly = \"x\"\n",
                "config.toml:2: key 'fly': 'fly' is not an action",
            ),
            (
                "[keys]\nquit = \"Hyper-q\"\n",
                "config.toml:2: key 'quit': 'Hyper-q' is not a key",
            ),
            (
                "[keys]\nsend = \"x\"\n",
                "config.toml:2: key 'send': 'send' is used while typing",
            ),
            (
                "servers = [\n",
                "config.toml:1: key 'servers': unclosed array",
            ),
        ] {
            let err = error(text);
            assert!(err.starts_with(wanted), "{text:?}: {err}");
        }
    }
}
