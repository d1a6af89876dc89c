//! Every secondary index has a query that needs it: each query below is the
//! SQL one of this module's functions sends (written out, with literals for
//! its values), and the test asks SQLite's planner (`EXPLAIN QUERY PLAN`)
//! which index it reads. An index no query names here is one too many to
//! write on every store call; a query that stops using its index is a full
//! scan waiting for a large database. Both backends must have exactly these
//! indexes (MariaDB's planner chooses by row counts, so on an empty test
//! database its EXPLAIN would not say what it does on a large one).

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::backend_tests;
use crate::db::connection::DbConnection;
use crate::db::migrations::migrate;
use crate::testing::{Backend, TestDatabase};

/// (the function that sends it, the query, the index its plan must read).
const NEEDS: &[(&str, &str, &str)] = &[
    (
        "find_deployment_row",
        "SELECT seq FROM deployments WHERE id = '0190f3a2-7c1d-7e55-9a10-2b3c4d5e6f70'",
        "deployments_id",
    ),
    (
        "find_latest_running",
        "SELECT seq FROM deployments WHERE component = 'api' AND environment = 'production' \
         AND state = 'running' ORDER BY started_at DESC, seq DESC",
        "deployments_running",
    ),
    (
        "stats_samples",
        "SELECT state, started_at, finished_at, duration_us, anchor_at, rollback FROM deployments \
         WHERE component = 'api' AND environment = 'production' AND anchor_at >= 0 AND anchor_at < 10",
        "deployments_component_anchor",
    ),
    (
        "list_deployments (component only)",
        "SELECT seq FROM deployments WHERE component = 'api' ORDER BY anchor_at DESC, seq DESC LIMIT 50",
        "deployments_component_only_anchor",
    ),
    (
        "list_deployments (no filter)",
        "SELECT seq FROM deployments WHERE anchor_at >= 0 ORDER BY anchor_at DESC, seq DESC LIMIT 50",
        "deployments_anchor",
    ),
    (
        "find_event",
        "SELECT seq FROM events WHERE id = '0190f3a2-7c1d-7e55-9a10-2b3c4d5e6f70'",
        "events_id",
    ),
    (
        "events_of_deployment",
        "SELECT seq FROM events WHERE deployment_id = '0190f3a2-7c1d-7e55-9a10-2b3c4d5e6f70' ORDER BY seq",
        "events_deployment",
    ),
    (
        "list_events (component)",
        "SELECT seq FROM events WHERE component = 'api' AND environment = 'production' \
         ORDER BY occurred_at DESC, seq DESC LIMIT 50",
        "events_component_occurred",
    ),
    (
        "list_events (no filter)",
        "SELECT seq FROM events WHERE occurred_at >= 0 ORDER BY occurred_at DESC, seq DESC LIMIT 50",
        "events_occurred",
    ),
];

/// SQLite names the index of a UNIQUE column after the table, not the key.
fn sqlite_name(index: &str) -> &str {
    match index {
        "deployments_id" => "sqlite_autoindex_deployments_1",
        "events_id" => "sqlite_autoindex_events_1",
        other => other,
    }
}

#[derive(QueryableByName)]
struct SqlitePlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

/// What SQLite's planner says it reads for `sql`, one line per step.
fn plan(conn: &mut DbConnection, sql: &str) -> Vec<String> {
    #[allow(irrefutable_let_patterns)] // irrefutable without the mysql feature
    let DbConnection::Sqlite(c) = conn else {
        panic!("EXPLAIN QUERY PLAN is SQLite's");
    };
    diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
        .load::<SqlitePlanRow>(c)
        .unwrap()
        .into_iter()
        .map(|row| row.detail)
        .collect()
}

#[test]
fn every_index_has_a_query_that_reads_it() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    migrate(&database.url).unwrap();
    let mut conn = database.url.establish().unwrap();
    for (function, sql, index) in NEEDS {
        let steps = plan(&mut conn, sql);
        let wanted = sqlite_name(index);
        assert!(
            steps
                .iter()
                .any(|step| step.contains(&format!("INDEX {wanted} "))
                    || step.ends_with(&format!("INDEX {wanted}"))),
            "{function}: the plan of `{sql}` does not read {wanted}: {steps:?}"
        );
        // The index gives the order too: no sort of the rows found.
        assert!(
            !steps.iter().any(|step| step.contains("TEMP B-TREE")),
            "{function}: `{sql}` sorts: {steps:?}"
        );
    }
}

/// The indexes the tables have, as the database lists them: every one must be
/// in `NEEDS` (or be a primary key).
async fn no_index_without_a_query(backend: Backend) {
    let database = TestDatabase::create(backend).unwrap();
    migrate(&database.url).unwrap();
    let mut conn = database.url.establish().unwrap();
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let names: Vec<String> = match &mut conn {
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT name FROM sqlite_master WHERE type = 'index' \
             AND tbl_name IN ('deployments', 'events')",
        )
        .load::<Name>(c)
        .unwrap(),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => diesel::sql_query(
            "SELECT DISTINCT index_name AS name FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name IN ('deployments', 'events') \
             AND index_name <> 'PRIMARY'",
        )
        .load::<Name>(c)
        .unwrap(),
    }
    .into_iter()
    .map(|n| n.name)
    .collect();
    assert!(!names.is_empty());
    for name in &names {
        assert!(
            NEEDS.iter().any(|(_, _, index)| match backend {
                Backend::Sqlite => sqlite_name(index) == name,
                Backend::Mysql => index == name,
            }),
            "index {name} has no query in NEEDS that reads it"
        );
    }
}

backend_tests!(no_index_without_a_query);
