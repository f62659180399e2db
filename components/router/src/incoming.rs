//! The client's request as the router needs it: read once, with as few
//! host calls as `wasi:http` allows (the headers come over in one list).

use wasip2::http::types::{IncomingBody, IncomingRequest, Method, Scheme};

pub struct Incoming {
    pub method: Method,
    /// Path and query as the client sent them (`/` when absent).
    pub path: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Header names are lowercase (the host's HTTP layer normalises them).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<IncomingBody>,
}

impl Incoming {
    pub fn read(request: IncomingRequest) -> Self {
        let headers = {
            let fields = request.headers();
            fields.entries()
        };
        let scheme = match request.scheme() {
            Some(Scheme::Https) => "https",
            _ => "http",
        };
        Incoming {
            method: request.method(),
            path: request.path_with_query().unwrap_or_else(|| "/".into()),
            scheme,
            headers,
            body: request.consume().ok(),
        }
    }

    /// The first value of header `name` (lowercase), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every value of header `name`, raw.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn method_str(&self) -> &str {
        match &self.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other(s) => s,
        }
    }
}
