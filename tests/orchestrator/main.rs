//! Integration tests of FaDO itself: the root `spin.toml` served by `fado up`
//! against a fresh database on a real PostgreSQL and a real Redis (see
//! `harness/orchestrator.rs`).

mod catalog;
mod migrations;
mod openapi;
mod planner;
mod replication;
mod scenario;
