//! Live audit forwarding (`[audit.syslog]`): every audit event, in seq
//! order, as RFC 5424 syslog over TLS (RFC 5425) to a collector, from a
//! durable cursor in the journal's state store, so a collector outage or a
//! gateway restart loses nothing.
//!
//! Syslog has no application-level acknowledgement, so delivery is at
//! least once: the cursor (`audit_syslog`/`cursor`, the last seq taken as
//! delivered) moves only to events written on a connection that then
//! stayed up for [`SETTLE`] (the collector closing its end shows as a read
//! returning: it never sends anything). On any failure the forwarder
//! reconnects and sends again from the cursor; the collector de-duplicates
//! by the `seq` every message carries (`syslog_format.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use journal::Journal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use super::syslog_format::{self, Header};
use crate::config::SyslogConfig;
use crate::net::tls_config;

/// The state-store namespace and key of the cursor.
pub const CURSOR_NAMESPACE: &str = "audit_syslog";
pub const CURSOR_KEY: &[u8] = b"cursor";

/// How long a connection must stay up after a write before the events it
/// carried count as delivered.
pub const SETTLE: Duration = Duration::from_secs(5);
/// Events per batch (each batch ends with the chain head).
const BATCH: usize = 500;
/// How often an idle forwarder looks for new events.
const IDLE: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The cursor as stored (0 = nothing sent yet).
pub fn cursor(journal: &Journal) -> u64 {
    match journal.get_state(CURSOR_NAMESPACE, CURSOR_KEY) {
        Ok(Some(v)) if v.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v);
            u64::from_be_bytes(b)
        }
        Ok(_) => 0,
        Err(e) => {
            log::error!(target: "gateway::audit", "audit syslog: cannot read the cursor ({e}); sending from the start");
            0
        }
    }
}

enum Ended {
    Stop,
    /// The connection failed; why (for the log).
    Failed(String),
}

/// Forward until `stop`.
pub async fn run(cfg: SyslogConfig, journal: Journal, mut stop: watch::Receiver<bool>) {
    let client = cfg.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let tls = match tls_config::client_config(&cfg.ca, client) {
        Ok(t) => t,
        Err(e) => {
            log::error!(target: "gateway::audit", event = "audit_syslog_failed"; "audit.syslog: {e}; audit events are not forwarded (fix the file and restart)");
            return;
        }
    };
    let name = match tls_config::server_name(&cfg.server_name) {
        Ok(n) => n,
        Err(e) => {
            log::error!(target: "gateway::audit", event = "audit_syslog_failed"; "audit.syslog.server_name: {e}; audit events are not forwarded");
            return;
        }
    };
    let mut f = Forwarder {
        journal,
        settled: 0,
        pending: VecDeque::new(),
    };
    f.settled = cursor(&f.journal);
    log::info!(target: "gateway::audit", "audit syslog: forwarding to {} from seq {}", cfg.address, f.settled + 1);
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let ended = match connect(&cfg.address, &tls, name.clone()).await {
            Ok(stream) => {
                if failing {
                    log::info!(target: "gateway::audit", "audit syslog: connected to {} again; resending from seq {}", cfg.address, f.settled + 1);
                }
                failing = false;
                backoff = Duration::from_secs(1);
                f.session(&cfg, stream, &mut stop).await
            }
            Err(e) => Ended::Failed(e),
        };
        match ended {
            Ended::Stop => return,
            Ended::Failed(why) => {
                if !failing {
                    log::warn!(target: "gateway::audit", event = "audit_syslog_down"; "audit syslog: collector {} unavailable ({why}); retrying, nothing is lost (resending from seq {})", cfg.address, f.settled + 1);
                }
                failing = true;
                f.pending.clear();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(
    address: &str,
    tls: &Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| format!("connect timed out after {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        TlsConnector::from(tls.clone()).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_string())?
    .map_err(|e| format!("TLS handshake: {e}"))
}

struct Forwarder {
    journal: Journal,
    /// The durable cursor's value: the last seq counted as delivered.
    settled: u64,
    /// (last seq of a batch, when it was written) on this connection.
    pending: VecDeque<(u64, Instant)>,
}

impl Forwarder {
    /// Send on one connection until it fails or `stop`.
    async fn session(
        &mut self,
        cfg: &SyslogConfig,
        stream: tokio_rustls::client::TlsStream<TcpStream>,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let header = Header {
            hostname: &cfg.hostname,
            app_name: &cfg.app_name,
            procid: std::process::id(),
        };
        let mut sent = self.settled;
        let mut buf = [0u8; 512];
        loop {
            self.settle().await;
            let page = match self.journal.audit_events(Some(sent), BATCH) {
                Ok(p) => p,
                Err(e) => {
                    log::warn!(target: "gateway::audit", "audit syslog: reading audit events after seq {sent}: {e}");
                    Vec::new()
                }
            };
            let Some(last) = page.last().map(|e| e.seq) else {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE) => continue,
                    r = rd.read(&mut buf) => return closed(r),
                    _ = stop.changed() => return Ended::Stop,
                }
            };
            let mut bytes = Vec::new();
            for ev in &page {
                bytes.extend(syslog_format::event(&header, ev));
            }
            bytes.extend(syslog_format::head(
                &header,
                crate::ops::clock::unix_ms(),
                &self.journal.audit_head(),
            ));
            let write = async {
                wr.write_all(&bytes).await?;
                wr.flush().await
            };
            tokio::select! {
                r = tokio::time::timeout(WRITE_TIMEOUT, write) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Ended::Failed(format!("write: {e}")),
                    Err(_) => return Ended::Failed(format!("write timed out after {WRITE_TIMEOUT:?}")),
                },
                r = rd.read(&mut buf) => return closed(r),
                _ = stop.changed() => return Ended::Stop,
            }
            sent = last;
            self.pending.push_back((last, Instant::now()));
        }
    }

    /// Move the durable cursor to the newest batch written at least
    /// [`SETTLE`] ago on the (still open) connection.
    async fn settle(&mut self) {
        let mut through = None;
        while let Some(&(seq, at)) = self.pending.front() {
            if at.elapsed() < SETTLE {
                break;
            }
            through = Some(seq);
            self.pending.pop_front();
        }
        let Some(seq) = through else { return };
        match self
            .journal
            .put_state(CURSOR_NAMESPACE, CURSOR_KEY, &seq.to_be_bytes())
            .await
        {
            Ok(()) => self.settled = seq,
            // Not fatal: the events are sent; a restart resends them.
            Err(e) => {
                log::warn!(target: "gateway::audit", "audit syslog: cannot store the cursor (seq {seq}): {e}")
            }
        }
    }
}

/// The collector never sends: a read that returns means it closed.
fn closed(r: std::io::Result<usize>) -> Ended {
    match r {
        Ok(0) => Ended::Failed("the collector closed the connection".into()),
        Ok(_) => Ended::Failed("the collector sent data (unexpected); reconnecting".into()),
        Err(e) => Ended::Failed(format!("connection lost: {e}")),
    }
}
