//! Where the outbox goes: logged, or POSTed to a consumer as signed Standard Webhooks.

use seathold::background::{PublishError, Publisher};
use seathold::contract::OutboxEvent;
use seathold::webhooks::Signer;
use time::OffsetDateTime;

pub(crate) enum Relay {
    /// Log each event (the default).
    Log,
    /// POST each event to `url`, signed; a failure is retried by the relay after a backoff.
    Http { client: reqwest::Client, url: String, signer: Signer },
}

impl Publisher for Relay {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        for e in events {
            let body = e.to_json();
            match self {
                Self::Log => tracing::info!(event = %body, "relayed"),
                Self::Http { client, url, signer } => {
                    // The event id is the webhook id: the consumer deduplicates redeliveries on it.
                    let h = signer.sign(&format!("evt_{}", e.id.0), OffsetDateTime::now_utc(), body.as_bytes());
                    client
                        .post(url)
                        .header("content-type", "application/json")
                        .header("webhook-id", h.id)
                        .header("webhook-timestamp", h.timestamp)
                        .header("webhook-signature", h.signature)
                        .body(body)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map_err(PublishError::new)?;
                }
            }
        }
        Ok(())
    }
}
