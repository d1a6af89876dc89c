//! Start-up failures say what is really wrong.

use deploytime_server::db::DatabaseUrl;
use deploytime_server::startup::{Application, StartupError};

use crate::helpers::settings;

fn startup_error(url: &str) -> String {
    let url = DatabaseUrl::parse(url).unwrap();
    match Application::build(&settings(&url)) {
        Ok(_) => panic!("the server started on {url}"),
        Err(e @ StartupError::Database(_)) => e.to_string(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/deploytime.db");
    let message = startup_error(path.to_str().unwrap());
    assert!(message.contains("cannot connect"), "{message}");
    assert!(message.contains("no/such/dir"), "{message}");
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_wrong_password_is_reported_in_mysql_words() {
    let mut url = deploytime_server::testing::mysql_admin_url().unwrap();
    url.set_username("deploytime_nobody").unwrap();
    url.set_password(Some("wrong-secret")).unwrap();
    let message = startup_error(url.as_str());
    assert!(message.contains("Access denied"), "{message}");
    assert!(
        !message.contains("wrong-secret"),
        "the password must not be shown: {message}"
    );
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_unknown_database_is_reported_in_mysql_words() {
    let mut url = deploytime_server::testing::mysql_admin_url().unwrap();
    url.set_path("/deploytime_no_such_database");
    let message = startup_error(url.as_str());
    assert!(message.contains("Unknown database"), "{message}");
}

/// SQLite has no replication: a read replica beside a SQLite database is a
/// mistake, refused with what to do instead.
#[tokio::test]
async fn a_read_replica_beside_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("deploytime.db"));
    let mut settings = settings(&url);
    settings.read_database_url = Some(DatabaseUrl::Mysql(
        "mysql://reader:secret@replica:3306/deploytime".to_owned(),
    ));
    let message = match Application::build(&settings) {
        Ok(_) => panic!("the server started with a replica of SQLite"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("--read-database-url"), "{message}");
    assert!(message.contains("SQLite has no replication"), "{message}");
    assert!(
        !dir.path().join("deploytime.db").exists(),
        "refused before touching the database"
    );
}

/// SQLite resolves `..` itself, even after a directory that does not exist; the
/// server must judge the file SQLite opened, not the path as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_path_through_a_missing_directory_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-created/../deploytime.db");
    let url = DatabaseUrl::parse(path.to_str().unwrap()).unwrap();
    let app = Application::build(&settings(&url)).expect("the server starts");
    let port = app.port();
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(dir.path().join("deploytime.db").exists());
    handle.stop(true).await;
    task.await.unwrap().unwrap();
}
