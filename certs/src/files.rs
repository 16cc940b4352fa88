//! Reading and writing PEM files with errors that name the file.
//!
//! Private keys are created with mode 0600 from the start (never written
//! world-readable and chmod'ed afterwards), and every write goes through a
//! temporary file and a rename so a crash never leaves half a certificate.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::{CertError, Result};

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| CertError::unreadable(path, e))
}

pub(crate) fn read_string(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|_| CertError::Malformed {
        path: path.to_path_buf(),
        what: "PEM file",
        detail: "not UTF-8 text".into(),
    })
}

/// Load every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| malformed(path, "PEM certificate", e))?;
    if certs.is_empty() {
        return Err(malformed(
            path,
            "PEM certificate",
            "no CERTIFICATE block found",
        ));
    }
    Ok(certs)
}

/// Load the single leaf certificate of a PEM file.
pub fn load_cert(path: &Path) -> Result<CertificateDer<'static>> {
    let mut certs = load_certs(path)?;
    Ok(certs.swap_remove(0))
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| malformed(path, "PEM private key", e))
}

pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let bytes = read(path)?;
    CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| malformed(path, "PEM CRL", e))
}

pub(crate) fn malformed(path: &Path, what: &'static str, detail: impl ToString) -> CertError {
    CertError::Malformed {
        path: path.to_path_buf(),
        what,
        detail: detail.to_string(),
    }
}

/// Atomically write a public file (certificate, CRL, index): mode 0644.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic(path, contents, 0o644)
}

/// Atomically write a secret file (private key): mode 0600 from creation.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic(path, contents, 0o600)
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let err = |source| CertError::Unwritable {
        path: path.to_path_buf(),
        error: source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let tmp = tmp_path(path);
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)?;
    // Make the rename itself durable.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Create a directory readable only by its owner (for key material).
pub fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|error| CertError::Unwritable {
            path: path.to_path_buf(),
            error,
        })
}
