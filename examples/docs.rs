//! Man pages and shell completions for `chatd`, `chatctl` and `chat-tui`,
//! generated from their clap definitions (so they always match the flags):
//!
//! ```sh
//! cargo run --release --example docs -- DIR
//! ```
//!
//! writes `DIR/man/*.1` (one page per program, and one per `chatctl`
//! subcommand, e.g. `chatctl-send.1`) and `DIR/completions/` for bash,
//! zsh, fish, elvish and PowerShell (`chatctl.bash`, `_chatctl`,
//! `chatctl.fish`, …).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        anyhow::bail!("usage: docs DIR (man pages go to DIR/man, completions to DIR/completions)");
    };
    for written in generate(Path::new(&dir))? {
        println!("{}", written.display());
    }
    Ok(())
}

/// Writes every man page and completion script under `dir`; returns the
/// files written.
fn generate(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let programs = [
        ("chatd", raftchat_server::config::ChatdArgs::command()),
        ("chatctl", raftchat_cli::Cli::command()),
        ("chat-tui", raftchat_tui::Args::command()),
    ];
    let (man, completions) = (dir.join("man"), dir.join("completions"));
    for sub in [&man, &completions] {
        std::fs::create_dir_all(sub).with_context(|| format!("cannot create {}", sub.display()))?;
    }
    let mut written = Vec::new();
    for (name, command) in programs {
        let command = command.name(name).bin_name(name);
        clap_mangen::generate_to(command.clone(), &man)
            .with_context(|| format!("cannot write the man pages of {name}"))?;
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let mut command = command.clone();
            written.push(
                clap_complete::generate_to(shell, &mut command, name, &completions)
                    .with_context(|| format!("cannot write the {shell} completions of {name}"))?,
            );
        }
    }
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&man)?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    pages.sort();
    written.extend(pages);
    Ok(written)
}
