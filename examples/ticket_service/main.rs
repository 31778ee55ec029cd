//! A ticket service over HTTP: the crate's router (`seathold::http`) on a port, with the
//! sweep and the outbox relay in the background. Every route, its JSON and its errors are the
//! router's (see the `seathold::http` docs); this file only reads settings and serves.
//!
//! ```text
//! cargo run --features http --example ticket_service -- --addr 127.0.0.1:8080
//! cargo run --features http,postgres --example ticket_service -- --pg postgres://… [--schema NAME]
//! ```
//!
//! Environment: `SEATHOLD_WEBHOOK_SECRETS` (`whsec_…` secrets, separated by spaces or commas:
//! list the new one beside the old during a key rotation), `SEATHOLD_TICKET_KEY` (32 bytes or
//! more), `SEATHOLD_RELAY_URL` + `SEATHOLD_RELAY_SECRET` (POST the outbox there, signed;
//! otherwise it is logged), `RUST_LOG`. A secret or key left unset is generated (and logged)
//! at start: fine on a laptop, not in production.

mod relay;

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use seathold::background::Background;
#[cfg(feature = "postgres")]
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::tickets::TicketKey;
use seathold::webhooks::{Signer, Verifier, WebhookSecret};
use seathold::{AsyncEngine, AsyncStore, MemoryStore};

use relay::Relay;
use seathold::http::{HttpOptions, router};

type BoxError = Box<dyn Error + Send + Sync>;

const USAGE: &str = "usage: ticket_service [--addr HOST:PORT] [--pg URL [--schema NAME]]";

struct Settings {
    addr: String,
    verifier: Verifier,
    ticket_key: TicketKey,
    relay: Relay,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr) // standard output carries only the address
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let (mut addr, mut pg, mut schema) = ("127.0.0.1:0".to_owned(), None, "seathold".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--addr" => &mut addr,
            "--pg" => pg.insert(String::new()),
            "--schema" => &mut schema,
            _ => return Err(USAGE.into()),
        };
        *slot = args.next().ok_or(USAGE)?;
    }
    let settings = Settings { addr, verifier: verifier()?, ticket_key: ticket_key()?, relay: relay()? };
    match pg {
        None => serve(MemoryStore::new(), settings).await,
        #[cfg(feature = "postgres")]
        Some(url) => {
            let store = PostgresStore::connect(&url, PostgresOptions::new(schema)).await?;
            store.migrate().await?;
            serve(store, settings).await
        }
        #[cfg(not(feature = "postgres"))]
        Some(_) => {
            let _ = schema;
            Err("--pg needs the `postgres` feature: cargo run --features http,postgres --example ticket_service".into())
        }
    }
}

async fn serve<S: AsyncStore + 'static>(store: S, s: Settings) -> Result<(), BoxError> {
    let engine = Arc::new(AsyncEngine::new(store).with_ticket_key(s.ticket_key));
    let background = Background::new(engine.clone())
        .sweep_every(Duration::from_secs(1))
        .relay(s.relay, Duration::from_millis(100))
        .spawn();
    let listener = tokio::net::TcpListener::bind(&s.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = router(engine, HttpOptions::new(s.verifier));
    let served = axum::serve(listener, app).with_graceful_shutdown(stop_signal()).await;
    let stats = background.shutdown().await; // finishes the batch in hand
    tracing::info!(?stats, "stopped");
    Ok(served?)
}

/// Ctrl-C, or SIGTERM (what a process manager sends).
async fn stop_signal() {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => drop(s.recv().await),
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

fn random_bytes() -> Vec<u8> {
    [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()].iter().flat_map(|u| *u.as_bytes()).collect()
}

fn verifier() -> Result<Verifier, BoxError> {
    let listed = std::env::var("SEATHOLD_WEBHOOK_SECRETS").unwrap_or_default();
    let mut secrets = listed
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(WebhookSecret::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if secrets.is_empty() {
        let secret = WebhookSecret::from_bytes(random_bytes())?;
        tracing::warn!(secret = %secret.to_whsec(), "SEATHOLD_WEBHOOK_SECRETS is not set: using a generated secret");
        secrets.push(secret);
    }
    Ok(Verifier::new(secrets)?)
}

fn ticket_key() -> Result<TicketKey, BoxError> {
    let key = std::env::var("SEATHOLD_TICKET_KEY").map(String::into_bytes).unwrap_or_else(|_| {
        tracing::warn!("SEATHOLD_TICKET_KEY is not set: tickets issued now will not scan after a restart");
        random_bytes()
    });
    Ok(TicketKey::new(key)?)
}

fn relay() -> Result<Relay, BoxError> {
    let Ok(url) = std::env::var("SEATHOLD_RELAY_URL") else { return Ok(Relay::Log) };
    let secret =
        std::env::var("SEATHOLD_RELAY_SECRET").map_err(|_| "SEATHOLD_RELAY_URL needs SEATHOLD_RELAY_SECRET")?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    Ok(Relay::Http { client, url, signer: Signer::new(WebhookSecret::parse(&secret)?) })
}
