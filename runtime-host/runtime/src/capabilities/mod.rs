//! Host capabilities, one module each, in the manner of Spin's factors.
//!
//! A capability owns three things: its linker wiring (the host side of the
//! interfaces it provides), its application-level state (configuration
//! derived from the manifest plus shared resources such as connection pools)
//! and its per-instance state (what one request or message may touch). The
//! [`Capability`] trait captures exactly that, and the `capabilities!` list at
//! the bottom of this file is the one place where a new capability is added.

pub mod key_value;
pub mod mqtt;
pub mod mysql;
pub mod outbound_http;
mod pools;
pub mod postgres;
pub mod redis;
pub mod sqlite;
pub mod variables;
pub mod wasi;

use anyhow::{Context, Result};
use wasmtime::StoreLimits;
use wasmtime::component::{Linker, ResourceTable};

use crate::app::AppContext;

/// Index of a component within the application, assigned at load time so the
/// per-instance path never looks components up by name.
pub type ComponentIndex = usize;

pub trait Capability: Sized + Send + Sync + 'static {
    /// State one instance owns; lives inside the wasmtime `Store`.
    type InstanceState: Send + 'static;

    /// Adds this capability's host interfaces to the linker. `get` projects
    /// the store data onto this capability's instance state.
    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut Self::InstanceState,
    ) -> Result<()>;

    /// Builds the application-level state, once, when the app loads.
    fn configure(app: &AppContext) -> Result<Self>;

    /// Builds the state for one new instance of `component`.
    fn instance_state(&self, component: ComponentIndex) -> Result<Self::InstanceState>;
}

macro_rules! capabilities {
    ($($field:ident : $module:ident :: $ty:ident),* $(,)?) => {
        /// Application-level state of every capability.
        pub struct Capabilities {
            $(pub $field: $module::$ty,)*
        }

        /// The data of one instance's `Store`: the shared resource table,
        /// memory limits, and each capability's instance state.
        pub struct StoreData {
            pub table: ResourceTable,
            pub limits: StoreLimits,
            $(pub $field: <$module::$ty as Capability>::InstanceState,)*
        }

        impl Capabilities {
            pub fn configure(app: &AppContext) -> Result<Self> {
                Ok(Self {
                    $($field: <$module::$ty as Capability>::configure(app)
                        .with_context(|| format!("configuring the {} capability", stringify!($field)))?,)*
                })
            }

            pub fn add_to_linker(linker: &mut Linker<StoreData>) -> Result<()> {
                $(<$module::$ty as Capability>::add_to_linker(linker, |d| &mut d.$field)
                    .with_context(|| format!("linking the {} capability", stringify!($field)))?;)*
                Ok(())
            }

            pub fn store_data(&self, component: ComponentIndex, limits: StoreLimits) -> Result<StoreData> {
                Ok(StoreData {
                    table: ResourceTable::new(),
                    limits,
                    $($field: self.$field.instance_state(component)?,)*
                })
            }
        }
    };
}

capabilities! {
    wasi: wasi::Wasi,
    http: outbound_http::OutboundHttp,
    redis: redis::OutboundRedis,
    postgres: postgres::OutboundPostgres,
    mqtt: mqtt::OutboundMqtt,
    mysql: mysql::OutboundMysql,
    variables: variables::Variables,
    key_value: key_value::KeyValue,
    sqlite: sqlite::Sqlite,
}
