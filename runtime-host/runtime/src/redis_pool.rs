//! Shared Redis connections, one multiplexed auto-reconnecting connection per
//! address for the whole process: instances borrow it instead of dialling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

#[derive(Default)]
pub struct RedisPool {
    by_address: Mutex<HashMap<String, Arc<OnceCell<ConnectionManager>>>>,
}

impl RedisPool {
    /// The shared connection to `address`, connecting on first use.
    pub async fn get(&self, address: &str) -> redis::RedisResult<ConnectionManager> {
        let cell = {
            let mut map = self.by_address.lock().expect("redis pool lock");
            map.entry(address.to_string()).or_default().clone()
        };
        let conn = cell
            .get_or_try_init(|| async {
                let client = redis::Client::open(address)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(Duration::from_secs(30)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_with_config(client, config).await
            })
            .await?;
        Ok(conn.clone())
    }
}
