//! The database URL (libpq style) and the TLS it asks for.
//!
//! Both libpq forms are accepted: `postgres://user:password@host:port/db?k=v`
//! and `host=... port=... user=... dbname=...`. tokio-postgres parses
//! everything but the TLS parameters, which are libpq's and handled here:
//!
//! | `sslmode`        | TLS                      | server certificate          |
//! |------------------|--------------------------|-----------------------------|
//! | `disable`        | never                    | -                           |
//! | `prefer` (default) | if the server offers it | not checked (as libpq)      |
//! | `require`        | always                   | not checked (as libpq)      |
//! | `verify-ca`      | always                   | chain to a trusted root     |
//! | `verify-full`    | always                   | chain and host name         |
//!
//! Trusted roots are the PEM file `sslrootcert=FILE`, or else the Mozilla
//! roots (webpki-roots). TLS is rustls with the gateway's ring provider.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A parsed database URL.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// Everything but TLS, for tokio-postgres.
    pub config: tokio_postgres::Config,
    pub tls_mode: TlsMode,
    /// `sslrootcert`, when given.
    pub root_cert: Option<String>,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("target", &self.describe())
            .field("tls_mode", &self.tls_mode)
            .finish()
    }
}

impl DatabaseUrl {
    /// Parses `url`; `timeout` bounds connecting.
    pub fn parse(url: &str, timeout: Duration) -> Result<Self, PgError> {
        let (rest, tls) = split_tls_parameters(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|error| PgError::Url(format!("{error}")))?;
        config
            .ssl_mode(match tls.0 {
                TlsMode::Disable => SslMode::Disable,
                TlsMode::Prefer => SslMode::Prefer,
                _ => SslMode::Require,
            })
            .connect_timeout(timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .application_name("gateway");
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        Ok(DatabaseUrl {
            config,
            tls_mode: tls.0,
            root_cert: tls.1,
        })
    }

    /// `host:port/dbname`, for messages (never the password).
    pub fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let dbname = self
            .config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("");
        format!("{host}:{port}/{dbname}")
    }

    /// The TLS connector for this URL's `sslmode`.
    pub fn tls(&self) -> Result<MakeRustlsConnect, PgError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| PgError::Tls(error.to_string()))?;
        let config = match self.tls_mode {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked { provider }))
                .with_no_client_auth(),
            TlsMode::VerifyCa | TlsMode::VerifyFull => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|error| PgError::Tls(error.to_string()))?;
                let verifier = Verified {
                    inner: webpki,
                    check_name: self.tls_mode == TlsMode::VerifyFull,
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth()
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, PgError> {
        let mut roots = RootCertStore::empty();
        let Some(path) = &self.root_cert else {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok(roots);
        };
        let pem = std::fs::read(path)
            .map_err(|error| PgError::Tls(format!("cannot read sslrootcert {path}: {error}")))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|error| PgError::Tls(format!("sslrootcert {path}: {error}")))?;
            roots
                .add(cert)
                .map_err(|error| PgError::Tls(format!("sslrootcert {path}: {error}")))?;
        }
        if roots.is_empty() {
            return Err(PgError::Tls(format!(
                "sslrootcert {path} holds no certificate"
            )));
        }
        Ok(roots)
    }
}

/// Takes `sslmode` and `sslrootcert` out of either URL form.
fn split_tls_parameters(url: &str) -> Result<(String, (TlsMode, Option<String>)), PgError> {
    let mut mode = TlsMode::Prefer;
    let mut root_cert = None;
    let mut take = |key: &str, value: String| -> Result<bool, PgError> {
        match key {
            "sslmode" => {
                mode = tls_mode(&value)?;
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(value);
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), (mode, root_cert)));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            if !take(key, decoded)? {
                kept.push(pair);
            }
        }
        match kept.is_empty() {
            true => base.to_owned(),
            false => format!("{base}?{}", kept.join("&")),
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let taken = match word.split_once('=') {
                Some((key, value)) => take(key, value.trim_matches('\'').to_owned())?,
                None => false,
            };
            if !taken {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, (mode, root_cert)))
}

fn tls_mode(value: &str) -> Result<TlsMode, PgError> {
    match value {
        "disable" => Ok(TlsMode::Disable),
        "allow" | "prefer" => Ok(TlsMode::Prefer),
        "require" => Ok(TlsMode::Require),
        "verify-ca" => Ok(TlsMode::VerifyCa),
        "verify-full" => Ok(TlsMode::VerifyFull),
        other => Err(PgError::Url(format!(
            "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
        ))),
    }
}

/// `prefer` / `require`: encrypted, certificate not checked (libpq's
/// meaning); the handshake signatures are still verified.
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca` / `verify-full`: the chain must lead to a trusted root; the
/// name must match too with `verify-full`.
#[derive(Debug)]
struct Verified {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms() {
        let timeout = Duration::from_secs(1);
        let url = DatabaseUrl::parse(
            "postgres://gw:secret@db.example:6432/kong?sslmode=verify-full&sslrootcert=%2Fca.pem&connect_timeout=3",
            timeout,
        )
        .unwrap();
        assert_eq!(url.tls_mode, TlsMode::VerifyFull);
        assert_eq!(url.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(url.describe(), "db.example:6432/kong");
        assert_eq!(url.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(url.config.get_password(), Some(&b"secret"[..]));

        let url =
            DatabaseUrl::parse("host=/tmp/pg port=5 user=gw sslmode=disable", timeout).unwrap();
        assert_eq!(url.tls_mode, TlsMode::Disable);
        assert_eq!(url.describe(), "/tmp/pg:5/gw");

        let plain = DatabaseUrl::parse("postgres://gw@localhost/kong", timeout).unwrap();
        assert_eq!(plain.tls_mode, TlsMode::Prefer);
        assert!(format!("{plain:?}").contains("localhost:5432/kong"));
        assert!(!format!("{url:?}").contains("secret"));
    }

    #[test]
    fn unknown_sslmodes_are_refused() {
        let error = DatabaseUrl::parse("postgres://h/db?sslmode=sometimes", Duration::from_secs(1))
            .unwrap_err();
        assert!(error.to_string().contains("sslmode"), "{error}");
    }
}
