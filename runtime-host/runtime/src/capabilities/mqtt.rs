//! `fermyon:spin/mqtt@2.0.0`: publishing to MQTT brokers the component's
//! `allowed_outbound_hosts` permit (scheme `mqtt`, port 1883 by default).
//!
//! As in Spin, a guest `connection` is one broker session of its own,
//! connected on the first publish: sessions are not pooled, because the
//! address names the MQTT client id and a broker drops a session when
//! another connects with the same id. `publish` drives the session until
//! the message is written (QoS 0), acknowledged (QoS 1, PUBACK) or
//! completed (QoS 2, PUBCOMP).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use fado_manifest::AllowedHosts;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;
use crate::bindings::fermyon::spin2_0_0::mqtt::{self as v2, Error, Payload, Qos};

/// Open connections one instance may hold at once.
const MAX_CONNECTIONS_PER_INSTANCE: usize = 64;
/// Requests queued towards one session; publish waits for each in turn.
const REQUEST_QUEUE: usize = 8;
/// MQTT's own limit on a packet (the remaining-length field's maximum);
/// rumqttc's 10 KiB default would refuse ordinary payloads.
const MAX_PACKET_BYTES: usize = 268_435_455;
/// How long a closing session may take to say DISCONNECT to its broker.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

pub struct OutboundMqtt {
    allowed: Vec<Arc<AllowedHosts>>,
    limits: Arc<Limits>,
}

/// `[outbound_mqtt]` of the runtime config.
struct Limits {
    max_payload: Option<usize>,
    /// Connections open at once across the application.
    connections: Option<Arc<Semaphore>>,
}

pub struct InstanceMqtt {
    allowed: Arc<AllowedHosts>,
    limits: Arc<Limits>,
    table: ResourceTable,
    open: usize,
}

/// The host side of a guest's `connection` resource: one broker session.
pub struct MqttConnection {
    client: AsyncClient,
    events: EventLoop,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Capability for OutboundMqtt {
    type InstanceState = InstanceMqtt;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut InstanceMqtt,
    ) -> Result<()> {
        v2::add_to_linker::<StoreData, HasSelf<InstanceMqtt>>(linker, get)
            .map_err(anyhow::Error::from)
    }

    fn configure(app: &AppContext) -> Result<Self> {
        let config = &app.runtime_config.outbound_mqtt;
        Ok(Self {
            allowed: app
                .components
                .iter()
                .map(|c| c.allowed_hosts.clone())
                .collect(),
            limits: Arc::new(Limits {
                max_payload: config.max_payload_size_bytes,
                connections: config.max_connections.map(|n| Arc::new(Semaphore::new(n))),
            }),
        })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<InstanceMqtt> {
        Ok(InstanceMqtt {
            allowed: self.allowed[component].clone(),
            limits: self.limits.clone(),
            table: ResourceTable::new(),
            open: 0,
        })
    }
}

/// The session options for `address`, as Spin reads it: `mqtt://` or
/// `tcp://`, a `client_id` query parameter (required), and optionally
/// `keep_alive_secs`, `clean_session` and credentials in the URL, which
/// non-empty `username`/`password` arguments replace.
fn options(
    address: &str,
    username: String,
    password: String,
    keep_alive_secs: u64,
) -> Result<MqttOptions, Error> {
    let mut options = MqttOptions::parse_url(address).map_err(|e| {
        tracing::info!(host = host(address), "MQTT address refused: {e}");
        Error::InvalidAddress
    })?;
    if !username.is_empty() || !password.is_empty() {
        options.set_credentials(username, password);
    }
    // The CONNECT packet carries the interval as 16-bit seconds.
    options.set_keep_alive(Duration::from_secs(
        keep_alive_secs.min(u64::from(u16::MAX)),
    ));
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    Ok(options)
}

/// The host an address names, for logs (the address may hold a password).
fn host(address: &str) -> String {
    url::Url::parse(address)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

fn qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

impl MqttConnection {
    /// Ends the session politely (DISCONNECT), so the broker does not log
    /// a lost client; without a runtime the socket just closes.
    fn close(self) {
        let Self {
            client, mut events, ..
        } = self;
        if events.network.is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            if client.try_disconnect().is_err() {
                return;
            }
            let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
                while let Ok(e) = events.poll().await {
                    if e == Event::Outgoing(Outgoing::Disconnect) {
                        break;
                    }
                }
            })
            .await;
        });
    }

    /// Queues one publish and polls the session until the broker has it as
    /// `qos` requires. The session connects (again) here if it is not up.
    async fn publish(&mut self, topic: String, payload: Payload, qos: QoS) -> Result<(), Error> {
        self.client
            .try_publish(topic, qos, false, payload)
            .map_err(|e| Error::Other(e.to_string()))?;
        let mut packet_id = None;
        loop {
            let event = match self.events.poll().await {
                Ok(event) => event,
                Err(e) => {
                    // Drop whatever this call queued: the guest is told it
                    // failed, so it must not go out on a later reconnect.
                    self.events.clean();
                    self.events.pending.clear();
                    return Err(Error::ConnectionFailed(e.to_string()));
                }
            };
            match (qos, event, packet_id) {
                (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)), _) => return Ok(()),
                (_, Event::Outgoing(Outgoing::Publish(id)), None) => packet_id = Some(id),
                (QoS::AtLeastOnce, Event::Incoming(Packet::PubAck(ack)), Some(id))
                    if ack.pkid == id =>
                {
                    return Ok(());
                }
                (QoS::ExactlyOnce, Event::Incoming(Packet::PubComp(done)), Some(id))
                    if done.pkid == id =>
                {
                    return Ok(());
                }
                _ => {}
            }
        }
    }
}

impl v2::Host for InstanceMqtt {}

impl v2::HostConnection for InstanceMqtt {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<MqttConnection>, Error> {
        if !self.allowed.allows_url(&address) {
            tracing::info!(
                host = host(&address),
                "outbound MQTT denied: not in allowed_outbound_hosts"
            );
            return Err(Error::ConnectionFailed(format!(
                "address {address} is not permitted"
            )));
        }
        let options = options(&address, username, password, keep_alive_interval_in_secs)?;
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(Error::TooManyConnections);
        }
        let permit = match &self.limits.connections {
            Some(s) => Some(
                s.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::TooManyConnections)?,
            ),
            None => None,
        };
        let (client, events) = AsyncClient::new(options, REQUEST_QUEUE);
        let r = self
            .table
            .push(MqttConnection {
                client,
                events,
                _permit: permit,
            })
            .map_err(|_| Error::TooManyConnections)?;
        self.open += 1;
        Ok(r)
    }

    async fn publish(
        &mut self,
        r: Resource<MqttConnection>,
        topic: String,
        payload: Payload,
        q: Qos,
    ) -> Result<(), Error> {
        if let Some(max) = self.limits.max_payload
            && payload.len() > max
        {
            return Err(Error::Other(format!(
                "payload size {} exceeds the maximum allowed size of {max} bytes",
                payload.len()
            )));
        }
        let conn = self
            .table
            .get_mut(&r)
            .map_err(|e| Error::Other(e.to_string()))?;
        conn.publish(topic, payload, qos(q)).await
    }

    async fn drop(&mut self, r: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(r)?.close();
        self.open -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_spin_reads_them() {
        let o = options(
            "mqtt://broker:1884?client_id=c1",
            "u".into(),
            "p".into(),
            30,
        )
        .unwrap();
        assert_eq!(o.broker_address(), ("broker".to_string(), 1884));
        assert_eq!(o.client_id(), "c1");
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u", "p")
        );
        assert_eq!(o.keep_alive(), Duration::from_secs(30));
        let o = options(
            "mqtt://a:b@broker?client_id=c",
            String::new(),
            String::new(),
            0,
        )
        .unwrap();
        assert_eq!(o.broker_address().1, 1883);
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("a", "b")
        );
        for bad in [
            "mqtt://broker:1883",
            "http://broker?client_id=c",
            "mqtts://broker?client_id=c",
            "not a url",
        ] {
            assert!(
                matches!(
                    options(bad, String::new(), String::new(), 0),
                    Err(Error::InvalidAddress)
                ),
                "{bad}"
            );
        }
    }
}
