//! Stored API tokens, by the hash of each token. Tokens are only ever inserted
//! (`token create`) and deleted (`token revoke`), never changed in place; that
//! is what lets [`fingerprint`] tell whether any of them changed.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::tokens;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = tokens)]
pub struct TokenRow {
    pub name: String,
    pub role: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// JSON array of component names; empty: any component.
    pub scope_components: String,
    /// JSON array of environment names; empty: any environment.
    pub scope_environments: String,
    pub created_at: i64,
}

pub fn insert_token(conn: &mut DbConnection, row: &TokenRow) -> QueryResult<usize> {
    diesel::insert_into(tokens::table).values(row).execute(conn)
}

/// Every token, oldest first.
pub fn list_tokens(conn: &mut DbConnection) -> QueryResult<Vec<TokenRow>> {
    tokens::table
        .order(tokens::seq.asc())
        .select(TokenRow::as_select())
        .load(conn)
}

/// Removes the token called `name`; returns how many were removed (0 or 1).
pub fn delete_token(conn: &mut DbConnection, name: &str) -> QueryResult<usize> {
    diesel::delete(tokens::table.filter(tokens::name.eq(name))).execute(conn)
}

pub fn find_token_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<TokenRow>> {
    tokens::table
        .filter(tokens::token_hash.eq(hash))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()
}

/// Whether any token exists: with none, a loopback server accepts anonymous calls.
pub fn any_token(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(tokens::table.select(tokens::seq))).get_result(conn)
}

/// What changes whenever a token is created or revoked: how many tokens there
/// are and the highest `seq` among them. A created token takes a `seq` never
/// used before (SQLite's AUTOINCREMENT; InnoDB keeps its counter across
/// restarts since MariaDB 10.2.4 and MySQL 8.0), so it raises the highest; a
/// revocation without a creation lowers the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokensFingerprint {
    count: i64,
    highest_seq: Option<i64>,
}

impl TokensFingerprint {
    /// True when no token exists.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The tokens' [`TokensFingerprint`], from the primary key alone.
pub fn fingerprint(conn: &mut DbConnection) -> QueryResult<TokensFingerprint> {
    let (count, highest_seq) = tokens::table
        .select((diesel::dsl::count_star(), diesel::dsl::max(tokens::seq)))
        .get_result::<(i64, Option<i64>)>(conn)?;
    Ok(TokensFingerprint { count, highest_seq })
}
