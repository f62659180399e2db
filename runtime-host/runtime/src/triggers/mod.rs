//! Triggers: what turns outside events into component invocations.

pub mod http;
pub mod redis;
pub mod sweeps;
