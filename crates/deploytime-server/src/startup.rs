//! Builds the application from its settings: opens the database, decides the
//! access policy, binds the listener and assembles the HTTP layer. The same code
//! serves production and the tests, which bind to port 0 and read back the port.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use deploytime_core::AbandonPolicy;

use crate::access::AccessPolicy;
use crate::db::{Database, DbError, SetupError};
use crate::gate::{Gate, MailSettingsError, Worker};
use crate::http::{self, HttpSettings, Metrics};
use crate::settings::Settings;

/// `DEPLOYTIME_ADMIN_TOKEN` must be at least this long: 32 hex digits are 128 bits.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] SetupError),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
    #[error("cannot set up the metrics: {0}")]
    Metrics(prometheus::Error),
    #[error("cannot tell whether API tokens exist: {0}")]
    Tokens(DbError),
    #[error(
        "refusing to serve anonymous calls on {bind}, which is not a loopback address: \
         create a token (`deploytime-server token create --role admin --name NAME`), set \
         DEPLOYTIME_ADMIN_TOKEN, or pass --allow-anonymous to accept anyone who can reach it"
    )]
    AnonymousOnNetwork { bind: String },
    #[error(transparent)]
    Mail(#[from] MailSettingsError),
    #[error(
        "--public-url {0:?} is not usable: give the http(s) URL approvers open, e.g. https://deploytime.example.com"
    )]
    PublicUrl(String),
    #[error(
        "DEPLOYTIME_ADMIN_TOKEN is too short: use at least {MIN_ADMIN_TOKEN_CHARS} random characters (e.g. `openssl rand -hex 32`)"
    )]
    WeakAdminToken,
}

pub struct Application {
    port: u16,
    server: Server,
    database: Database,
    /// The release gate's worker, stopped with the server.
    worker: tokio::task::JoinHandle<()>,
    /// Looks at the read replica every few seconds, stopped with the worker.
    replica_watch: tokio::task::JoinHandle<()>,
    stop_worker: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Migrates the database, opens the pool, and binds the listener. The server
    /// does not accept a connection before the migrations have run.
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        if settings
            .admin_token
            .as_ref()
            .is_some_and(|t| t.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS)
        {
            return Err(StartupError::WeakAdminToken);
        }
        let database = Database::open_with_replica(
            &settings.database_url,
            settings.db_limits(),
            settings.replica().as_ref(),
        )?;
        let bind_error = |source| StartupError::Bind {
            bind: settings.bind.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.bind).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let port = local.port();

        let loopback = local.ip().is_loopback();
        let tokens_exist = settings.admin_token.is_some()
            || database.any_token_now().map_err(StartupError::Tokens)?;
        if !tokens_exist && !loopback {
            if !settings.allow_anonymous {
                return Err(StartupError::AnonymousOnNetwork {
                    bind: settings.bind.clone(),
                });
            }
            tracing::warn!(
                bind = %settings.bind,
                "ANONYMOUS ACCESS ON A NETWORK ADDRESS: no token exists and --allow-anonymous \
                 is set, so anyone who can reach this server can record and delete deployments"
            );
        }
        let policy = web::Data::new(AccessPolicy::new(
            loopback || settings.allow_anonymous,
            settings.admin_token.as_ref(),
        ));

        let data = web::Data::new(database.clone());
        let routes = HttpSettings {
            abandon: AbandonPolicy::new(settings.abandon_after),
            request_timeout: settings.request_timeout,
            protect_metrics: settings.protect_metrics,
            hooks: settings.hooks.clone(),
        };
        let metrics = web::Data::new(
            Metrics::new(settings.database_url.backend_name()).map_err(StartupError::Metrics)?,
        );
        database.observe_commit_sizes(metrics.commit_sizes());
        if database.has_replica() {
            metrics.register_replica().map_err(StartupError::Metrics)?;
        }
        if let Some(public) = &settings.gate.public_url {
            let usable = url::Url::parse(public)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !usable {
                return Err(StartupError::PublicUrl(public.clone()));
            }
        } else if local.ip().is_unspecified() {
            tracing::warn!(
                bind = %settings.bind,
                "approval links will point at {local}, which approvers cannot open: set \
                 --public-url (DEPLOYTIME_PUBLIC_URL) to the address they reach the server at"
            );
        }
        let gate = Gate::new(settings.gate.clone(), &format!("http://{local}"))
            .map_err(StartupError::Metrics)?;
        metrics
            .register_gate(gate.metrics())
            .map_err(StartupError::Metrics)?;
        let worker = Worker::new(gate.clone(), database.clone())?;
        let gate = web::Data::new(gate);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::limit_time))
                .wrap(from_fn(http::log_request))
                .app_data(data.clone())
                .app_data(metrics.clone())
                .app_data(policy.clone())
                .app_data(gate.clone())
                .configure(|cfg| http::configure(cfg, &routes))
        })
        .shutdown_timeout(settings.shutdown_timeout);
        if let Some(workers) = settings.workers {
            server = server.workers(workers.max(1));
        }
        if !settings.handle_signals {
            server = server.disable_signals();
        }
        let server = server.listen(listener).map_err(bind_error)?.run();
        let (stop_worker, stop) = tokio::sync::watch::channel(false);
        let replica_watch = tokio::spawn(database.clone().watch_replica(stop.clone()));
        let worker = tokio::spawn(worker.run(stop));
        tracing::info!(
            port,
            database = %settings.database_url,
            anonymous = !tokens_exist,
            "deploytime-server listening"
        );
        if let Some(replica) = &settings.read_database_url {
            tracing::info!(
                read_replica = %replica,
                max_replica_lag = ?settings.max_replica_lag,
                "reports are read on the read replica while it is up and within the bound on lag"
            );
        }
        Ok(Self {
            port,
            server,
            database,
            worker,
            replica_watch,
            stop_worker,
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

    /// Serves until stopped, then stops the release gate's worker (an item
    /// it was working on is taken up again after a restart).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let _ = self.stop_worker.send(true);
        let _ = self.worker.await;
        let _ = self.replica_watch.await;
        served
    }
}
