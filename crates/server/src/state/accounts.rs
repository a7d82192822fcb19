//! Accounts: ids, unique case-insensitive names, password hashes.
//!
//! Ids come from a counter that never goes back, so a deleted account's id is
//! never reused (old messages keep pointing at the right sender); its name is
//! released for a new account.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::command::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub username: String,
    /// Opaque argon2id PHC string; compared verbatim, never parsed here.
    pub password_hash: String,
    pub created_ms: u64,
    /// 0 until the first presence transition.
    pub last_seen_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounts {
    last_id: UserId,
    by_id: BTreeMap<UserId, Account>,
    /// Lowercase name -> id; also the ordered index for `list_accounts`.
    by_name: BTreeMap<String, UserId>,
}

/// 1–32 characters of `[A-Za-z0-9_.-]`.
pub fn validate_username(name: &str) -> Result<(), ChatError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.is_empty() || name.len() > MAX_USERNAME_LEN || !name.chars().all(ok_char) {
        return Err(ChatError::invalid(format!(
            "username must be 1-{MAX_USERNAME_LEN} characters of letters, digits, '_', '.' or '-'"
        )));
    }
    Ok(())
}

/// An argon2id PHC string (`$argon2id$...`) of at most
/// [`MAX_PASSWORD_HASH_LEN`] bytes. The services only ever propose such
/// strings; this keeps a forged or buggy proposal from storing anything
/// else (say, megabytes) on every replica. Checked by shape, not parsed.
pub fn validate_password_hash(hash: &str) -> Result<(), ChatError> {
    let phc_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '$' | '=' | ',' | '+' | '/' | '.' | '-');
    if hash.len() > MAX_PASSWORD_HASH_LEN
        || !hash.starts_with("$argon2id$")
        || !hash.chars().all(phc_char)
    {
        return Err(ChatError::invalid(format!(
            "password hash must be an argon2id PHC string of at most {MAX_PASSWORD_HASH_LEN} bytes"
        )));
    }
    Ok(())
}

/// A name looked up (not created) that no account can have because it is
/// too long: refused without echoing it, so that an error result (which
/// dedup remembers on every replica) stays small.
fn check_lookup_len(name: &str) -> Result<(), ChatError> {
    if name.len() > MAX_USERNAME_LEN {
        return Err(ChatError::invalid(format!(
            "username is longer than {MAX_USERNAME_LEN} bytes"
        )));
    }
    Ok(())
}

impl Accounts {
    /// Creates an account after checking the name is valid and free.
    pub fn create(
        &mut self,
        username: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<UserId, ChatError> {
        validate_username(username)?;
        validate_password_hash(password_hash)?;
        let key = username.to_lowercase();
        if self.by_name.contains_key(&key) {
            return Err(ChatError::exists(format!("username '{username}' is taken")));
        }
        self.last_id += 1;
        let id = self.last_id;
        self.by_name.insert(key, id);
        self.by_id.insert(
            id,
            Account {
                username: username.to_owned(),
                password_hash: password_hash.to_owned(),
                created_ms: now,
                last_seen_ms: 0,
            },
        );
        Ok(id)
    }

    pub fn get(&self, id: UserId) -> Option<&Account> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: UserId) -> Option<&mut Account> {
        self.by_id.get_mut(&id)
    }

    /// The id of the account with this name, ignoring case.
    pub fn find(&self, name: &str) -> Option<UserId> {
        self.by_name.get(&name.to_lowercase()).copied()
    }

    /// The id of an existing account, or NOT_FOUND naming it (INVALID_ARGUMENT
    /// for a name longer than any account's).
    pub fn require(&self, name: &str) -> Result<UserId, ChatError> {
        check_lookup_len(name)?;
        self.find(name)
            .ok_or_else(|| ChatError::not_found(format!("no account named '{name}'")))
    }

    pub fn name(&self, id: UserId) -> Option<&str> {
        self.by_id.get(&id).map(|a| a.username.as_str())
    }

    pub fn remove(&mut self, id: UserId) -> Option<Account> {
        let account = self.by_id.remove(&id)?;
        self.by_name.remove(&account.username.to_lowercase());
        Some(account)
    }

    /// Accounts in lowercase-name order, starting at `start`.
    pub fn names_from<'a>(
        &'a self,
        start: std::ops::Bound<&'a str>,
    ) -> impl Iterator<Item = (&'a String, UserId)> + 'a {
        self.by_name
            .range::<str, _>((start, std::ops::Bound::Unbounded))
            .map(|(k, v)| (k, *v))
    }
}
