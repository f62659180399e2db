//! Host bindings for the Spin interfaces in `wit/`, generated once for every
//! capability. Resources map to each capability's own handle type.

wasmtime::component::bindgen!({
    path: "wit",
    world: "fado:host/redis-trigger",
    imports: { default: async },
    exports: { default: async },
    with: {
        "fermyon:spin/redis.connection": crate::capabilities::redis::RedisConnection,
        "fermyon:spin/key-value.store": crate::capabilities::key_value::KeyValueHandle,
        "wasi:keyvalue/store.bucket": crate::capabilities::key_value::KeyValueHandle,
        "wasi:keyvalue/atomics.cas": crate::capabilities::key_value::CasHandle,
        "spin:postgres/postgres.connection": crate::capabilities::postgres::PgConnection,
        "fermyon:spin/mqtt.connection": crate::capabilities::mqtt::MqttConnection,
        "fermyon:spin/mysql.connection": crate::capabilities::mysql::MysqlConnection,
    },
});
