//! A minimal MLLP(S) client: connect, send a frame, wait for the one reply frame.
//! Used by `gateway send` (and the benchmark).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::tls_config::{self, TlsConfigError};
use hl7::mllp::{frame, Decoder, Event};

/// Why an MLLP exchange failed; names the peer or the step.
#[derive(Debug, thiserror::Error)]
pub enum MllpClientError {
    #[error("connect to {to}: timed out after {secs} s")]
    ConnectTimeout { to: String, secs: u64 },
    #[error("connect to {to}: {source}")]
    Connect { to: String, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    #[error("TLS handshake with {to}: timed out")]
    HandshakeTimeout { to: String },
    #[error("TLS handshake with {to}: {source}")]
    Handshake { to: String, source: std::io::Error },
    #[error("send: {0}")]
    Send(#[source] std::io::Error),
    #[error("no ACK within {secs} s")]
    NoAck { secs: u64 },
    #[error("reply of {len} bytes is too large")]
    ReplyTooLarge { len: usize },
    #[error("bad reply framing: {0}")]
    Framing(String),
    #[error("read ACK: {0}")]
    Read(#[source] std::io::Error),
    #[error("connection closed before an ACK arrived")]
    Closed,
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct Client {
    stream: Box<dyn Stream>,
    decoder: Decoder,
    timeout: Duration,
}

impl Client {
    /// `to` is HOST:PORT. With `tls`, the server certificate is verified against HOST.
    pub async fn connect(
        to: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        wait: Duration,
    ) -> Result<Client, MllpClientError> {
        let tcp = timeout(wait, TcpStream::connect(to))
            .await
            .map_err(|_| MllpClientError::ConnectTimeout {
                to: to.to_string(),
                secs: wait.as_secs(),
            })?
            .map_err(|source| MllpClientError::Connect {
                to: to.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let host = to
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .unwrap_or(to)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = tls_config::server_name(host)?;
                let s = timeout(wait, TlsConnector::from(cfg).connect(name, tcp))
                    .await
                    .map_err(|_| MllpClientError::HandshakeTimeout { to: to.to_string() })?
                    .map_err(|source| MllpClientError::Handshake {
                        to: to.to_string(),
                        source,
                    })?;
                Box::new(s)
            }
        };
        Ok(Client {
            stream,
            decoder: Decoder::new(64 * 1024 * 1024),
            timeout: wait,
        })
    }

    /// Send one message and return the reply frame's payload.
    pub async fn exchange(&mut self, payload: &[u8]) -> Result<Vec<u8>, MllpClientError> {
        self.send(payload).await?;
        let wait = self.timeout;
        self.read_reply(wait).await?.ok_or(MllpClientError::NoAck {
            secs: wait.as_secs(),
        })
    }

    /// Send one framed message without waiting for a reply.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), MllpClientError> {
        self.stream
            .write_all(&frame(payload))
            .await
            .map_err(MllpClientError::Send)?;
        self.stream.flush().await.map_err(MllpClientError::Send)
    }

    /// The next reply frame, or `None` if none arrives within `wait`.
    pub async fn read_reply(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, MllpClientError> {
        let mut buf = vec![0u8; 16 * 1024];
        let read = async {
            loop {
                match self.decoder.next_event() {
                    Some(Event::Frame(reply)) => return Ok(reply),
                    Some(Event::Oversized { len, .. }) => {
                        return Err(MllpClientError::ReplyTooLarge { len })
                    }
                    Some(Event::FramingError(e)) => return Err(MllpClientError::Framing(e)),
                    None => {}
                }
                let n = self
                    .stream
                    .read(&mut buf)
                    .await
                    .map_err(MllpClientError::Read)?;
                if n == 0 {
                    return Err(MllpClientError::Closed);
                }
                self.decoder.push(&buf[..n]);
            }
        };
        match timeout(wait, read).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}
