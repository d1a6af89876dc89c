//! Stored API tokens, by the digest of each token, and the server's in-memory
//! copy of them ([`TokenCache`]). Tokens are only ever inserted and deleted,
//! never changed in place; that is what lets [`TokensFingerprint`] tell
//! whether any of them changed (docs/architecture.md, "Who may store an event?").

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use deploytime_core::access::{Caller, Role, Scope, TokenDigest, TokenLookup};
use deploytime_core::{Component, Environment};
use diesel::prelude::*;

use super::connection::{DbConnection, on_backend};
use super::models::CorruptRow;
use super::schema::tokens;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = tokens)]
pub(crate) struct TokenRow {
    pub name: String,
    pub role: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// JSON array of component names; empty: any component.
    pub scope_components: String,
    /// JSON array of environment names; empty: any environment.
    pub scope_environments: String,
    pub created_at: i64,
    /// JSON array of team projects; empty: any.
    pub scope_team_projects: String,
}

/// A stored token as an operator sees it: never the token, never its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

impl TokenRow {
    pub fn new(
        name: &str,
        digest: &TokenDigest,
        role: Role,
        scope: &Scope,
        created_at: i64,
    ) -> Self {
        let names =
            |names: Vec<&str>| serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
        TokenRow {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            token_hash: digest.to_hex(),
            scope_components: names(scope.components.iter().map(Component::as_str).collect()),
            scope_environments: names(scope.environments.iter().map(Environment::as_str).collect()),
            created_at,
            scope_team_projects: names(scope.team_projects.iter().map(String::as_str).collect()),
        }
    }

    fn into_stored(self) -> Result<StoredToken, CorruptRow> {
        let corrupt = |reason: &str| CorruptRow {
            what: "token",
            id: self.name.clone(),
            reason: reason.to_owned(),
        };
        let role = Role::parse(&self.role).ok_or_else(|| corrupt("role"))?;
        let components: Vec<Component> =
            serde_json::from_str(&self.scope_components).map_err(|_| corrupt("scope"))?;
        let environments: Vec<Environment> =
            serde_json::from_str(&self.scope_environments).map_err(|_| corrupt("scope"))?;
        let team_projects: Vec<String> =
            serde_json::from_str(&self.scope_team_projects).map_err(|_| corrupt("scope"))?;
        Ok(StoredToken {
            name: self.name,
            role,
            scope: Scope {
                components,
                environments,
                team_projects,
            },
            created_at: self.created_at,
        })
    }
}

impl StoredToken {
    fn into_caller(self) -> Caller {
        Caller {
            name: self.name,
            role: self.role,
            scope: self.scope,
        }
    }
}

pub(crate) fn insert_token(conn: &mut DbConnection, row: &TokenRow) -> QueryResult<usize> {
    diesel::insert_into(tokens::table).values(row).execute(conn)
}

/// Every token, oldest first.
pub(crate) fn list_tokens(conn: &mut DbConnection) -> QueryResult<Vec<StoredToken>> {
    tokens::table
        .order(tokens::seq.asc())
        .select(TokenRow::as_select())
        .load::<TokenRow>(conn)?
        .into_iter()
        .map(|row| row.into_stored().map_err(Into::into))
        .collect()
}

/// Removes the token called `name`; returns how many were removed (0 or 1).
pub(crate) fn delete_token(conn: &mut DbConnection, name: &str) -> QueryResult<usize> {
    diesel::delete(tokens::table.filter(tokens::name.eq(name))).execute(conn)
}

/// Who holds the token with this digest, if it is stored.
pub(crate) fn find_caller(
    conn: &mut DbConnection,
    digest: &TokenDigest,
) -> QueryResult<Option<Caller>> {
    tokens::table
        .filter(tokens::token_hash.eq(digest.to_hex()))
        .select(TokenRow::as_select())
        .first::<TokenRow>(conn)
        .optional()?
        .map(|row| {
            row.into_stored()
                .map(StoredToken::into_caller)
                .map_err(Into::into)
        })
        .transpose()
}

/// Whether any token exists: with none, a loopback server accepts anonymous calls.
pub(crate) fn any_token(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(tokens::table.select(tokens::seq))).get_result(conn)
}

/// What changes whenever a token is created or revoked: how many tokens there
/// are and the highest `seq` among them. A created token takes a `seq` never
/// used before (SQLite's AUTOINCREMENT; InnoDB keeps its counter across
/// restarts since MariaDB 10.2.4 and MySQL 8.0), so it raises the highest; a
/// revocation without a creation lowers the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokensFingerprint {
    count: i64,
    highest_seq: Option<i64>,
}

/// The tokens' [`TokensFingerprint`], from the primary key alone.
fn fingerprint(conn: &mut DbConnection) -> QueryResult<TokensFingerprint> {
    // Once per commit of the store path: on the backend's own connection, so
    // the statement is prepared once (see `on_backend`).
    let (count, highest_seq) = on_backend!(conn, |c| tokens::table
        .select((diesel::dsl::count_star(), diesel::dsl::max(tokens::seq)))
        .get_result::<(i64, Option<i64>)>(c))?;
    Ok(TokensFingerprint { count, highest_seq })
}

/// The stored tokens as they were when read, by digest.
#[derive(Debug)]
pub struct TokenSnapshot {
    fingerprint: TokensFingerprint,
    callers: HashMap<TokenDigest, Caller>,
}

impl TokenSnapshot {
    fn read(conn: &mut DbConnection, fingerprint: TokensFingerprint) -> QueryResult<Self> {
        let rows: Vec<TokenRow> = tokens::table
            .order(tokens::seq.asc())
            .select(TokenRow::as_select())
            .load(conn)?;
        let callers = rows
            .into_iter()
            .filter_map(|row| {
                let name = row.name.clone();
                let Some(digest) = TokenDigest::from_hex(&row.token_hash) else {
                    tracing::error!(token = %name, "unreadable stored token: hash");
                    return None;
                };
                // An unreadable token admits no one.
                match row.into_stored() {
                    Ok(stored) => Some((digest, stored.into_caller())),
                    Err(e) => {
                        tracing::error!(token = %name, error = %e, "unreadable stored token");
                        None
                    }
                }
            })
            .collect();
        Ok(TokenSnapshot {
            fingerprint,
            callers,
        })
    }
}

impl TokenLookup for TokenSnapshot {
    fn is_empty(&self) -> bool {
        self.fingerprint.count == 0
    }

    fn find(&self, digest: &TokenDigest) -> Option<Caller> {
        self.callers.get(digest).cloned()
    }
}

/// The server's in-memory copy of the stored tokens, shared by the access
/// check of store calls and the group commit that checks them again.
#[derive(Clone, Default)]
pub struct TokenCache(Arc<RwLock<Option<Arc<TokenSnapshot>>>>);

impl TokenCache {
    /// The copy last read, if any; it may be behind the database.
    pub fn current(&self) -> Option<Arc<TokenSnapshot>> {
        // A poisoned lock only means a writer panicked between two whole
        // assignments; the value is intact.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The tokens as they are now: one small query, and a reload of the tokens
    /// only when one was created or revoked since the last reading.
    pub(crate) fn refresh(&self, conn: &mut DbConnection) -> QueryResult<Arc<TokenSnapshot>> {
        let fingerprint = fingerprint(conn)?;
        if let Some(current) = self.current()
            && current.fingerprint == fingerprint
        {
            return Ok(current);
        }
        // Read after the fingerprint: a change in between makes the next
        // refresh read again, never the other way round.
        let snapshot = Arc::new(TokenSnapshot::read(conn, fingerprint)?);
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(snapshot.clone());
        Ok(snapshot)
    }
}
