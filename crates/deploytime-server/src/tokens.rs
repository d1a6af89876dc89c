//! `deploytime-server token create|list|revoke`: token management on the
//! database directly, so it works whether or not a server is running, and a
//! running server sees the change on its next request.

use chrono::Utc;
use deploytime_core::time::{format_rfc3339, from_micros, to_micros};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::auth::{self, Role, Scope};
use crate::db::tokens::{self, TokenRow};
use crate::db::{DatabaseUrl, SetupError, migrate};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot connect: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Query(DieselError),
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

/// A token as `token list` shows it: never the token, never its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub scope: String,
    pub created_at: String,
}

fn connect(url: &DatabaseUrl) -> Result<crate::db::DbConnection, TokenError> {
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
    let token = auth::generate_token().map_err(TokenError::Random)?;
    let row = TokenRow {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        token_hash: auth::hash_token(&token),
        scope_components: serde_json::to_string(&scope.components).unwrap_or_else(|_| "[]".into()),
        scope_environments: serde_json::to_string(&scope.environments)
            .unwrap_or_else(|_| "[]".into()),
        created_at: to_micros(Utc::now()),
    };
    let mut conn = connect(url)?;
    match tokens::insert_token(&mut conn, &row) {
        Ok(_) => Ok(token),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Err(TokenError::NameTaken(name.to_owned()))
        }
        Err(e) => Err(TokenError::Query(e)),
    }
}

pub fn list(url: &DatabaseUrl) -> Result<Vec<TokenInfo>, TokenError> {
    let mut conn = connect(url)?;
    let rows = tokens::list_tokens(&mut conn).map_err(TokenError::Query)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let scope = Scope {
                components: serde_json::from_str(&row.scope_components).unwrap_or_default(),
                environments: serde_json::from_str(&row.scope_environments).unwrap_or_default(),
            };
            TokenInfo {
                name: row.name,
                role: row.role,
                scope: scope.to_string(),
                created_at: format_rfc3339(from_micros(row.created_at)),
            }
        })
        .collect())
}

/// Removes the token; a server refuses it from its next request on.
pub fn revoke(url: &DatabaseUrl, name: &str) -> Result<(), TokenError> {
    let mut conn = connect(url)?;
    match tokens::delete_token(&mut conn, name).map_err(TokenError::Query)? {
        0 => Err(TokenError::NotFound(name.to_owned())),
        _ => Ok(()),
    }
}
