//! Integration tests of the `fado` host: each test runs real `fado serve`
//! processes against real PostgreSQL, Redis, Mosquitto and MariaDB servers
//! started by the harness, using the test components in `tests/components/`.

mod failures;
mod http;
mod imports;
mod key_value;
mod lifecycle;
mod mqtt;
mod mysql;
mod outbound;
mod postgres;
mod redis_outbound;
mod redis_trigger;
mod sockets;
mod sqlite;
mod variables;
