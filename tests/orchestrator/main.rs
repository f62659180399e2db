//! Integration tests of FaDO itself: the root `spin.toml` served by `fado up`
//! against a fresh database on a real PostgreSQL and a real Redis (see
//! `harness/orchestrator.rs`).

mod catalog;
mod cli;
mod console;
mod demo;
mod durability;
mod migrations;
mod notify;
mod objects;
mod openapi;
mod planner;
mod reconcile;
mod replicas;
mod replication;
mod router;
mod s3_server;
mod schemathesis;
