//! The function's settings, from Spin variables (see spin.toml): a wrong one
//! answers 500 `misconfigured` naming the variable.

use fado_api::{ApiError, ApiResult};
use spin_sdk::variables;
use thumbnail::{Storage, read_order};

pub struct Config {
    pub cluster: String,
    /// The own storage first, then the fallbacks.
    pub storages: Vec<Storage>,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Largest input object, in bytes.
    pub max_input: u64,
    /// FaDO's API base URL and token, when thumbnails go through it.
    pub fado_api: Option<(String, String)>,
}

fn misconfigured(variable: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError {
        field: Some(variable.to_string()),
        ..ApiError::new(
            500,
            "misconfigured",
            format!("variable {variable}: {message}"),
        )
    }
}

fn var(name: &str) -> ApiResult<String> {
    variables::get(name)
        .map(|v| v.trim().to_string())
        .map_err(|e| misconfigured(name, format!("{e:?}")))
}

impl Config {
    pub fn load() -> ApiResult<Self> {
        let storages = read_order(&var("s3_endpoint")?, &var("s3_fallback_endpoints")?)
            .map_err(|e| misconfigured(&e.field, e.message))?;
        let max_input_mib = var("max_input_mib")?;
        let max_input = max_input_mib
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| {
                misconfigured(
                    "max_input_mib",
                    "expected a whole number of MiB from 1 to 1024",
                )
            })?
            << 20;
        let api = var("fado_api")?;
        let fado_api = if api.is_empty() {
            None
        } else {
            let base = fado_model::validate::base_url("fado_api", &api)
                .map_err(|e| misconfigured("fado_api", e.message))?;
            let token = var("fado_token")?;
            if token.is_empty() {
                return Err(misconfigured(
                    "fado_token",
                    "is empty, but fado_api is set: thumbnails are written through FaDO's API with this token",
                ));
            }
            Some((base.trim_end_matches('/').to_string(), token))
        };
        Ok(Self {
            cluster: var("cluster")?,
            storages,
            region: var("s3_region")?,
            access_key: var("s3_access_key")?,
            secret_key: var("s3_secret_key")?,
            max_input,
            fado_api,
        })
    }

    pub fn endpoint(&self, storage: &Storage) -> fado_s3::Endpoint {
        fado_s3::Endpoint {
            url: storage.endpoint.clone(),
            region: self.region.clone(),
            // Path-style works with every S3 service FaDO meets (Garage,
            // MinIO, AWS), without per-bucket DNS names.
            path_style: true,
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
        }
    }
}
