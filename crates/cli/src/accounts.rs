//! Account commands: register, accounts, passwd, delete-account.

use anyhow::{Context, Result};
use serde_json::json;

use raftchat_client::{Account, ChatClient, ClientError};

use super::output::Output;
use super::render::account_json;
use super::sanitize::escape_line;
use super::session::{self, as_user, NEW_PASSWORD_ENV, PASSWORD_ENV};
use super::table::Table;
use super::time::format_ms;

/// `register USER`: creates the account with a password from
/// `CHAT_PASSWORD` or a double prompt.
pub async fn register(client: &ChatClient, out: Output, user: &str) -> Result<()> {
    let password = session::new_password(PASSWORD_ENV, &format!("New password for {user}: "))?;
    let reply = client.create_account(user, &password).await?;
    let account = reply
        .account
        .ok_or_else(|| ClientError::missing_field("account"))?;
    out.either(
        || {
            format!(
                "created account {} (id {})",
                escape_line(&account.username),
                account.id
            )
        },
        || account_json(&account),
    )
}

/// `accounts [PATTERN] [--after NAME] [--limit N] [--as USER]`.
pub async fn accounts(
    client: &ChatClient,
    out: Output,
    pattern: &str,
    after: &str,
    limit: u32,
    user: &str,
) -> Result<()> {
    as_user(client, user, |_| {
        list_accounts(client, out, pattern, after, limit)
    })
    .await
}

async fn list_accounts(
    client: &ChatClient,
    out: Output,
    pattern: &str,
    after: &str,
    limit: u32,
) -> Result<()> {
    let reply = client.list_accounts(pattern, after, limit).await?;
    if out.is_json() {
        for account in &reply.accounts {
            out.object(&account_json(account))?;
        }
        if !reply.next_after.is_empty() {
            out.object(&json!({ "next_after": reply.next_after }))?;
        }
        return Ok(());
    }
    out.text(&accounts_table(&reply.accounts))?;
    if !reply.next_after.is_empty() {
        out.text(&format!("more: --after {}", escape_line(&reply.next_after)))?;
    }
    Ok(())
}

/// Name, presence, last seen and creation time of each account.
pub fn accounts_table(accounts: &[Account]) -> String {
    let mut table = Table::new(["ID", "NAME", "ONLINE", "LAST SEEN", "CREATED"]);
    for account in accounts {
        table.row([
            account.id.to_string(),
            account.username.clone(),
            if account.online { "yes" } else { "no" }.to_string(),
            if account.online {
                "now".to_string()
            } else {
                format_ms(account.last_seen_ms)
            },
            format_ms(account.created_ms),
        ]);
    }
    table.render()
}

/// `passwd --as USER`: the current password logs in and is sent again as
/// the old one; the new one comes from `CHAT_NEW_PASSWORD` or a prompt.
pub async fn passwd(client: &ChatClient, out: Output, user: &str) -> Result<()> {
    as_user(client, user, |old| async move {
        let new = session::new_password(NEW_PASSWORD_ENV, "New password: ")?;
        client.change_password(&old, &new).await?;
        out.either(
            || format!("password changed for {}", escape_line(user)),
            || json!({ "changed_password": user }),
        )
    })
    .await
}

/// `delete-account --as USER`.
pub async fn delete_account(client: &ChatClient, out: Output, user: &str) -> Result<()> {
    as_user(client, user, |password| async move {
        client
            .delete_account(&password)
            .await
            .context("cannot delete the account")?;
        out.either(
            || format!("deleted account {}", escape_line(user)),
            || json!({ "deleted_account": user }),
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_table_shows_presence() {
        crate::time::show_in_utc(true);
        let accounts = [
            Account {
                id: 1,
                username: "alice".into(),
                online: true,
                last_seen_ms: 5,
                created_ms: 1_795_423_932_000,
            },
            Account {
                id: 2,
                username: "bob".into(),
                online: false,
                last_seen_ms: 0,
                created_ms: 1_795_423_932_000,
            },
        ];
        assert_eq!(
            accounts_table(&accounts),
            "ID  NAME   ONLINE  LAST SEEN  CREATED\n\
             1   alice  yes     now        2026-11-23 08:52:12 +00:00\n\
             2   bob    no      never      2026-11-23 08:52:12 +00:00\n"
        );
    }
}
