//! Passwords and session tokens, handled by the replica that receives the
//! request so that only hashes ever enter the replicated log.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::server::command::TokenHash;

/// Hashes a password with argon2id (default parameters) off the async
/// runtime: it takes tens of milliseconds by design.
pub async fn hash_password(password: String) -> Result<String, Status> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Status::internal(format!("cannot hash password: {e}")))
    })
    .await
    .map_err(|e| Status::internal(format!("password hashing task failed: {e}")))?
}

/// Whether `password` matches the PHC string `hash`.
pub async fn verify_password(password: String, hash: String) -> Result<bool, Status> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| Status::internal(format!("stored password hash is malformed: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Status::internal(format!("password check task failed: {e}")))?
}

/// A fresh random session token (256 bits, hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The session token from `authorization: Bearer <token>`.
pub fn session_from(metadata: &MetadataMap) -> Result<TokenHash, Status> {
    let value = metadata
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("not logged in: missing authorization metadata"))?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization metadata is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
    Ok(token_hash(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash_password("hunter2".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("hunter2".into(), h.clone()).await.unwrap());
        assert!(!verify_password("hunter3".into(), h).await.unwrap());
    }

    #[test]
    fn bearer_token_parsing() {
        let mut md = MetadataMap::new();
        assert_eq!(
            session_from(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        md.insert("authorization", "Basic xyz".parse().unwrap());
        assert_eq!(
            session_from(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let token = new_token();
        md.insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_eq!(session_from(&md).unwrap(), token_hash(&token));
    }
}
