//! The router's decisions, without I/O, so they can be tested natively and
//! shared by every path that routes: the router's hot path (whose shared
//! counters live in Redis, see `components/router/src/route.lua`, which
//! implements [`select`] and [`outlier`] over the same inputs and is checked
//! against them) and its Postgres fallback.
//!
//! - [`request`]: the buckets a request names, the function it calls, the
//!   upstream URL for a deployment's path template, which requests may be
//!   retried;
//! - [`select`]: the selection policies, as a preference order over a
//!   route's deployments;
//! - [`latency`]: peak-EWMA of response times (for `least_latency`);
//! - [`outlier`]: passive outlier detection (consecutive failures eject a
//!   deployment for a growing cooling period);
//! - [`headers`]: hop-by-hop headers and `Forwarded`/`X-Forwarded-*`.

pub mod headers;
pub mod latency;
pub mod outlier;
pub mod request;
pub mod select;
