//! Passwords and the log-in / log-out bracket around `--as USER` commands.

use std::future::Future;

use anyhow::{bail, Context, Result};

use raftchat_client::ChatClient;

use super::sanitize::escape_line;

/// The environment variable holding the password of `--as USER`.
pub const PASSWORD_ENV: &str = "CHAT_PASSWORD";
/// The environment variable holding the new password for `passwd`.
pub const NEW_PASSWORD_ENV: &str = "CHAT_NEW_PASSWORD";

/// `user`'s password: `$CHAT_PASSWORD` when set and not empty, else asked
/// on the terminal without echo.
pub fn password(user: &str) -> Result<String> {
    from_env_or_prompt(PASSWORD_ENV, &format!("Password for {user}: "))
}

/// A password being chosen (registration, `passwd`): from `env_var`, or
/// asked twice on the terminal, which must agree.
pub fn new_password(env_var: &str, prompt: &str) -> Result<String> {
    if let Some(password) = env_value(env_var) {
        return Ok(password);
    }
    let first = prompt_password(env_var, prompt)?;
    let second = prompt_password(env_var, "Repeat it: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

fn from_env_or_prompt(env_var: &str, prompt: &str) -> Result<String> {
    match env_value(env_var) {
        Some(password) => Ok(password),
        None => prompt_password(env_var, prompt),
    }
}

fn env_value(env_var: &str) -> Option<String> {
    std::env::var(env_var).ok().filter(|v| !v.is_empty())
}

fn prompt_password(env_var: &str, prompt: &str) -> Result<String> {
    rpassword::prompt_password(prompt)
        .with_context(|| format!("cannot read a password: set {env_var} or run in a terminal"))
}

/// Logs in as `user` (saying how many messages are unread, if any), runs
/// `body` with the password (some commands need it again), then logs out
/// whatever happened. A failed logout after a
/// successful command is only a warning: the command's work is done and
/// the session expires on its own.
pub async fn as_user<F, Fut>(client: &ChatClient, user: &str, body: F) -> Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let password = password(user)?;
    let login = client
        .login(user, &password)
        .await
        .with_context(|| format!("cannot log in as '{user}'"))?;
    // On stderr, like other notices: stdout stays the command's result.
    if login.unread > 0 {
        let plural = if login.unread == 1 { "" } else { "s" };
        eprintln!(
            "chatctl: {} has {} unread message{plural}",
            escape_line(user),
            login.unread
        );
    }
    let result = body(password).await;
    if client.is_logged_in() {
        if let Err(err) = client.logout().await {
            if result.is_ok() {
                let err = err.to_string();
                eprintln!("chatctl: warning: logout failed: {}", escape_line(&err));
            }
        }
    }
    result
}
