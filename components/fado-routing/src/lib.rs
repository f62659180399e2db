//! The router's decisions, without I/O, so they can be tested natively and
//! shared by every path that routes (the router component's hot path and
//! its Postgres fallback).
//!
//! - [`request`]: the buckets a request names, the function it calls, the
//!   upstream URL for a deployment's path template, which requests may be
//!   retried;
//! - [`select`]: the selection policies, as a preference order over a
//!   route's deployments;
//! - [`latency`]: peak-EWMA of response times (for `least_latency`);
//! - [`outlier`]: passive outlier detection (consecutive failures eject a
//!   deployment for a growing cooling period);
//! - [`state`]: the per-deployment state a request reads and writes
//!   (in-flight counts, outlier and latency records) and its encoding;
//! - [`headers`]: hop-by-hop headers and `Forwarded`/`X-Forwarded-*`.

pub mod headers;
pub mod latency;
pub mod outlier;
pub mod request;
pub mod select;
pub mod state;
