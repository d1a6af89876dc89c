//! Builds the application: the same code serves production and the tests, which
//! bind to port 0 and read back the real port.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::db::{Database, SetupError};
use crate::routes;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] SetupError),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
}

/// Settings of the reports, shared by the handlers.
#[derive(Debug, Clone)]
pub struct Reporting {
    /// A deployment still running after this long is reported as abandoned.
    pub abandon_after: std::time::Duration,
}

impl Reporting {
    /// Running deployments started before this instant (microseconds) are abandoned.
    pub fn abandon_cutoff(&self) -> i64 {
        let now = deploytime_core::time::to_micros(chrono::Utc::now());
        now.saturating_sub(i64::try_from(self.abandon_after.as_micros()).unwrap_or(i64::MAX))
    }
}

pub struct Application {
    port: u16,
    server: Server,
    database: Database,
}

impl Application {
    /// Migrates the database, opens the pool, and binds the listener. The server
    /// does not accept a connection before the migrations have run.
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let database = Database::open(&settings.database_url, settings.pool_size)?;
        let bind_error = |source| StartupError::Bind {
            bind: settings.bind.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.bind).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let data = web::Data::new(database.clone());
        let reporting = web::Data::new(Reporting {
            abandon_after: settings.abandon_after,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(data.clone())
                .app_data(reporting.clone())
                .configure(routes::config)
        })
        .shutdown_timeout(settings.shutdown_timeout);
        if let Some(workers) = settings.workers {
            server = server.workers(workers.max(1));
        }
        if !settings.handle_signals {
            server = server.disable_signals();
        }
        let server = server.listen(listener).map_err(bind_error)?.run();
        tracing::info!(
            port,
            database = %settings.database_url,
            "deploytime-server listening"
        );
        Ok(Self {
            port,
            server,
            database,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Stops the server gracefully: in-flight requests finish first.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
