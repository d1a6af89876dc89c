//! The store path's limit without HTTP: the same validation, the same pooled
//! connections and the same transactions (group commit included) as
//! `POST /api/v1/events`, driven by N concurrent tasks for a fixed time with
//! the same sequence of events as `bench/store.lua` sends (the same components,
//! as many in flight). `bench/store.sh` compares the server's throughput with
//! this figure.
//!
//!     cargo run --release --features mysql --example store_limit -- URL CONCURRENCY SECONDS [POOL]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use deploytime_core::EventInput;
use deploytime_core::access::Credential;
use deploytime_server::db::{Database, DatabaseUrl, DbLimits};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: store_limit DATABASE_URL CONCURRENCY SECONDS [POOL_SIZE]";
    let url = DatabaseUrl::parse(args.get(1).ok_or_else(|| anyhow::anyhow!(usage))?)?;
    let concurrency: u64 = args.get(2).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let seconds: u64 = args.get(3).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let pool: u32 = args.get(4).map(|p| p.parse()).transpose()?.unwrap_or(8);
    let db = Database::open(
        &url,
        DbLimits {
            pool_size: pool,
            ..DbLimits::DEFAULT
        },
    )?;
    let stored = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    // The same sequence of events as bench/store.lua: wrk runs one thread per
    // connection up to two, and each thread's connections share one counter,
    // which walks 1,000 components per thread, a start and then its finish.
    let groups = concurrency.clamp(1, 2);
    let counters: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (db, stored, failed) = (db.clone(), stored.clone(), failed.clone());
            let counters = counters.clone();
            let group = worker % groups;
            let counter = if group == 0 { 0 } else { 1 };
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = counters[counter].fetch_add(1, Ordering::Relaxed);
                    let component = format!("bench-{group}-{}", (i / 2) % 1000);
                    let input = EventInput {
                        component: Some(component),
                        phase: Some(
                            if i.is_multiple_of(2) {
                                "start"
                            } else {
                                "finish"
                            }
                            .into(),
                        ),
                        status: (i % 2 == 1).then(|| "success".into()),
                        ..Default::default()
                    };
                    let now = Utc::now();
                    let Ok(event) = input.validate(now) else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    match db.store(event, now, Credential::Anonymous).await {
                        Ok(_) => stored.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stored = stored.load(Ordering::Relaxed);
    println!(
        "{{\"stored\": {stored}, \"failed\": {}, \"seconds\": {elapsed:.3}, \"per_second\": {:.1}}}",
        failed.load(Ordering::Relaxed),
        stored as f64 / elapsed
    );
    Ok(())
}
