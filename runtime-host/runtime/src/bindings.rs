//! Host bindings for the Spin interfaces in `wit/`, generated once for every
//! capability. Resources map to each capability's own handle type.

wasmtime::component::bindgen!({
    path: "wit",
    world: "fado:host/redis-trigger",
    imports: {
        default: async,
        // These return plain values, so a bad handle can only trap.
        "spin:sqlite/sqlite.[method]connection.last-insert-rowid": async | trappable,
        "spin:sqlite/sqlite.[method]connection.changes": async | trappable,
    },
    exports: { default: async },
    with: {
        "fermyon:spin/redis.connection": crate::capabilities::redis::RedisConnection,
        "fermyon:spin/key-value.store": crate::capabilities::key_value::KeyValueHandle,
        "wasi:keyvalue/store.bucket": crate::capabilities::key_value::KeyValueHandle,
        "wasi:keyvalue/atomics.cas": crate::capabilities::key_value::CasHandle,
        "spin:postgres/postgres.connection": crate::capabilities::postgres::PgConnection,
        "fermyon:spin/sqlite.connection": crate::capabilities::sqlite::SqliteConnection,
        "spin:sqlite/sqlite.connection": crate::capabilities::sqlite::SqliteConnection,
        "fermyon:spin/mqtt.connection": crate::capabilities::mqtt::MqttConnection,
        "fermyon:spin/mysql.connection": crate::capabilities::mysql::MysqlConnection,
    },
});
