//! The MLLP listener source: one accept loop per configured listener, one
//! task per connection. Plain TCP and TLS connections run the same handler.
//! Each complete frame goes to [`crate::accept`]; the answer's reply is
//! framed and written back, and counted in the listener's stats.
//!
//! Fairness: every connection is its own task and handles its frames strictly
//! in turn (read frame → journal → ACK → next frame), so a flooding peer only
//! ever has one message in flight, and the journal's group commit batches all
//! connections together. Slow peers are cut off by two clocks: an idle
//! timeout between frames and a frame timeout once a frame has started
//! (slowloris). Connection floods are capped per listener and per peer address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use hl7::mllp::{frame, Decoder, Event};

use super::SourceError;
use crate::accept::{Accept, Answer, Disposition, Inbound, Kind, Origin, Role};
use crate::config::ListenerConfig;
use crate::net::tls_config;
use crate::ops::stats::{inc, ListenerStats};
use crate::ops::watchdog::{Heartbeat, BEAT_EVERY};

pub struct Listener {
    cfg: Arc<ListenerConfig>,
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    accept: Accept,
    stats: Arc<ListenerStats>,
}

/// Bind now (so readiness is reported only once every port is open).
pub async fn bind(
    cfg: ListenerConfig,
    accept: Accept,
    stats: Arc<ListenerStats>,
) -> Result<Listener, SourceError> {
    let tls = match &cfg.tls {
        Some(t) => Some(TlsAcceptor::from(tls_config::server_config(t).map_err(
            |source| SourceError::Tls {
                listener: cfg.name.clone(),
                source,
            },
        )?)),
        None => None,
    };
    let tcp = TcpListener::bind(cfg.bind)
        .await
        .map_err(|source| SourceError::Bind {
            listener: cfg.name.clone(),
            addr: cfg.bind,
            source,
        })?;
    Ok(Listener {
        cfg: Arc::new(cfg),
        tcp,
        tls,
        accept,
        stats,
    })
}

/// Tracks open connections per peer address; the guard gives the slot back on drop.
#[derive(Default)]
struct PeerSlots(Mutex<HashMap<IpAddr, usize>>);

struct PeerGuard {
    slots: Arc<PeerSlots>,
    ip: IpAddr,
}

impl PeerSlots {
    fn try_take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerGuard> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerGuard {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Listener {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.local_addr().ok()
    }

    /// Accept until `shutdown` turns true, then close the port and wait
    /// (10 s at most) for open connections to finish the frame in hand.
    pub async fn serve(self, heartbeat: Heartbeat, mut shutdown: watch::Receiver<bool>) {
        let mut beat = tokio::time::interval(BEAT_EVERY);
        let limit = Arc::new(Semaphore::new(self.cfg.max_connections));
        let peers = Arc::new(PeerSlots::default());
        let mut conns = JoinSet::new();
        log::info!(
            target: "gateway::mllp",
            "listener {} accepting MLLP{} on {}",
            self.cfg.name,
            if self.tls.is_some() { " over TLS" } else { "" },
            self.cfg.bind
        );
        loop {
            heartbeat.beat();
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = beat.tick() => {}
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = self.tcp.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            log::warn!(target: "gateway::mllp", "listener {}: accept failed: {e}", self.cfg.name);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    if let Some((permit, guard)) = self.admit(&stream, peer, &limit, &peers) {
                        let conn = Connection {
                            cfg: self.cfg.clone(),
                            accept: self.accept.clone(),
                            stats: self.stats.clone(),
                            peer,
                        };
                        let tls = self.tls.clone();
                        let shutdown = shutdown.clone();
                        conns.spawn(async move {
                            let _slots = (permit, guard);
                            conn.run(stream, tls, shutdown).await;
                        });
                    }
                }
            }
        }
        drop(self.tcp);
        log::info!(target: "gateway::mllp", "listener {} stopped accepting; finishing {} open connection(s)", self.cfg.name, conns.len());
        let drain = async { while conns.join_next().await.is_some() {} };
        if timeout(Duration::from_secs(10), drain).await.is_err() {
            log::warn!(target: "gateway::mllp", "listener {}: connections still open after 10 s; closing them", self.cfg.name);
            conns.shutdown().await;
        }
    }

    /// Allowlist and connection limits. Refused sockets are dropped at once.
    fn admit(
        &self,
        stream: &TcpStream,
        peer: SocketAddr,
        limit: &Arc<Semaphore>,
        peers: &Arc<PeerSlots>,
    ) -> Option<(OwnedSemaphorePermit, PeerGuard)> {
        let name = &self.cfg.name;
        if !self.cfg.allow.is_empty() && !self.cfg.allow.iter().any(|c| c.contains(peer.ip())) {
            inc(&self.stats.connections_refused);
            log::warn!(target: "gateway::mllp", "listener {name}: refused {peer}: address not in the allow list");
            return None;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            inc(&self.stats.connections_refused);
            log::warn!(target: "gateway::mllp", "listener {name}: refused {peer}: max_connections ({}) reached", self.cfg.max_connections);
            return None;
        };
        let Some(guard) = peers.try_take(peer.ip(), self.cfg.max_connections_per_peer) else {
            inc(&self.stats.connections_refused);
            log::warn!(target: "gateway::mllp", "listener {name}: refused {peer}: max_connections_per_peer ({}) reached for {}", self.cfg.max_connections_per_peer, peer.ip());
            return None;
        };
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(10))
            .with_retries(5);
        let sock = socket2::SockRef::from(stream);
        if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
            log::debug!(target: "gateway::mllp", "listener {name}: keepalive on {peer}: {e}");
        }
        let _ = stream.set_nodelay(true);
        Some((permit, guard))
    }
}

struct Connection {
    cfg: Arc<ListenerConfig>,
    accept: Accept,
    stats: Arc<ListenerStats>,
    peer: SocketAddr,
}

impl Connection {
    async fn run(
        self,
        stream: TcpStream,
        tls: Option<TlsAcceptor>,
        shutdown: watch::Receiver<bool>,
    ) {
        let name = self.cfg.name.clone();
        inc(&self.stats.connections_total);
        match tls {
            None => self.counted(stream, shutdown).await,
            Some(acceptor) => {
                match timeout(self.tls_handshake_timeout(), acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => self.counted(tls_stream, shutdown).await,
                    Ok(Err(e)) => {
                        inc(&self.stats.connections_refused);
                        log::warn!(target: "gateway::mllp", "listener {name}: TLS handshake with {} failed: {e}", self.peer);
                    }
                    Err(_) => {
                        inc(&self.stats.connections_refused);
                        log::warn!(target: "gateway::mllp", "listener {name}: TLS handshake with {} timed out", self.peer);
                    }
                }
            }
        }
    }

    fn tls_handshake_timeout(&self) -> Duration {
        self.cfg
            .tls
            .as_ref()
            .map(|t| t.handshake_timeout)
            .unwrap_or(Duration::from_secs(10))
    }

    async fn counted<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        shutdown: watch::Receiver<bool>,
    ) {
        self.stats
            .connections_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        log::info!(target: "gateway::mllp", "listener {}: connection from {}", self.cfg.name, self.peer);
        let end = self.serve(stream, shutdown).await;
        self.stats
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        log::info!(target: "gateway::mllp", "listener {}: connection from {} closed: {end}", self.cfg.name, self.peer);
    }

    /// The per-connection loop; returns why it ended.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        mut shutdown: watch::Receiver<bool>,
    ) -> String {
        let name = &self.cfg.name;
        let mut decoder = Decoder::new(self.cfg.max_frame_bytes);
        let mut buf = vec![0u8; 16 * 1024];
        let mut frame_started: Option<Instant> = None;
        let origin = Origin {
            role: Role::Listener,
            name,
            peer: self.peer.to_string(),
        };
        let mut junk_reported = 0;
        loop {
            let mut completed = false;
            while let Some(event) = decoder.next_event() {
                completed = true;
                let ack = match event {
                    Event::Frame(payload) => {
                        inc(&self.stats.received);
                        let inbound = Inbound {
                            origin: &origin,
                            kind: Kind::Hl7v2,
                            bytes: payload,
                            wants_reply: true,
                        };
                        let answer = self.accept.accept(inbound).await;
                        count_and_log(&self.stats, &origin, answer)
                    }
                    Event::Oversized { len, head } => {
                        inc(&self.stats.received);
                        inc(&self.stats.oversized);
                        let answer = self
                            .accept
                            .oversized(&origin, len, self.cfg.max_frame_bytes, &head)
                            .await;
                        count_and_log(&self.stats, &origin, answer)
                    }
                    Event::FramingError(reason) => {
                        inc(&self.stats.framing_errors);
                        log::warn!(target: "gateway::mllp", "listener {name}: framing error from {}: {reason}; closing the connection", self.peer);
                        return format!("framing error: {reason}");
                    }
                };
                if let Some(ack) = ack {
                    match timeout(self.cfg.idle_timeout, async {
                        stream.write_all(&frame(&ack)).await?;
                        stream.flush().await
                    })
                    .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return format!("could not send ACK: {e}"),
                        Err(_) => return "peer did not read its ACK in time".into(),
                    }
                }
            }
            let junk = decoder.junk_bytes();
            if junk > junk_reported {
                self.stats
                    .junk_bytes
                    .fetch_add(junk - junk_reported, std::sync::atomic::Ordering::Relaxed);
                junk_reported = junk;
            }
            // At shutdown a frame in hand is read to its end and answered
            // (within frame_timeout and the listener's 10 s cap); between
            // frames the connection closes at once.
            if *shutdown.borrow() && !decoder.in_frame() {
                return "gateway shutting down".into();
            }
            frame_started = match (decoder.in_frame(), frame_started) {
                (false, _) => None,
                (true, Some(t)) if !completed => Some(t),
                (true, _) => Some(Instant::now()),
            };
            let (deadline, what) = match frame_started {
                Some(t) => (
                    t + self.cfg.frame_timeout,
                    "frame not completed within frame_timeout_secs",
                ),
                None => (
                    Instant::now() + self.cfg.idle_timeout,
                    "idle longer than idle_timeout_secs",
                ),
            };
            tokio::select! {
                r = timeout_at(deadline, stream.read(&mut buf)) => match r {
                    Err(_) => {
                        inc(&self.stats.timeouts);
                        log::warn!(target: "gateway::mllp", "listener {name}: {} timed out: {what}", self.peer);
                        return format!("timeout: {what}");
                    }
                    Ok(Ok(0)) => {
                        if decoder.in_frame() {
                            log::warn!(target: "gateway::mllp", "listener {name}: {} closed the connection in the middle of a frame", self.peer);
                            return "peer closed mid-frame".into();
                        }
                        return "peer closed".into();
                    }
                    Ok(Ok(n)) => decoder.push(&buf[..n]),
                    Ok(Err(e)) => return format!("read error: {e}"),
                },
                _ = shutdown.changed(), if !decoder.in_frame() => return "gateway shutting down".into(),
            }
        }
    }
}

/// Count an answer in the listener's stats, log it (no PHI: type, control
/// id, outcome), and return the reply to frame back.
fn count_and_log(stats: &ListenerStats, origin: &Origin<'_>, answer: Answer) -> Option<Vec<u8>> {
    let Answer {
        disposition,
        message_type,
        control_id,
        reply,
    } = answer;
    let listener = origin.name;
    match disposition {
        Disposition::Stored { id } => {
            inc(&stats.acked);
            log::debug!(target: "gateway::ingest", listener = listener, control_id = &*control_id, outcome = "stored"; "stored message {id} {message_type} control id '{control_id}' from {origin}");
        }
        Disposition::Duplicate { id } => {
            inc(&stats.duplicates);
            inc(&stats.acked);
            log::info!(target: "gateway::ingest", listener = listener, control_id = &*control_id, outcome = "duplicate"; "retransmission of message {id} ({message_type} control id '{control_id}') on {origin}: answered with the first ACK");
        }
        Disposition::Refused { .. } => inc(&stats.rejected),
        Disposition::NotStored { error } => {
            inc(&stats.errored);
            log::error!(target: "gateway::ingest", listener = listener, control_id = &*control_id, outcome = "not_stored"; "could not journal {message_type} control id '{control_id}' on {origin}: {error}");
        }
    }
    reply
}
