//! Chunks over HTTP(S) with `Range` requests (reqwest 0.12, rustls + ring,
//! the gateway's own HTTP stack), on a private current-thread runtime.
//!
//! Three time limits: a short connect timeout; a stall timeout (no byte for
//! that long: a retry, so a hung server costs seconds, not the whole
//! request); and a generous total per chunk, so a slow but moving clinic
//! link (a 4 MiB chunk at 32 KB/s takes two minutes) still completes.

use super::{ChunkSource, FetchError};
use crate::target::UpdateTarget;
use std::time::Duration;
use url::Url;

pub struct HttpSource {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    targets_url: Url,
}

impl HttpSource {
    pub fn new(
        targets_url: Url,
        connect_timeout: Duration,
        stall_timeout: Duration,
        chunk_timeout: Duration,
        certs: Vec<reqwest::Certificate>,
    ) -> crate::Result<Self> {
        let client = crate::trust::transport::client_builder(connect_timeout, certs)
            .read_timeout(stall_timeout)
            .timeout(chunk_timeout)
            .build()
            .map_err(|e| crate::Error::Download(format!("cannot build the HTTP client: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::Error::Download(format!("cannot start the async runtime: {e}")))?;
        Ok(HttpSource {
            rt,
            client,
            targets_url,
        })
    }

    async fn get(&self, url: Url, off: u64, len: u64, whole: bool) -> Result<Vec<u8>, FetchError> {
        let mut resp = self
            .client
            .get(url.clone())
            .header(
                reqwest::header::RANGE,
                format!("bytes={}-{}", off, off + len - 1),
            )
            .send()
            .await
            .map_err(|e| FetchError::Retry(format!("{url}: {}", crate::trust::chain(&e))))?;
        let status = resp.status();
        if status.is_client_error() {
            return Err(FetchError::Terminal(format!("{url}: HTTP {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Retry(format!("{url}: HTTP {status}")));
        }
        if status != reqwest::StatusCode::PARTIAL_CONTENT && !whole {
            return Err(FetchError::Terminal(format!(
                "{url}: answered {status} to a Range request; the server must support HTTP ranges"
            )));
        }
        let mut buf = Vec::with_capacity(len as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    buf.extend_from_slice(&c);
                    // A longer body is an error, not a memory leak or a hang.
                    if buf.len() as u64 > len {
                        return Err(FetchError::Retry(format!(
                            "{url}: server sent more than the {len} bytes asked for"
                        )));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(FetchError::Retry(format!(
                        "{url}: after {} of {len} bytes: {}",
                        buf.len(),
                        crate::trust::chain(&e)
                    )))
                }
            }
        }
        if (buf.len() as u64) < len {
            return Err(FetchError::Retry(format!(
                "{url}: connection ended after {} of {len} bytes",
                buf.len()
            )));
        }
        Ok(buf)
    }
}

impl ChunkSource for HttpSource {
    fn fetch(&mut self, t: &UpdateTarget, i: usize) -> Result<Vec<u8>, FetchError> {
        let url = self
            .targets_url
            .join(&t.file_name())
            .map_err(|e| FetchError::Terminal(format!("target URL: {e}")))?;
        let (off, len) = t.chunk_range(i);
        let whole = off == 0 && len == t.length;
        self.rt.block_on(self.get(url, off, len, whole))
    }
    fn describe(&self) -> String {
        self.targets_url.to_string()
    }
}
