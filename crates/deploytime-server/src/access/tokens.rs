//! `deploytime-server token create|list|revoke`: token management on the
//! database directly, so it works whether or not a server is running, and a
//! running server sees the change on its next request. A token is 256 random
//! bits, shown once when it is created and stored only as its digest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use deploytime_core::access::{Role, Scope, TokenDigest};
use deploytime_core::time::{format_rfc3339, from_micros, to_micros};

use crate::db::{DatabaseUrl, DbConnection, DbError, SetupError, migrate, tokens};

/// Tokens start with this, so that secret scanners and people recognise them.
pub const TOKEN_PREFIX: &str = "dt_";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot connect: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error")]
    Query(#[source] DbError),
    #[error("a token named {0:?} already exists; revoke it first or pick another name")]
    NameTaken(String),
    #[error("token name {name:?} {reason}")]
    InvalidName { name: String, reason: String },
    #[error("{0}")]
    InvalidScope(String),
    #[error("no token named {0:?}")]
    NotFound(String),
    #[error("the operating system's random generator failed: {0}")]
    Random(getrandom::Error),
}

impl From<diesel::result::Error> for TokenError {
    fn from(e: diesel::result::Error) -> Self {
        TokenError::Query(DbError::from(e))
    }
}

/// A token as `token list` shows it: never the token, never its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub scope: String,
    pub created_at: String,
}

/// A new token: 256 bits from the operating system's generator.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn connect(url: &DatabaseUrl) -> Result<DbConnection, TokenError> {
    migrate(url)?;
    Ok(url.establish()?)
}

/// Creates a token and returns it: the only time it is ever shown.
pub fn create(
    url: &DatabaseUrl,
    name: &str,
    role: Role,
    scope: &[String],
) -> Result<String, TokenError> {
    // Token names follow the rules of component names: printable, unambiguous.
    deploytime_core::Component::parse(name).map_err(|reason| TokenError::InvalidName {
        name: name.to_owned(),
        reason,
    })?;
    let scope = Scope::parse(scope).map_err(TokenError::InvalidScope)?;
    let token = generate_token().map_err(TokenError::Random)?;
    let row = tokens::TokenRow::new(
        name,
        &TokenDigest::of(&token),
        role,
        &scope,
        to_micros(Utc::now()),
    );
    let mut conn = connect(url)?;
    match tokens::insert_token(&mut conn, &row) {
        Ok(_) => Ok(token),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(TokenError::NameTaken(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

pub fn list(url: &DatabaseUrl) -> Result<Vec<TokenInfo>, TokenError> {
    let mut conn = connect(url)?;
    Ok(tokens::list_tokens(&mut conn)?
        .into_iter()
        .map(|token| TokenInfo {
            name: token.name,
            role: token.role.to_string(),
            scope: token.scope.to_string(),
            created_at: format_rfc3339(from_micros(token.created_at)),
        })
        .collect())
}

/// Removes the token; a server refuses it from its next request on.
pub fn revoke(url: &DatabaseUrl, name: &str) -> Result<(), TokenError> {
    let mut conn = connect(url)?;
    match tokens::delete_token(&mut conn, name)? {
        0 => Err(TokenError::NotFound(name.to_owned())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_as_digests() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        // 32 bytes in unpadded base64url.
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        let stored = TokenDigest::of(&a).to_hex();
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains(&a[TOKEN_PREFIX.len()..]));
    }
}
