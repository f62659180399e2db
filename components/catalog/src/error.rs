//! API errors: the shared JSON error body (see `fado-api`).

pub use fado_api::{ApiError, ApiResult};
