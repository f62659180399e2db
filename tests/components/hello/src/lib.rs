//! The smallest useful HTTP component: a fixed greeting. Used by the host
//! benchmark and by tests that only need something to answer.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn hello(_req: Request) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello from FaDO\n")
        .build())
}
