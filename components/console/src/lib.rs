//! The console component: FaDO's web console, a single page of plain
//! JavaScript over the same `/api` every client uses. It holds no state:
//! the assets are compiled in, and the browser keeps the admin token for
//! its session. Works the same under `fado` and under Spin.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

/// `(path under /console/, content type, body)`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
];

/// Only this origin's scripts, styles and API; downloads are `blob:` URLs.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

#[http_component]
fn console(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path();
    // `/` is routed here too; send browsers to the console's own prefix.
    if path == "/" || path == "/console" {
        return Ok(Response::builder()
            .status(302)
            .header("location", "/console/")
            .body(Vec::new())
            .build());
    }
    let Some((_, content_type, body)) = path
        .strip_prefix("/console/")
        .and_then(|rest| ASSETS.iter().find(|(p, _, _)| *p == rest))
    else {
        return Ok(Response::builder()
            .status(404)
            .header("content-type", "text/plain; charset=utf-8")
            .body(b"no such console page; the console is at /console/\n".to_vec())
            .build());
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", *content_type)
        .header("cache-control", "no-cache")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(body.as_bytes().to_vec())
        .build())
}
