//! [`Delivery`]: where the output of a delivered run goes (scheduled jobs, background
//! runs). Defaults: discard, stdout, or a channel.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::PortError;
use crate::identity::Identity;
use crate::ids::RunId;

/// A finished run's result, for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryItem {
    /// The run.
    pub run_id: RunId,
    /// Agent name.
    pub agent: String,
    /// Who it ran for.
    pub identity: Identity,
    /// How it ended.
    pub status: crate::run::RunStatus,
    /// The final text, if any.
    pub output: Option<String>,
}

/// Delivers finished runs' outputs.
#[async_trait]
pub trait Delivery: Send + Sync {
    /// Delivers one item.
    ///
    /// # Errors
    /// A [`PortError`] when the destination fails.
    async fn deliver(&self, item: DeliveryItem) -> Result<(), PortError>;
}

/// The default: outputs are dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardDelivery;

#[async_trait]
impl Delivery for DiscardDelivery {
    async fn deliver(&self, _item: DeliveryItem) -> Result<(), PortError> {
        Ok(())
    }
}

/// Prints each output to stdout, one block per run.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutDelivery;

#[async_trait]
impl Delivery for StdoutDelivery {
    async fn deliver(&self, item: DeliveryItem) -> Result<(), PortError> {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "[{} {} {}] {}", item.agent, item.run_id, item.status, item.output.unwrap_or_default())
            .map_err(|e| PortError::Backend { port: "delivery", message: e.to_string() })
    }
}

/// Sends each item into a channel.
#[derive(Debug, Clone)]
pub struct ChannelDelivery(pub mpsc::Sender<DeliveryItem>);

#[async_trait]
impl Delivery for ChannelDelivery {
    async fn deliver(&self, item: DeliveryItem) -> Result<(), PortError> {
        self.0
            .send(item)
            .await
            .map_err(|_| PortError::Backend { port: "delivery", message: "channel closed".into() })
    }
}
