//! Every secondary index has a query that needs it: each function below is
//! run on a SQLite connection that records the SQL it sends, and the test
//! asks SQLite's planner (`EXPLAIN QUERY PLAN`) whether that SQL reads the
//! index. An index no function needs here is one too many to write on every
//! store call; a query that stops using its index is a full scan waiting for
//! a large database. Both backends must have exactly these indexes
//! (MariaDB's planner chooses by row counts, so on an empty test database its
//! EXPLAIN would not say what it does on a large one).

use std::sync::{Arc, Mutex};

use deploytime_core::{AbandonCutoff, Component, Environment};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{DeploymentFilter, EventFilter};
use crate::backend_tests;
use crate::db::connection::DbConnection;
use crate::db::migrations::migrate;
use crate::testing::{Backend, TestDatabase};

const ID: &str = "0190f3a2-7c1d-7e55-9a10-2b3c4d5e6f70";

fn api() -> Component {
    Component::parse("api").unwrap()
}

fn production() -> Environment {
    Environment::parse("production").unwrap()
}

/// Runs one query function; its result does not matter, its SQL does.
type Run = fn(&mut DbConnection);

/// (the function, how the test runs it, the index its plan must read).
const NEEDS: &[(&str, Run, &str)] = &[
    (
        "find_deployment_row",
        |c| drop(super::find_deployment_row(c, ID).unwrap()),
        "deployments_id",
    ),
    (
        "find_latest_running",
        |c| drop(super::find_latest_running(c, &api(), &production()).unwrap()),
        "deployments_running",
    ),
    (
        "stats_samples",
        |c| {
            let cutoff = AbandonCutoff::NEVER;
            drop(super::stats_samples(c, &api(), &production(), (0, 10), &cutoff).unwrap())
        },
        "deployments_component_anchor",
    ),
    (
        "list_deployments (component only)",
        |c| {
            let filter = DeploymentFilter {
                component: Some(api()),
                ..Default::default()
            };
            drop(super::list_deployments(c, &filter, None, None, 50).unwrap())
        },
        "deployments_component_only_anchor",
    ),
    (
        "list_deployments (no filter)",
        |c| drop(super::list_deployments(c, &DeploymentFilter::default(), None, None, 50).unwrap()),
        "deployments_anchor",
    ),
    (
        "find_event",
        |c| drop(super::find_event(c, ID).unwrap()),
        "events_id",
    ),
    (
        "events_of_deployment",
        |c| drop(super::events_of_deployment(c, ID).unwrap()),
        "events_deployment",
    ),
    (
        "list_events (component and environment)",
        |c| {
            let filter = EventFilter {
                component: Some(api()),
                environments: vec![production()],
                ..Default::default()
            };
            drop(super::list_events(c, &filter, None, None, 50).unwrap())
        },
        "events_component_occurred",
    ),
    (
        "list_events (no filter)",
        |c| drop(super::list_events(c, &EventFilter::default(), None, None, 50).unwrap()),
        "events_occurred",
    ),
];

/// The SQL of every statement `run` sends on `conn`, as diesel reports it to
/// the connection's instrumentation (its text up to diesel's `-- binds:`
/// note; parameters stay `?`, which the planner takes as unknown values).
fn sent(conn: &mut DbConnection, run: Run) -> Vec<String> {
    #[allow(irrefutable_let_patterns)] // irrefutable without the mysql feature
    let DbConnection::Sqlite(sqlite) = conn else {
        panic!("the plans are SQLite's");
    };
    let statements = Arc::new(Mutex::new(Vec::new()));
    let record = statements.clone();
    sqlite.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            let text = query.to_string();
            let sql = text.split(" -- binds: ").next().unwrap_or_default();
            record.lock().unwrap().push(sql.to_owned());
        }
    });
    run(conn);
    #[allow(irrefutable_let_patterns)] // irrefutable without the mysql feature
    let DbConnection::Sqlite(sqlite) = conn else {
        unreachable!("checked above");
    };
    sqlite.set_instrumentation(None::<Box<dyn Instrumentation>>);
    statements.lock().unwrap().clone()
}

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
    for (function, run, index) in NEEDS {
        let statements = sent(&mut conn, *run);
        assert_eq!(statements.len(), 1, "{function} sent {statements:?}");
        let sql = &statements[0];
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
