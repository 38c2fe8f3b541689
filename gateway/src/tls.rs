//! TLS helpers: rustls (ring provider) for the proxy's HTTPS listener and its upstream pool.
//!
//! - [`install_crypto_provider`] makes ring the process-wide default provider.
//! - [`server_config`] loads a PEM certificate chain and key for the listener
//!   (`tokio_rustls::TlsAcceptor::from(config)`), TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
//! - [`insecure_client_config`] is the upstream client's config: no certificate
//!   verification, which is Kong's default (services verify upstream certificates only when
//!   `tls_verify` is set); [`verified_client_config`] verifies certificates.
//!
//! Trust roots for verification: `webpki-roots` and `rustls-native-certs` are not
//! dependencies, so [`verified_client_config`] trusts the CA PEM file it is given, or else the
//! system bundle named by `SSL_CERT_FILE` or found at a well-known path
//! ([`SYSTEM_CA_BUNDLES`]).
//!
//! Every config is built with an explicit ring provider, so none of them depend on
//! [`install_crypto_provider`] having run.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};

/// The TLS versions every config of this module enables, in preference order.
pub const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The ALPN protocols the HTTPS listener offers, in preference order.
pub const SERVER_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// System CA bundles tried, in order, when no CA file is given and `SSL_CERT_FILE` is unset.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Errors loading TLS material; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("invalid PEM in {}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The parser error.
        #[source]
        source: io::Error,
    },
    /// A certificate file holds no `CERTIFICATE` block.
    #[error("no certificate found in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no PKCS#8, RSA or SEC1 private key.
    #[error("no private key found in {} (expected a PKCS#8, RSA or SEC1 PEM block)", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key could not be used for signing (unsupported algorithm or malformed).
    #[error("unusable private key in {}: {source}", path.display())]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The first certificate of the chain could not be parsed.
    #[error("invalid certificate in {}: {source}", path.display())]
    InvalidCertificate {
        /// The certificate file.
        path: PathBuf,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The private key is not the key of the end-entity certificate.
    #[error("private key in {} does not match certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// No usable trust anchor was found in a CA file.
    #[error("no usable CA certificate found in {}", path.display())]
    NoCaCertificate {
        /// The CA file.
        path: PathBuf,
    },
    /// No CA file was given and no system bundle was found.
    #[error("no CA file given and no system CA bundle found (SSL_CERT_FILE or {looked})")]
    NoSystemRoots {
        /// The paths that were tried.
        looked: String,
    },
    /// rustls rejected the configuration.
    #[error("invalid TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// Installs rustls's ring provider as the process default; later calls do nothing.
pub fn install_crypto_provider() {
    // Err means a default is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The ring provider every config of this module is built with.
#[must_use]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads the PEM certificate chain `cert_pem` (end-entity first) and private key `key_pem`
/// (PKCS#8, RSA or SEC1) into a server config with TLS 1.2/1.3 and ALPN `h2`, `http/1.1`.
///
/// # Errors
///
/// When a file cannot be read or parsed, holds no certificate or key, the key is unusable
/// or does not match the certificate; every error names the file.
pub fn server_config(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let certified = certified_key(cert_pem, key_pem, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Loads and checks a certificate chain and its private key.
fn certified_key(
    cert_pem: &Path,
    key_pem: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert_pem)?;
    let key = load_private_key(key_pem)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::InvalidKey {
            path: key_pem.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert_pem.to_owned(),
            key: key_pem.to_owned(),
        }),
        Err(source) => Err(TlsError::InvalidCertificate {
            path: cert_pem.to_owned(),
            source,
        }),
    }
}

/// Opens `path` for PEM parsing.
fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

/// All `CERTIFICATE` blocks of a PEM file; at least one.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| pem_error(path, source))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first PKCS#8, RSA or SEC1 private key of a PEM file.
fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| pem_error(path, source))?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: path.to_owned(),
        })
}

/// A PEM parse error, or a read error when the failure came from the file itself.
fn pem_error(path: &Path, source: io::Error) -> TlsError {
    let path = path.to_owned();
    match source.kind() {
        io::ErrorKind::InvalidData => TlsError::Pem { path, source },
        _ => TlsError::Read { path, source },
    }
}

/// A client config (TLS 1.2/1.3, no ALPN) that accepts any server certificate.
///
/// # Panics
///
/// Never: ring supports both protocol versions (checked by the tests).
#[must_use]
pub fn insecure_client_config() -> ClientConfig {
    let provider = crypto_provider();
    let verifier = Arc::new(AcceptAnyServerCert::new(&provider));
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

/// A client config (TLS 1.2/1.3, no ALPN) that verifies server certificates against the CAs
/// of `ca_pem`, or of the system bundle when `None`.
///
/// # Errors
///
/// When the CA file cannot be read, holds no usable certificate, or (for `None`) no system
/// bundle exists.
pub fn verified_client_config(ca_pem: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let path = match ca_pem {
        Some(path) => path.to_owned(),
        None => system_ca_bundle()?,
    };
    let roots = load_roots(&path)?;
    Ok(ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The system CA bundle: `SSL_CERT_FILE` if set, else the first of [`SYSTEM_CA_BUNDLES`].
fn system_ca_bundle() -> Result<PathBuf, TlsError> {
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        return Ok(PathBuf::from(path));
    }
    SYSTEM_CA_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| TlsError::NoSystemRoots {
            looked: SYSTEM_CA_BUNDLES.join(", "),
        })
}

/// The trust anchors of a CA PEM file; unparsable certificates are skipped.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(load_certs(path)?);
    if added == 0 {
        return Err(TlsError::NoCaCertificate {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// A [`ServerCertVerifier`] that accepts every certificate chain and host name, but still
/// verifies the TLS 1.2/1.3 handshake signatures with the provider's algorithms, so the peer
/// must hold the private key of the certificate it presents.
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCert {
    /// A verifier checking signatures with `provider`'s algorithms.
    #[must_use]
    pub fn new(provider: &CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    /// A fresh temp directory holding test PEM files; removed on drop.
    struct Pki {
        dir: PathBuf,
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl Pki {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let unique = format!(
                "gateway-tls-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let dir = std::env::temp_dir().join(unique);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            Self { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }

        /// Runs `openssl` in the temp dir and asserts success.
        fn openssl(&self, args: &[&str]) {
            let out = Command::new("/usr/bin/openssl")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .expect("run openssl");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "openssl {args:?}: {stderr}");
        }

        /// `<name>.key` (PKCS#8) and a self-signed `<name>.pem` for `localhost`/127.0.0.1.
        fn self_signed(&self, name: &str, algorithm: &[&str]) {
            self.self_signed_as(name, "/CN=localhost", algorithm);
        }

        /// Like [`Pki::self_signed`] with the subject `subj`.
        fn self_signed_as(&self, name: &str, subj: &str, algorithm: &[&str]) {
            let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", subj];
            args.extend_from_slice(&["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]);
            args.extend_from_slice(&["-keyout", &key, "-out", &pem]);
            args.extend_from_slice(algorithm);
            self.openssl(&args);
        }

        /// `ca.key`/`ca.pem` and a CA-signed `leaf.key`/`leaf.pem` for localhost/127.0.0.1.
        fn ca_and_leaf(&self) {
            self.self_signed_as("ca", "/CN=Gateway Test CA", EC);
            std::fs::write(
                self.path("leaf.ext"),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
                 extendedKeyUsage=serverAuth\n",
            )
            .expect("write ext file");
            let mut csr = vec!["req", "-new", "-nodes", "-subj", "/CN=localhost"];
            csr.extend_from_slice(&["-keyout", "leaf.key", "-out", "leaf.csr"]);
            csr.extend_from_slice(EC);
            self.openssl(&csr);
            self.openssl(&[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
                "-out",
                "leaf.pem",
            ]);
        }
    }

    const EC: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    const RSA: &[&str] = &["-newkey", "rsa:2048"];

    #[test]
    fn loads_pkcs8_rsa_and_sec1_keys() {
        let pki = Pki::new();
        pki.self_signed("ec", EC);
        pki.self_signed("rsa", RSA);
        pki.openssl(&["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa1.key"]);
        pki.openssl(&["ec", "-in", "ec.key", "-out", "sec1.key"]);
        let pem = |p: &str| std::fs::read_to_string(pki.path(p)).expect("read key");
        assert!(pem("rsa1.key").contains("BEGIN RSA PRIVATE KEY"));
        assert!(pem("sec1.key").contains("BEGIN EC PRIVATE KEY"));
        for (cert, key) in [
            ("ec.pem", "ec.key"),
            ("rsa.pem", "rsa.key"),
            ("rsa.pem", "rsa1.key"),
            ("ec.pem", "sec1.key"),
        ] {
            let config = server_config(&pki.path(cert), &pki.path(key))
                .unwrap_or_else(|e| panic!("{cert} + {key}: {e}"));
            assert_eq!(
                config.alpn_protocols,
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            );
        }
    }

    #[test]
    fn errors_name_the_file() {
        let pki = Pki::new();
        pki.self_signed("a", EC);
        pki.self_signed("b", EC);
        let (cert, key) = (pki.path("a.pem"), pki.path("a.key"));
        let missing = pki.path("missing.key");

        let err = server_config(&cert, &missing).expect_err("missing key");
        assert!(matches!(err, TlsError::Read { ref path, .. } if *path == missing));
        assert!(
            err.to_string().contains(&*missing.to_string_lossy()),
            "{err}"
        );

        let err = server_config(&key, &key).expect_err("key as cert");
        assert_eq!(
            err.to_string(),
            format!("no certificate found in {}", key.display())
        );

        let err = server_config(&cert, &cert).expect_err("cert as key");
        assert!(matches!(err, TlsError::NoPrivateKey { ref path } if *path == cert));
        assert!(err
            .to_string()
            .starts_with(&format!("no private key found in {}", cert.display())));

        let err = server_config(&cert, &pki.path("b.key")).expect_err("mismatch");
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(
            err.to_string().contains("does not match certificate"),
            "{err}"
        );
    }

    #[test]
    fn versions_are_tls13_and_tls12_only() {
        let versions: Vec<_> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
        assert_eq!(
            versions,
            [
                rustls::ProtocolVersion::TLSv1_3,
                rustls::ProtocolVersion::TLSv1_2
            ]
        );
    }

    #[test]
    fn install_crypto_provider_is_idempotent() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(CryptoProvider::get_default().is_some());
    }

    /// Accepts one TLS connection with `config` and returns its ALPN and version.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: ClientConfig,
    ) -> (Option<Vec<u8>>, Option<rustls::ProtocolVersion>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            TlsAcceptor::from(server).accept(tcp).await.map(|_| ())
        });
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let tls = TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .expect("client handshake");
        accept.await.expect("join").expect("server handshake");
        let (_, conn) = tls.get_ref();
        (
            conn.alpn_protocol().map(<[u8]>::to_vec),
            conn.protocol_version(),
        )
    }

    #[tokio::test]
    async fn insecure_client_handshakes_and_negotiates_h2() {
        let pki = Pki::new();
        pki.self_signed("srv", EC);
        let server = server_config(&pki.path("srv.pem"), &pki.path("srv.key")).expect("config");

        let mut client = insecure_client_config();
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let (alpn, version) = handshake(server.clone(), client).await;
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(version, Some(rustls::ProtocolVersion::TLSv1_3));

        let mut client = insecure_client_config();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        assert_eq!(
            handshake(server, client).await.0.as_deref(),
            Some(&b"http/1.1"[..])
        );
    }

    #[tokio::test]
    async fn tls12_only_client_is_accepted() {
        let pki = Pki::new();
        pki.self_signed("srv", RSA);
        let server = server_config(&pki.path("srv.pem"), &pki.path("srv.key")).expect("config");
        let provider = crypto_provider();
        let verifier = Arc::new(AcceptAnyServerCert::new(&provider));
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("tls12")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let (_, version) = handshake(server, client).await;
        assert_eq!(version, Some(rustls::ProtocolVersion::TLSv1_2));
    }

    /// Serves HTTPS with `config` on loopback; every request gets `200 tls-ok <version>`.
    async fn https_server(config: Arc<ServerConfig>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(|req: hyper::Request<_>| {
                        let body = format!("tls-ok {:?}", req.version());
                        async move {
                            let resp = hyper::Response::new(Full::new(Bytes::from(body)));
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        port
    }

    /// A GET of `/` on `port` through the proxy's upstream client, for a
    /// service of `protocol` on `host`.
    async fn fetch(protocol: &str, host: &str, port: u16) -> Result<(u16, Bytes), String> {
        use crate::proxy::upstream::{PoolSettings, RequestBody, UpstreamClients};
        let service: schemas::model::Service = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::new_v4(), "name": null, "protocol": protocol, "host": host,
            "port": port, "path": null, "retries": 0, "connect_timeout": 200,
            "write_timeout": 2000, "read_timeout": 2000, "enabled": true, "tls_verify": null,
            "tls_verify_depth": null, "tags": null, "created_at": null, "updated_at": null
        }))
        .expect("service");
        let headers = || {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::HOST,
                http::HeaderValue::from_static("upstream"),
            );
            headers
        };
        let body = RequestBody::new(crate::pdk::body::empty(), None);
        let response = UpstreamClients::new(PoolSettings::default())
            .send(&service, &http::Method::GET, "/x", &headers, body)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, body.to_bytes()))
    }

    #[tokio::test]
    async fn upstream_client_speaks_https_and_http() {
        let pki = Pki::new();
        pki.self_signed("srv", EC);
        let server = server_config(&pki.path("srv.pem"), &pki.path("srv.key")).expect("config");
        let port = https_server(server).await;
        for host in ["127.0.0.1", "localhost"] {
            let (status, body) = fetch("https", host, port)
                .await
                .expect("https through the upstream client");
            assert_eq!((status, &body[..]), (200, &b"tls-ok HTTP/1.1"[..]));
        }

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let echo_port = listener.local_addr().expect("addr").port();
        tokio::spawn(crate::echo::serve(listener, std::future::pending()));
        let (status, body) = fetch("http", "127.0.0.1", echo_port)
            .await
            .expect("plain http through the same client");
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains("\"path\":\"/x\""));
    }

    #[tokio::test]
    async fn verified_config_trusts_only_the_given_ca() {
        let pki = Pki::new();
        pki.ca_and_leaf();
        pki.self_signed_as("other", "/CN=Other Test CA", EC);
        let server = server_config(&pki.path("leaf.pem"), &pki.path("leaf.key")).expect("config");
        let port = https_server(server).await;
        let connect = |config: ClientConfig| async move {
            let tcp = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let name = ServerName::try_from("localhost").expect("name");
            TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("{e:?}"))
        };

        let trusted = verified_client_config(Some(&pki.path("ca.pem"))).expect("ca");
        connect(trusted).await.expect("verified handshake");

        let untrusted = verified_client_config(Some(&pki.path("other.pem"))).expect("other ca");
        let err = connect(untrusted)
            .await
            .expect_err("unknown issuer must fail");
        assert!(err.contains("UnknownIssuer"), "{err}");

        let missing = pki.path("nope.pem");
        let err = verified_client_config(Some(&missing)).expect_err("missing ca");
        assert!(
            err.to_string().contains(&*missing.to_string_lossy()),
            "{err}"
        );
    }

    /// A loopback listener whose accept queue is full, so further connects hang.
    async fn saturated_listener() -> (TcpListener, Vec<TcpStream>, std::net::SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        let listener = socket.listen(0).expect("listen");
        let mut held = Vec::new();
        for _ in 0..16 {
            let connect = TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(300), connect).await {
                Ok(Ok(stream)) => held.push(stream),
                _ => break,
            }
        }
        (listener, held, addr)
    }

    #[tokio::test]
    async fn connect_timeout_applies() {
        // Nothing accepts on `_listener`, so its full queue drops the client's SYN.
        let (_listener, _held, addr) = saturated_listener().await;
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            fetch("http", &addr.ip().to_string(), addr.port()),
        )
        .await;
        let elapsed = started.elapsed();
        let err = match result {
            Ok(Err(err)) => err,
            other => panic!("the connect must time out on its own: {other:?}"),
        };
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert!(err.contains("ConnectTimeout"), "{err}");
    }
}
