//! Test component for `wasi:sockets`: opens the connection a request asks
//! for, sends a line, reads it back from the test's echo server, and answers
//! with what happened as JSON: `{"ok": true, "echo": ...}`, or
//! `{"ok": false, "step": ..., "code": ...}` (status 500) where `code` is
//! the WASI error code the guest saw, e.g. `access-denied`.
//!
//! - `GET /tcp?address=HOST:PORT`: TCP connect, write, read. HOST may be an
//!   IP address or a name, which is looked up through `ip-name-lookup`.
//! - `GET /udp?address=IP:PORT&bind=IP:PORT`: UDP bind, send, receive.
//! - `GET /listen?bind=IP:PORT`: TCP bind and listen.

use std::net::{IpAddr, SocketAddr};

use serde_json::{Value, json};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use wasip2::clocks::monotonic_clock;
use wasip2::io::poll;
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};
use wasip2::sockets::udp::OutgoingDatagram;
use wasip2::sockets::{instance_network, ip_name_lookup, tcp_create_socket, udp_create_socket};

const MESSAGE: &[u8] = b"fado socket probe\n";

/// A step that failed and the error code the host gave for it.
struct Failed {
    step: &'static str,
    code: String,
}

fn at(step: &'static str) -> impl Fn(ErrorCode) -> Failed {
    move |e| Failed {
        step,
        code: e.name().to_string(),
    }
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let param = |name: &str| {
        req.query()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    let network = instance_network::instance_network();
    let result = match req.path().rsplit('/').next().unwrap_or_default() {
        "tcp" => tcp(&network, &param("address")),
        "udp" => udp(&network, &param("address"), &param("bind")),
        "listen" => listen(&param("bind")),
        other => {
            return Ok(reply(404, json!({"error": format!("no probe {other:?}")})));
        }
    };
    Ok(match result {
        Ok(echo) => reply(200, json!({"ok": true, "echo": echo})),
        Err(f) => reply(500, json!({"ok": false, "step": f.step, "code": f.code})),
    })
}

fn reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

fn tcp(network: &Network, address: &str) -> Result<String, Failed> {
    let addr = resolve(network, address)?;
    let socket = tcp_create_socket::create_tcp_socket(family(&addr)).map_err(at("create"))?;
    socket
        .start_connect(network, wasi_addr(&addr))
        .map_err(at("connect"))?;
    let (input, output) = loop {
        match socket.finish_connect() {
            Err(ErrorCode::WouldBlock) => {
                socket.subscribe().block();
            }
            other => break other.map_err(at("connect"))?,
        }
    };
    let io = |_| Failed {
        step: "echo",
        code: "stream-error".to_string(),
    };
    output.blocking_write_and_flush(MESSAGE).map_err(io)?;
    let mut echo = Vec::new();
    while echo.len() < MESSAGE.len() {
        let chunk = input
            .blocking_read((MESSAGE.len() - echo.len()) as u64)
            .map_err(io)?;
        echo.extend(chunk);
    }
    Ok(String::from_utf8_lossy(&echo).into_owned())
}

fn udp(network: &Network, address: &str, bind: &str) -> Result<String, Failed> {
    let addr = parse(address)?;
    let local = parse(bind)?;
    let socket = udp_create_socket::create_udp_socket(family(&addr)).map_err(at("create"))?;
    socket
        .start_bind(network, wasi_addr(&local))
        .map_err(at("bind"))?;
    socket.finish_bind().map_err(at("bind"))?;
    let (incoming, outgoing) = socket
        .stream(Some(wasi_addr(&addr)))
        .map_err(at("connect"))?;
    outgoing.subscribe().block();
    outgoing.check_send().map_err(at("send"))?;
    outgoing
        .send(&[OutgoingDatagram {
            data: MESSAGE.to_vec(),
            remote_address: None,
        }])
        .map_err(at("send"))?;
    let timeout = monotonic_clock::subscribe_duration(5_000_000_000);
    loop {
        let received = incoming.receive(1).map_err(at("receive"))?;
        if let Some(d) = received.into_iter().next() {
            return Ok(String::from_utf8_lossy(&d.data).into_owned());
        }
        let ready = incoming.subscribe();
        if poll::poll(&[&ready, &timeout]).contains(&1) {
            return Err(Failed {
                step: "receive",
                code: "timeout".to_string(),
            });
        }
    }
}

fn listen(bind: &str) -> Result<String, Failed> {
    let network = instance_network::instance_network();
    let local = parse(bind)?;
    let socket = tcp_create_socket::create_tcp_socket(family(&local)).map_err(at("create"))?;
    socket
        .start_bind(&network, wasi_addr(&local))
        .map_err(at("bind"))?;
    socket.finish_bind().map_err(at("bind"))?;
    socket.start_listen().map_err(at("listen"))?;
    socket.finish_listen().map_err(at("listen"))?;
    Ok("listening".to_string())
}

fn parse(address: &str) -> Result<SocketAddr, Failed> {
    address.parse().map_err(|_| Failed {
        step: "parse",
        code: format!("not an IP address and port: {address:?}"),
    })
}

/// `address` itself if it is an IP address and port, else its name looked
/// up through `wasi:sockets/ip-name-lookup` (the first address).
fn resolve(network: &Network, address: &str) -> Result<SocketAddr, Failed> {
    if let Ok(addr) = address.parse() {
        return Ok(addr);
    }
    let (name, port) = address.rsplit_once(':').ok_or_else(|| Failed {
        step: "parse",
        code: format!("no port in {address:?}"),
    })?;
    let port: u16 = port.parse().map_err(|_| Failed {
        step: "parse",
        code: format!("bad port in {address:?}"),
    })?;
    let lookup = ip_name_lookup::resolve_addresses(network, name).map_err(at("lookup"))?;
    loop {
        match lookup.resolve_next_address() {
            Err(ErrorCode::WouldBlock) => {
                lookup.subscribe().block();
            }
            Err(e) => return Err(at("lookup")(e)),
            Ok(None) => {
                return Err(Failed {
                    step: "lookup",
                    code: "no addresses".to_string(),
                });
            }
            Ok(Some(ip)) => {
                let ip = match ip {
                    IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
                    IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
                        IpAddr::from([a, b, c, d, e, f, g, h])
                    }
                };
                return Ok(SocketAddr::new(ip, port));
            }
        }
    }
}

fn family(addr: &SocketAddr) -> IpAddressFamily {
    match addr {
        SocketAddr::V4(_) => IpAddressFamily::Ipv4,
        SocketAddr::V6(_) => IpAddressFamily::Ipv6,
    }
}

fn wasi_addr(addr: &SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(a) => {
            let [x, y, z, w] = a.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: a.port(),
                address: (x, y, z, w),
            })
        }
        SocketAddr::V6(a) => {
            let [p, q, r, s, t, u, v, w] = a.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: a.port(),
                flow_info: 0,
                address: (p, q, r, s, t, u, v, w),
                scope_id: 0,
            })
        }
    }
}
