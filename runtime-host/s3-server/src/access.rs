//! Who may do what: every request must be signed with the server's one key
//! (s3s checks the signature; this refuses anonymous requests), for the
//! server's region.
//!
//! s3s verifies a SigV4 signature with whatever region the request names, so
//! a client configured for another region would otherwise get in. Refusing
//! it the way AWS does (`AuthorizationHeaderMalformed`, "expecting '…'")
//! lets clients that discover the region, FaDO's storage check among them,
//! learn it.

use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::s3_error;

/// The one key pair. Unlike s3s's `SimpleAuth`, which answers an unknown
/// key with `NotSignedUp`, it answers `InvalidAccessKeyId` as S3 does, so
/// clients (FaDO's storage check among them) can tell the key from the secret.
pub struct SingleKeyAuth {
    access_key: String,
    secret_key: SecretKey,
}

impl SingleKeyAuth {
    pub fn new(access_key: String, secret_key: String) -> Self {
        Self {
            access_key,
            secret_key: SecretKey::from(secret_key),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for SingleKeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.access_key {
            Ok(self.secret_key.clone())
        } else {
            Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            ))
        }
    }
}

pub struct SingleKeyAccess {
    region: String,
}

impl SingleKeyAccess {
    pub fn new(region: String) -> Self {
        Self { region }
    }
}

#[async_trait::async_trait]
impl S3Access for SingleKeyAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(
                AccessDenied,
                "anonymous requests are not allowed: sign them with the server's access key"
            ));
        }
        let authorization = cx
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let region = signed_region(authorization, cx.uri().query());
        match region {
            Some(r) if r != self.region => Err(s3_error!(
                AuthorizationHeaderMalformed,
                "The authorization header is malformed; the region '{r}' is wrong; expecting '{}'",
                self.region
            )),
            _ => Ok(()),
        }
    }
}

/// The region of a SigV4 credential scope (`AK/DATE/REGION/s3/aws4_request`),
/// from the `Authorization` header or a presigned URL's `X-Amz-Credential`.
/// `None` for other schemes (SigV2 names no region).
pub fn signed_region(authorization: Option<&str>, query: Option<&str>) -> Option<String> {
    if let Some(h) = authorization
        && let Some(rest) = h.strip_prefix("AWS4-HMAC-SHA256")
    {
        let scope = rest
            .split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("Credential="))?;
        return region_of_scope(scope);
    }
    let query = query?;
    let value = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("X-Amz-Credential="))?;
    let scope = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .ok()?;
    region_of_scope(&scope)
}

fn region_of_scope(scope: &str) -> Option<String> {
    let parts: Vec<&str> = scope.split('/').collect();
    // The access key may itself contain '/', so count from the end.
    (parts.len() >= 5).then(|| parts[parts.len() - 3].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_the_authorization_header() {
        let h = "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(signed_region(Some(h), None).as_deref(), Some("eu-west-1"));
        let h = "AWS4-HMAC-SHA256 Credential=AK/ID/20260101/garage/s3/aws4_request,SignedHeaders=host,Signature=abc";
        assert_eq!(signed_region(Some(h), None).as_deref(), Some("garage"));
    }

    #[test]
    fn region_from_a_presigned_url() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z";
        assert_eq!(signed_region(None, Some(q)).as_deref(), Some("us-east-1"));
    }

    #[test]
    fn no_region_without_sigv4() {
        assert_eq!(signed_region(Some("AWS AKID:signature"), None), None);
        assert_eq!(signed_region(None, Some("list-type=2")), None);
        assert_eq!(signed_region(None, None), None);
        assert_eq!(
            signed_region(Some("AWS4-HMAC-SHA256 Credential=short"), None),
            None
        );
    }
}
