//! `chatctl`, the scriptable command-line client. The binary only parses
//! the arguments and calls [`run`]; everything else lives here so it can be
//! unit-tested.
//!
//! Output is text for humans, or one JSON object per line with `--json`.
//! Failures print `chatctl: CODE: message` on stderr and exit non-zero.

mod accounts;
mod args;
mod certs;
mod cluster;
mod groups;
mod members;
mod messages;
mod output;
mod render;
mod sanitize;
mod session;
mod table;
mod time;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use raftchat_client::{ChatClient, ClientConfig};

pub use args::{
    parse_group, parse_member, parse_target, AsUser, CertsCommand, Cli, Command, GroupCommand,
    MembersCommand,
};
pub use cluster::status_table;
pub use output::Output;
pub use table::Table;

/// Runs one chatctl command; the exit code is success, or failure after
/// printing the error on stderr.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.chain().any(|e| e.is::<output::ReaderGone>()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chatctl: {}", sanitize::escape_line(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The client configuration the flags ask for; a TLS file that cannot be
/// read is an error naming its flag.
pub fn client_config(cli: &Cli) -> Result<ClientConfig> {
    let servers = cli
        .servers
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(String::from);
    let mut config = ClientConfig::new(servers);
    config.rpc_timeout = Duration::from_millis(cli.timeout_ms);
    config.write_deadline = Duration::from_millis(cli.deadline_ms);
    if let Some(ca) = &cli.ca {
        let identity = cli.cert.as_deref().zip(cli.key.as_deref());
        config.tls = Some(raftchat_tls::ClientTls::load(
            ca,
            identity,
            ["--ca", "--cert", "--key"],
        )?);
    }
    Ok(config)
}

async fn execute(cli: Cli) -> Result<()> {
    let out = Output::new(cli.json);
    time::show_in_utc(cli.utc);
    // Certificates are made before there is a cluster to connect to.
    if let Command::Certs(action) = cli.command {
        return certs::run(out, action);
    }
    let client = ChatClient::new(client_config(&cli)?)?;
    let client = &client;
    match cli.command {
        Command::Status => cluster::status(client, out).await,
        Command::Register { user } => accounts::register(client, out, &user).await,
        Command::Accounts {
            pattern,
            after,
            limit,
            who,
        } => {
            accounts::accounts(
                client,
                out,
                pattern.as_deref().unwrap_or_default(),
                after.as_deref().unwrap_or_default(),
                limit.unwrap_or(0),
                &who.user,
            )
            .await
        }
        Command::Send {
            who,
            reply_to,
            to,
            text,
        } => {
            let text = text.join(" ");
            session::as_user(client, &who.user, |_| {
                messages::send(client, out, &to, &text, reply_to.unwrap_or(0))
            })
            .await
        }
        Command::Read { who, with, limit } => {
            session::as_user(client, &who.user, |_| {
                messages::read(client, out, with.as_ref(), limit)
            })
            .await
        }
        Command::History {
            who,
            with,
            before,
            limit,
        } => {
            session::as_user(client, &who.user, |_| {
                messages::history(client, out, &with, before.unwrap_or(0), limit)
            })
            .await
        }
        Command::Search {
            who,
            with,
            before,
            limit,
            query,
        } => {
            let query = query.join(" ");
            session::as_user(client, &who.user, |_| {
                messages::search(
                    client,
                    out,
                    with.as_ref(),
                    &query,
                    before.unwrap_or(0),
                    limit,
                )
            })
            .await
        }
        Command::Conversations { who } => {
            session::as_user(client, &who.user, |_| messages::conversations(client, out)).await
        }
        Command::MarkRead { who, with, up_to } => {
            session::as_user(client, &who.user, |_| {
                messages::mark_read(client, out, &with, up_to)
            })
            .await
        }
        Command::DeleteMessages { who, ids } => {
            session::as_user(client, &who.user, |_| {
                messages::delete_messages(client, out, &ids)
            })
            .await
        }
        Command::Edit { who, id, text } => {
            let text = text.join(" ");
            session::as_user(client, &who.user, |_| {
                messages::edit(client, out, id, &text)
            })
            .await
        }
        Command::React { who, id, emoji } => {
            let me = who.user.clone();
            session::as_user(client, &who.user, |_| {
                messages::react(client, out, id, &emoji, &me)
            })
            .await
        }
        Command::DeleteAccount { who } => accounts::delete_account(client, out, &who.user).await,
        Command::Passwd { who } => accounts::passwd(client, out, &who.user).await,
        Command::Group(GroupCommand::Create { who, name, members }) => {
            session::as_user(client, &who.user, |_| {
                groups::create(client, out, &name, &members)
            })
            .await
        }
        Command::Group(GroupCommand::Add { who, name, member }) => {
            session::as_user(client, &who.user, |_| {
                groups::add(client, out, &name, &member)
            })
            .await
        }
        Command::Group(GroupCommand::Leave { who, name }) => {
            session::as_user(client, &who.user, |_| groups::leave(client, out, &name)).await
        }
        Command::Members { action } => {
            members::run(client.config(), out, action.unwrap_or(MembersCommand::List)).await
        }
        Command::Typing { who, to } => {
            session::as_user(client, &who.user, |_| messages::typing(client, out, &to)).await
        }
        Command::Watch { who, after } => {
            session::as_user(client, &who.user, |_| watch::watch(client, out, after)).await
        }
        Command::Certs(action) => certs::run(out, action),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_become_the_client_config() {
        let cli = Cli::try_parse_from([
            "chatctl",
            "--servers",
            "a:1, b:2,,",
            "--timeout-ms",
            "300",
            "--deadline-ms",
            "900",
            "status",
        ])
        .unwrap();
        let config = client_config(&cli).unwrap();
        assert_eq!(config.servers, vec!["a:1", "b:2"]);
        assert_eq!(config.rpc_timeout, Duration::from_millis(300));
        assert_eq!(config.write_deadline, Duration::from_millis(900));
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_a_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = listener.local_addr().unwrap().to_string();
        drop(listener);
        let cli = Cli::try_parse_from([
            "chatctl",
            "--servers",
            &dead,
            "--timeout-ms",
            "100",
            "--json",
            "status",
        ])
        .unwrap();
        let err = execute(cli).await.unwrap_err();
        assert_eq!(err.to_string(), "UNAVAILABLE: no replica answered");
    }
}
