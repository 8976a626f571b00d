//! Shared helpers.

use std::sync::Arc;

use chatbot::{App, AppOptions, Stores, models};
use executus::ports::{ChannelDelivery, DeliveryItem};
use tokio::sync::mpsc;

/// The app over the bundled transcript and in-memory stores; deliveries come out of the
/// returned channel.
pub async fn bundled_app() -> (App, mpsc::Receiver<DeliveryItem>) {
    let (tx, rx) = mpsc::channel(8);
    let mut options = AppOptions::new(models::bundled_registry().unwrap(), Stores::in_memory());
    options.delivery = Arc::new(ChannelDelivery(tx));
    (App::build(options).await.unwrap(), rx)
}
