//! Whole servers for tests (the `testing` feature): a database of its own per
//! test (a SQLite file in a temporary directory, or a MySQL database created
//! and dropped again), and the real application on a free port. The server's
//! integration tests and the command line's tests both start servers this way.

pub mod mail_sink;

use std::path::PathBuf;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokio::task::JoinHandle;

use crate::db::{Database, DatabaseUrl};
use crate::settings::Settings;
use crate::startup::{Application, StartupError};

/// Runs the given async test functions once per backend: always on SQLite, and on
/// MySQL when the crate is built with `--features mysql`. Each function takes a
/// [`Backend`].
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
            )*
        }
        #[cfg(feature = "mysql")]
        mod on_mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Mysql).await
                }
            )*
        }
    };
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// Needs the `mysql` feature and `DEPLOYTIME_TEST_MYSQL_URL`.
    Mysql,
}

/// A database of its own for one test, removed when the test ends.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    /// The admin URL and the name of a MySQL database to drop at the end.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    mysql: Option<(String, String)>,
}

/// The MySQL server tests create their databases on, from
/// `DEPLOYTIME_TEST_MYSQL_URL` (e.g. `mysql://root@127.0.0.1:3306`).
pub fn mysql_admin_url() -> anyhow::Result<url::Url> {
    let raw = std::env::var("DEPLOYTIME_TEST_MYSQL_URL").map_err(|_| {
        anyhow::anyhow!(
            "the MySQL tests run with the mysql feature: set DEPLOYTIME_TEST_MYSQL_URL \
             (e.g. mysql://root@127.0.0.1:3306) to a server where databases may be created"
        )
    })?;
    Ok(url::Url::parse(&raw)?)
}

/// The MariaDB primary and its GTID replica that the read replica tests use
/// (`.ci/mariadb-replica.sh` starts them and prints these variables):
/// `DEPLOYTIME_TEST_MYSQL_REPLICA_PRIMARY_URL`, `DEPLOYTIME_TEST_MYSQL_REPLICA_URL`
/// (a user with every privilege) and `DEPLOYTIME_TEST_MYSQL_REPLICA_READER_URL`
/// (a user that may only SELECT).
#[derive(Debug, Clone)]
pub struct ReplicaPair {
    pub primary: url::Url,
    pub replica: url::Url,
    pub reader: url::Url,
}

/// The replica pair, or why the tests cannot have it: like the other MySQL
/// tests, the replica tests fail without it, they are not skipped.
pub fn mysql_replica_pair() -> anyhow::Result<ReplicaPair> {
    let var = |name: &str| -> anyhow::Result<url::Url> {
        let raw = std::env::var(name).map_err(|_| {
            anyhow::anyhow!(
                "the read replica tests run with the mysql feature: set {name} \
                 (`eval \"$(bash .ci/mariadb-replica.sh)\"` starts a primary and a replica \
                 and prints the variables)"
            )
        })?;
        Ok(url::Url::parse(&raw)?)
    };
    Ok(ReplicaPair {
        primary: var("DEPLOYTIME_TEST_MYSQL_REPLICA_PRIMARY_URL")?,
        replica: var("DEPLOYTIME_TEST_MYSQL_REPLICA_URL")?,
        reader: var("DEPLOYTIME_TEST_MYSQL_REPLICA_READER_URL")?,
    })
}

impl TestDatabase {
    /// A SQLite database in a directory of its own, `DIR/data/deploytime.db`, so
    /// that a test can take the directory away and bring it back.
    pub fn sqlite_in_data_dir() -> anyhow::Result<(Self, PathBuf)> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let database = TestDatabase {
            url: DatabaseUrl::Sqlite(data.join("deploytime.db")),
            _dir: Some(dir),
            mysql: None,
        };
        Ok((database, data))
    }

    pub fn create(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                Ok(TestDatabase {
                    url: DatabaseUrl::Sqlite(dir.path().join("deploytime.db")),
                    _dir: Some(dir),
                    mysql: None,
                })
            }
            Backend::Mysql => Self::create_mysql(),
        }
    }

    #[cfg(feature = "mysql")]
    fn create_mysql() -> anyhow::Result<Self> {
        Self::create_mysql_on(&mysql_admin_url()?)
    }

    /// A database of its own on the MySQL server at `admin`, which may
    /// create databases (the read replica tests' primary).
    #[cfg(feature = "mysql")]
    pub fn create_mysql_on(admin: &url::Url) -> anyhow::Result<Self> {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let name = format!("dt_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = diesel::mysql::MysqlConnection::establish(admin.as_str())?;
        conn.batch_execute(&format!("CREATE DATABASE `{name}`"))?;
        let mut url = admin.clone();
        url.set_path(&format!("/{name}"));
        Ok(TestDatabase {
            url: DatabaseUrl::parse(url.as_str())?,
            _dir: None,
            mysql: Some((admin.to_string(), name)),
        })
    }

    #[cfg(not(feature = "mysql"))]
    fn create_mysql() -> anyhow::Result<Self> {
        anyhow::bail!("MySQL tests need the mysql feature")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        #[cfg(feature = "mysql")]
        if let Some((admin, name)) = &self.mysql {
            use diesel::Connection;
            use diesel::connection::SimpleConnection;
            if let Ok(mut conn) = diesel::mysql::MysqlConnection::establish(admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"));
            }
        }
    }
}

/// Settings for a test server on `url`: a free port, two workers, no signal
/// handling, and a database timeout generous enough for a busy shared test
/// database (a test of outages sets its own).
pub fn settings(url: &DatabaseUrl) -> Settings {
    Settings {
        workers: Some(2),
        shutdown_timeout: 5,
        handle_signals: false,
        db_timeout: Duration::from_secs(10),
        ..Settings::new("127.0.0.1:0", url.clone())
    }
}

/// A server running in the current tokio runtime.
pub struct RunningServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The server's own database handle, to hold connections or wait for its
    /// work in tests.
    pub db: Database,
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Builds the application and runs it on a task of the current runtime
    /// (call it inside one, or with the runtime entered).
    pub fn start(settings: &Settings) -> Result<Self, StartupError> {
        let app = Application::build(settings)?;
        let url = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let db = app.database().clone();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(RunningServer {
            url,
            db,
            handle,
            task,
        })
    }

    /// Stops the server gracefully (in-flight requests finish first) and waits
    /// until it has stopped.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.task.await??;
        Ok(())
    }

    /// A handle that stops the server from anywhere.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }
}
