//! Storage credentials at rest: AES-256-GCM with a key derived (SHA-256)
//! from the secret `encryption_key` variable. The stored form is the 12-byte
//! random nonce followed by the ciphertext and tag.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the system random source failed: {0}")]
    Random(String),
    #[error(
        "a stored secret cannot be decrypted with this encryption_key: it was stored under \
         another key. Run FaDO with that key (the encryption_key variable; ./infra/up keeps it \
         in .fado/encryption-key), or store the credentials again \
         (PATCH /api/storage-deployments/{{id}} with its secret_key)"
    )]
    Decrypt,
}

fn cipher(passphrase: &str) -> Aes256Gcm {
    let key = Sha256::digest(passphrase.as_bytes());
    Aes256Gcm::new_from_slice(&key).expect("SHA-256 gives a 32-byte key")
}

pub fn encrypt(passphrase: &str, plaintext: &str) -> Result<Vec<u8>, SecretError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
    let ct = cipher(passphrase)
        .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
        .map_err(|_| SecretError::Decrypt)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

pub fn decrypt(passphrase: &str, stored: &[u8]) -> Result<String, SecretError> {
    if stored.len() < 12 + 16 {
        return Err(SecretError::Decrypt);
    }
    let (nonce, ct) = stored.split_at(12);
    let pt = cipher(passphrase)
        .decrypt(Nonce::from_slice(nonce), ct)
        .map_err(|_| SecretError::Decrypt)?;
    String::from_utf8(pt).map_err(|_| SecretError::Decrypt)
}

/// The stored form of a bearer token (notification tokens): hex SHA-256.
/// Tokens are long random strings, so a plain hash is enough to keep a
/// database leak from revealing them.
pub fn token_digest(token: &str) -> String {
    hex_lower(&Sha256::digest(token.as_bytes()))
}

/// Whether `token` matches a stored [`token_digest`], in constant time.
pub fn token_matches(token: &str, digest: &str) -> bool {
    let given = token_digest(token);
    given.len() == digest.len()
        && given
            .bytes()
            .zip(digest.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_digests_match_only_their_token() {
        let d = token_digest("a-notification-token");
        assert_eq!(d.len(), 64);
        assert!(token_matches("a-notification-token", &d));
        assert!(!token_matches("a-notification-tokem", &d));
        assert!(!token_matches("", &d));
    }

    #[test]
    fn round_trip_and_wrong_key() {
        let blob = encrypt("k1", "s3cr3t").unwrap();
        assert_ne!(&blob[12..], b"s3cr3t");
        assert_eq!(decrypt("k1", &blob).unwrap(), "s3cr3t");
        assert_eq!(decrypt("k2", &blob), Err(SecretError::Decrypt));
        // The message says how to recover, not only what failed.
        let message = SecretError::Decrypt.to_string();
        assert!(message.contains(".fado/encryption-key"), "{message}");
        assert!(
            message.contains("PATCH /api/storage-deployments/{id}"),
            "{message}"
        );
        let again = encrypt("k1", "s3cr3t").unwrap();
        assert_ne!(blob, again, "a fresh nonce each time");
    }
}
