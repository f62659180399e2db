//! What the `image` example function decides, kept apart from its I/O so it
//! is tested natively: the call's parameters ([`request`]), the storages to
//! read from in order ([`storage`]), and the thumbnail itself ([`make`]).

pub mod make;
pub mod request;
pub mod storage;

pub use make::{Bounds, Thumbnail, ThumbnailError, fit, make};
pub use request::{DEFAULT_BOX, MAX_BOX, ThumbnailRequest, thumbnail_key};
pub use storage::{Storage, object_api_url, read_order};
