//! The schema's migrations, one set per backend, embedded in the binary and run
//! before the pool serves anything.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::connection::{DatabaseUrl, DbConnection};
use super::error::SetupError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

/// Runs the pending migrations of the connection's backend; returns their names.
fn run_pending(conn: &mut DbConnection) -> Result<Vec<String>, String> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => c.run_pending_migrations(MYSQL_MIGRATIONS),
    }
    .map_err(|e| e.to_string())?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Connects once (so that a wrong password or an unknown database is reported
/// with the database's own words), applies the migrations, and returns the
/// migrations it applied.
pub fn migrate(url: &DatabaseUrl) -> Result<Vec<String>, SetupError> {
    let mut conn = url.establish().map_err(|source| SetupError::Connect {
        url: url.clone(),
        source,
    })?;
    run_pending(&mut conn).map_err(|message| SetupError::Migrate {
        url: url.clone(),
        message,
    })
}

/// Applies the SQLite migrations up to and including the one named `last`,
/// and no later one: the schema a release that shipped `last` left behind, for
/// the tests of the migrations after it.
#[cfg(test)]
pub(crate) fn migrate_sqlite_through(url: &DatabaseUrl, last: &str) -> Result<(), String> {
    use diesel::migration::{MigrationConnection, MigrationSource};
    #[allow(irrefutable_let_patterns)] // irrefutable without the mysql feature
    let DbConnection::Sqlite(mut conn) = url.establish().map_err(|e| e.to_string())? else {
        return Err("not a SQLite database".into());
    };
    conn.setup().map_err(|e| e.to_string())?;
    let mut migrations = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
        .map_err(|e| e.to_string())?;
    migrations.sort_by_key(|m| m.name().to_string());
    if !migrations.iter().any(|m| m.name().to_string() == last) {
        return Err(format!("no migration {last}"));
    }
    for migration in migrations {
        conn.run_migration(&migration).map_err(|e| e.to_string())?;
        if migration.name().to_string() == last {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
