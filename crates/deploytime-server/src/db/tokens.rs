//! Stored API tokens: looked up by the hash of the presented token on every
//! authenticated request, so a revocation takes effect on the next request.

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
