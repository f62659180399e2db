//! A throw-away Mosquitto broker, and a subscriber that collects what it
//! receives.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::{free_port, running_as_root, spawn_watched, wait_for_port};

pub struct Mosquitto {
    dir: tempfile::TempDir,
    pub port: u16,
    _watchdog: Child,
}

impl Mosquitto {
    /// A broker that lets anyone connect.
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// A broker that admits only `user` with `password`.
    pub fn start_with_password(user: &str, password: &str) -> Result<Self> {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("fado-mqtt-").tempdir()?;
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type all\n"
        );
        if running_as_root() {
            // Otherwise it drops to the `mosquitto` user, who cannot read
            // the password file in this private directory.
            conf.push_str("user root\n");
        }
        match login {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                let out = Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, password])
                    .output()
                    .context("running mosquitto_passwd (install mosquitto: infra/setup)")?;
                if !out.status.success() {
                    bail!(
                        "mosquitto_passwd failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        let conf_file = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_file, conf)?;
        let log = dir.path().join("mosquitto.log");
        let watchdog = spawn_watched(
            &format!("mosquitto -c {}", conf_file.display()),
            "kill $child 2>/dev/null",
            &log,
        )?;
        wait_for_port(port, "mosquitto", &log, Duration::from_secs(10))?;
        Ok(Self {
            dir,
            port,
            _watchdog: watchdog,
        })
    }

    /// Spin's address form for this broker with client id `client_id`.
    pub fn address(&self, client_id: &str) -> String {
        format!("mqtt://127.0.0.1:{}?client_id={client_id}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    /// A subscriber to `topic` (at QoS 2, so every message arrives as
    /// published), connected and subscribed when this returns.
    pub async fn subscribe(&self, topic: &str, login: Option<(&str, &str)>) -> Result<Subscriber> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut options = MqttOptions::new(
            format!("fado-test-sub-{}-{n}", std::process::id()),
            "127.0.0.1",
            self.port,
        );
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut events) = AsyncClient::new(options, 16);
        client.subscribe(topic, QoS::ExactlyOnce).await?;
        let (subscribed_tx, mut subscribed) = mpsc::channel(1);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(()).await;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Message {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                            qos: p.qos,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("test subscriber: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed.recv())
            .await
            .context("no SUBACK within 10 s")?;
        Ok(Subscriber {
            rx,
            task,
            _client: client,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
}

pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<Message>,
    task: tokio::task::JoinHandle<()>,
    _client: AsyncClient,
}

impl Subscriber {
    /// The next message, if one arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Message> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
