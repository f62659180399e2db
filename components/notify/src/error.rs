//! Errors answer with an HTTP status and the body shape every FaDO API
//! shares (see `fado-api`), so one client reads them all. Storage retries a
//! notification that was not answered 2xx, so passing failures are 503s.

pub use fado_api::{ApiError, ApiResult};
