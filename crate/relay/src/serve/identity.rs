//! The relay's persistent identity: libp2p key and WebRTC certificate in the data directory.
//!
//! A browser dials the relay by an address that contains both the peer id (from the key) and
//! the certificate's hash, so both must survive restarts or every page needs a new address.
//! Files are written to a temporary name and renamed, so a crash never leaves half a key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use libp2p_webrtc::tokio::Certificate;

/// File holding the libp2p identity key (protobuf encoding).
pub const KEY_FILE: &str = "identity.key";
/// File holding the WebRTC certificate (PEM).
pub const CERT_FILE: &str = "webrtc-cert.pem";
/// Largest identity or certificate file read; real ones are a few hundred bytes.
const MAX_IDENTITY_FILE_BYTES: u64 = 64 * 1024;

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {len_bytes} bytes, more than an identity file can be")]
    TooLarge { path: PathBuf, len_bytes: u64 },
    #[error("{path} does not hold a valid libp2p key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("{path} does not hold a valid WebRTC certificate: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("cannot generate a WebRTC certificate: {0}")]
    Generate(String),
}

/// The relay's key and certificate.
pub struct Identity {
    pub keypair: Keypair,
    pub certificate: Certificate,
}

/// Loads the key and certificate from `data_dir`, creating (and saving) whichever is missing.
pub fn load_or_create(data_dir: &Path) -> Result<Identity, IdentityError> {
    let key_path = data_dir.join(KEY_FILE);
    let keypair = match read_small(&key_path)? {
        Some(bytes) => {
            Keypair::from_protobuf_encoding(&bytes).map_err(|error| IdentityError::BadKey {
                path: key_path.clone(),
                reason: error.to_string(),
            })?
        }
        None => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(|error| IdentityError::BadKey {
                    path: key_path.clone(),
                    reason: error.to_string(),
                })?;
            write_atomically(&key_path, &bytes)?;
            tracing::info!(path = %key_path.display(), "created a new relay identity");
            keypair
        }
    };
    let cert_path = data_dir.join(CERT_FILE);
    let certificate = match read_small(&cert_path)? {
        Some(bytes) => {
            let pem = String::from_utf8(bytes).map_err(|_| IdentityError::BadCertificate {
                path: cert_path.clone(),
                reason: "not UTF-8".into(),
            })?;
            check_expires_block(&pem).map_err(|reason| IdentityError::BadCertificate {
                path: cert_path.clone(),
                reason,
            })?;
            Certificate::from_pem(&pem).map_err(|error| IdentityError::BadCertificate {
                path: cert_path.clone(),
                reason: error.to_string(),
            })?
        }
        None => {
            let certificate = Certificate::generate(&mut rand::rng())
                .map_err(|error| IdentityError::Generate(error.to_string()))?;
            write_atomically(&cert_path, certificate.serialize_pem().as_bytes())?;
            tracing::info!(path = %cert_path.display(), "created a new WebRTC certificate");
            certificate
        }
    };
    Ok(Identity {
        keypair,
        certificate,
    })
}

/// The first block of a certificate file, if it is the `EXPIRES` block that libp2p-webrtc
/// writes first, holds the 8 bytes of a time. webrtc 0.17.2's `RTCCertificate::from_pem`
/// slices those 8 bytes without checking that they are there, so a damaged file made the relay
/// panic at start instead of saying what is wrong (found by fuzzing, FUZZING.md). Any other
/// first block is left to `from_pem`, which refuses it with an error.
fn check_expires_block(pem_text: &str) -> Result<(), String> {
    let first = pem_text.split("\n\n").next().unwrap_or_default();
    let Ok(block) = pem::parse(first) else {
        return Ok(());
    };
    if block.tag() == "EXPIRES" && block.contents().len() < 8 {
        return Err(format!(
            "its EXPIRES block holds {} bytes, not the 8 of a time",
            block.contents().len()
        ));
    }
    Ok(())
}

fn read_small(path: &Path) -> Result<Option<Vec<u8>>, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    let len_bytes = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io(error)),
    };
    if len_bytes > MAX_IDENTITY_FILE_BYTES {
        return Err(IdentityError::TooLarge {
            path: path.to_owned(),
            len_bytes,
        });
    }
    fs::read(path).map(Some).map_err(io)
}

/// Writes `bytes` to `path` through a temporary file and a rename, readable by the owner only.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(first.keypair.public(), second.keypair.public());
        assert_eq!(
            first.certificate.fingerprint(),
            second.certificate.fingerprint()
        );
    }

    #[test]
    fn garbage_key_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), b"not a key").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(IdentityError::BadKey { .. })
        ));
        assert_eq!(fs::read(dir.path().join(KEY_FILE)).unwrap(), b"not a key");
    }

    /// Found by fuzzing (FUZZING.md, `relay_identity`): a certificate file whose `EXPIRES`
    /// block holds fewer than 8 bytes made libp2p-webrtc's reader panic; it is an error now.
    #[test]
    fn a_certificate_with_a_short_expiry_block_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let path = dir.path().join(CERT_FILE);
        let pem = fs::read_to_string(&path).unwrap();
        let short = pem::encode(&pem::Pem::new("EXPIRES", vec![1, 2, 3]));
        let first = pem.split("\n\n").next().unwrap();
        fs::write(&path, pem.replacen(first, short.trim_end(), 1)).unwrap();
        match load_or_create(dir.path()) {
            Err(IdentityError::BadCertificate { reason, .. }) => {
                assert!(reason.contains("EXPIRES block holds 3 bytes"), "{reason}")
            }
            other => panic!("expected a bad certificate, got {:?}", other.err()),
        }
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![b'a'; MAX_IDENTITY_FILE_BYTES as usize + 1];
        fs::write(dir.path().join(KEY_FILE), big).unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(IdentityError::TooLarge { .. })
        ));
    }
}
