//! The console component. The web console is not built yet; until it is,
//! this serves one page that says where the API, the CLI and the ingress
//! are, so the URL the demo prints leads somewhere useful.

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
