//! Chunks over HTTP(S) with `Range` requests (reqwest 0.12, rustls + ring).

use super::{ChunkSource, FetchError};
use crate::target::UpdateTarget;
use std::io::Read;
use std::time::Duration;
use url::Url;

pub struct HttpSource {
    client: reqwest::blocking::Client,
    targets_url: Url,
}

impl HttpSource {
    /// `timeout` bounds one chunk request from connect to last byte, so a
    /// stalled server becomes a retry.
    pub fn new(
        targets_url: Url,
        connect_timeout: Duration,
        timeout: Duration,
        certs: Vec<reqwest::Certificate>,
    ) -> crate::Result<Self> {
        let mut b = reqwest::blocking::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .user_agent(concat!(
                "clinic-gateway-updater/",
                env!("CARGO_PKG_VERSION")
            ));
        for c in certs {
            b = b.add_root_certificate(c);
        }
        let client = b
            .build()
            .map_err(|e| crate::Error::Download(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpSource {
            client,
            targets_url,
        })
    }
}

impl ChunkSource for HttpSource {
    fn fetch(&mut self, t: &UpdateTarget, i: usize) -> Result<Vec<u8>, FetchError> {
        let url = self
            .targets_url
            .join(&t.file_name())
            .map_err(|e| FetchError::Terminal(format!("target URL: {e}")))?;
        let (off, len) = t.chunk_range(i);
        let resp = self
            .client
            .get(url.clone())
            .header(
                reqwest::header::RANGE,
                format!("bytes={}-{}", off, off + len - 1),
            )
            .send()
            .map_err(|e| FetchError::Retry(format!("{url}: {e}")))?;
        let status = resp.status();
        if status.is_client_error() {
            return Err(FetchError::Terminal(format!("{url}: HTTP {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Retry(format!("{url}: HTTP {status}")));
        }
        if status != reqwest::StatusCode::PARTIAL_CONTENT && !(off == 0 && len == t.length) {
            return Err(FetchError::Terminal(format!(
                "{url}: answered {status} to a Range request; the server must support HTTP ranges"
            )));
        }
        let mut buf = Vec::with_capacity(len as usize);
        // One byte more than asked: a longer body is an error, not a hang.
        resp.take(len + 1).read_to_end(&mut buf).map_err(|e| {
            FetchError::Retry(format!("{url}: after {} of {len} bytes: {e}", buf.len()))
        })?;
        if buf.len() as u64 > len {
            return Err(FetchError::Retry(format!(
                "{url}: server sent more than the {len} bytes asked for"
            )));
        }
        if (buf.len() as u64) < len {
            return Err(FetchError::Retry(format!(
                "{url}: connection ended after {} of {len} bytes",
                buf.len()
            )));
        }
        Ok(buf)
    }
    fn describe(&self) -> String {
        self.targets_url.to_string()
    }
}
