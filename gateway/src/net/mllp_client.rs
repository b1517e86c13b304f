//! A minimal MLLP(S) client: connect, send a frame, wait for the one reply frame.
//! Used by `gateway send` (and the benchmark).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::tls_config;
use hl7::mllp::{frame, Decoder, Event};

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
    ) -> Result<Client, String> {
        let tcp = timeout(wait, TcpStream::connect(to))
            .await
            .map_err(|_| format!("connect to {to}: timed out after {} s", wait.as_secs()))?
            .map_err(|e| format!("connect to {to}: {e}"))?;
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
                    .map_err(|_| format!("TLS handshake with {to}: timed out"))?
                    .map_err(|e| format!("TLS handshake with {to}: {e}"))?;
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
    pub async fn exchange(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.send(payload).await?;
        let wait = self.timeout;
        self.read_reply(wait)
            .await?
            .ok_or_else(|| format!("no ACK within {} s", wait.as_secs()))
    }

    /// Send one framed message without waiting for a reply.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(&frame(payload))
            .await
            .map_err(|e| format!("send: {e}"))?;
        self.stream.flush().await.map_err(|e| format!("send: {e}"))
    }

    /// The next reply frame, or `None` if none arrives within `wait`.
    pub async fn read_reply(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, String> {
        let mut buf = vec![0u8; 16 * 1024];
        let read = async {
            loop {
                match self.decoder.next_event() {
                    Some(Event::Frame(reply)) => return Ok(reply),
                    Some(Event::Oversized { len, .. }) => {
                        return Err(format!("reply of {len} bytes is too large"))
                    }
                    Some(Event::FramingError(e)) => return Err(format!("bad reply framing: {e}")),
                    None => {}
                }
                let n = self
                    .stream
                    .read(&mut buf)
                    .await
                    .map_err(|e| format!("read ACK: {e}"))?;
                if n == 0 {
                    return Err("connection closed before an ACK arrived".to_string());
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
