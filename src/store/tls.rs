//! TLS to PostgreSQL. Used only when the database URL says
//! `sslmode=require`; then the server's certificate chain *and* name are
//! always verified (what libpq calls `verify-full`), against the CA bundle
//! in `PALISADE_DATABASE_CA` or, without one, the platform's trust store.
//! There is deliberately no "encrypt but trust anyone" mode: it stops a
//! passive listener but hands the connection, and the application role's
//! password, to anyone who can redirect it.
//!
//! Without `sslmode=require` connections are plaintext, as before: the
//! embedded cluster is on a Unix socket and a local server on loopback.
//! `palisade check --deploy` flags a remote database without TLS.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("PALISADE_DATABASE_CA: cannot read {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("PALISADE_DATABASE_CA: {path} holds no PEM certificate")]
    EmptyCa { path: String },
    #[error("sslmode=require, but no PALISADE_DATABASE_CA is set and the system trust store has no certificates")]
    NoRoots,
    #[error("TLS set-up failed: {0}")]
    Setup(String),
}

/// The connector handed to tokio-postgres and deadpool. `None` means
/// plaintext; `Db` then also sets `sslmode=disable`, because with
/// `prefer` tokio-postgres would start a handshake this connector cannot
/// finish against a server that offers TLS.
#[derive(Clone, Default)]
pub struct PgTls(Option<Arc<ClientConfig>>);

impl PgTls {
    pub fn plaintext() -> PgTls {
        PgTls(None)
    }

    /// Verified TLS with the roots from `ca` (PEM, one or more
    /// certificates) or the platform's store.
    pub fn verified(ca: Option<&Path>) -> Result<PgTls, TlsError> {
        let mut roots = RootCertStore::empty();
        match ca {
            Some(path) => {
                let shown = path.display().to_string();
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| TlsError::CaFile { path: shown.clone(), reason: e.to_string() })?
                    .collect::<Result<_, _>>()
                    .map_err(|e| TlsError::CaFile { path: shown.clone(), reason: e.to_string() })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(TlsError::EmptyCa { path: shown });
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        // An explicit provider: never depend on which crypto backend some
        // other crate switched on process-wide.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(PgTls(Some(Arc::new(config))))
    }

    pub fn is_tls(&self) -> bool {
        self.0.is_some()
    }
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    /// tokio-postgres calls this for every host before it knows whether
    /// TLS will be negotiated (with "" for a Unix socket), so a name that
    /// cannot be checked is an error only once a handshake starts.
    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, io::Error> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| format!("database host {domain:?} cannot be checked against a certificate: {e}"));
        Ok(PgTlsConnect { config: self.0.clone(), name })
    }
}

pub struct PgTlsConnect {
    config: Option<Arc<ClientConfig>>,
    name: Result<ServerName<'static>, String>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Some(config) = self.config else {
                return Err(io::Error::new(io::ErrorKind::Unsupported, "TLS is not configured"));
            };
            let name = self.name.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, stream).await?;
            Ok(PgTlsStream(tls))
        })
    }
}

/// A client TLS stream; no channel binding is offered (SCRAM then runs
/// without `-PLUS`, as it does with libpq's default).
pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
