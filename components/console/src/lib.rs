//! The console component. Until the catalog lands it serves one page that
//! says what FaDO is and what this deployment runs, so `fado up` has
//! something real to show.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

const INDEX: &str = include_str!("index.html");

#[http_component]
fn console(req: Request) -> anyhow::Result<impl IntoResponse> {
    // `/` is routed here too; send browsers to the console's own prefix.
    if req.path() == "/" {
        return Ok(Response::builder()
            .status(302)
            .header("location", "/console/")
            .body(())
            .build());
    }
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(INDEX)
        .build())
}
