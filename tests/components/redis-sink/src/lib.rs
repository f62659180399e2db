//! Redis-trigger test component: appends every message it receives to a
//! Redis list (address and key from component variables) so a test can see
//! what was delivered. A message reading `trap` makes it panic, to show that
//! a failing handler does not stop the trigger.

use anyhow::Context;
use spin_sdk::redis::{Connection, RedisParameter};
use spin_sdk::redis_component;
use spin_sdk::variables;

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    if message.as_ref() == b"trap" {
        panic!("deliberate trap on message 'trap'");
    }
    let address = variables::get("sink_address").context("sink_address")?;
    let key = variables::get("sink_key").context("sink_key")?;
    let conn = Connection::open(&address)?;
    conn.execute(
        "RPUSH",
        &[
            RedisParameter::Binary(key.into_bytes()),
            RedisParameter::Binary(message.to_vec()),
        ],
    )?;
    Ok(())
}
