//! A scriptable HTTP/1.1 server on loopback, standing in for a cloud
//! endpoint (FHIR server, billing service). It keeps connections alive,
//! records every request, and fails on command: refuse connections, answer
//! with any status (with Retry-After, with an OperationOutcome), hang, or
//! drop the connection in the middle of its response. Plain std threads,
//! so it is independent of the gateway's runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 200 with a small JSON body.
    Up,
    /// Connections are refused (the listener is closed).
    Refuse,
    /// Answer every request with this status (and Retry-After if given).
    Status(u16, Option<String>),
    /// Read the request, never answer (until the mode changes).
    Hang,
    /// Send half of a 200 response, then close.
    DropMidResponse,
}

/// A request the server read.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered with (0: not answered).
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Decides per request, before the mode: `Some((status, body))` answers it;
/// status 0 closes the connection without an answer (the request was
/// received and processed, the answer is lost).
pub type Rule = Box<dyn Fn(&Received) -> Option<(u16, String)> + Send>;

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    received: Vec<Received>,
    rules: Vec<Rule>,
}

#[derive(Clone)]
pub struct HttpPeer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl HttpPeer {
    pub fn start() -> HttpPeer {
        // Refuse mode closes the listener and rebinds the port later: no
        // other test may be given it meanwhile (nor may it be one promised
        // to another test that has not bound it yet).
        let listener = loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            if super::claim_port(l.local_addr().unwrap().port()) {
                break l;
            }
        };
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            mode: Some(Mode::Up),
            ..Default::default()
        }));
        let peer = HttpPeer { addr, state };
        let p = peer.clone();
        std::thread::spawn(move || p.accept_loop(Some(listener)));
        peer
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_mode(&self, m: Mode) {
        self.state.lock().unwrap().mode = Some(m);
    }

    pub fn mode(&self) -> Mode {
        self.state.lock().unwrap().mode.clone().unwrap_or(Mode::Up)
    }

    pub fn add_rule(&self, r: Rule) {
        self.state.lock().unwrap().rules.push(r);
    }

    pub fn clear_rules(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    fn accept_loop(&self, mut listener: Option<TcpListener>) {
        loop {
            let refuse = self.mode() == Mode::Refuse;
            match (&listener, refuse) {
                (Some(_), true) => listener = None,
                (None, false) => {
                    // Rebind the same port (SO_REUSEADDR is set by std on Unix).
                    match TcpListener::bind(self.addr) {
                        Ok(l) => listener = Some(l),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    }
                }
                _ => {}
            }
            let Some(l) = &listener else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            l.set_nonblocking(true).unwrap();
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let p = self.clone();
                    std::thread::spawn(move || p.serve(s));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        loop {
            // Read one request.
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let method = line.split_whitespace().next().unwrap_or("").to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut headers = Vec::new();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    let (k, v) = (k.trim().to_string(), v.trim().to_string());
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.parse().unwrap_or(0);
                    }
                    headers.push((k, v));
                }
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let mut req = Received {
                at: Instant::now(),
                method,
                path,
                headers,
                body,
                answered: 0,
            };
            let (mode, ruled) = {
                let st = self.state.lock().unwrap();
                let ruled = st.rules.iter().find_map(|r| r(&req));
                (st.mode.clone().unwrap_or(Mode::Up), ruled)
            };
            let (status, extra, body) = match (ruled, &mode) {
                (Some((0, _)), _) => {
                    self.record(req);
                    return;
                }
                (Some((s, b)), _) => (s, String::new(), b),
                (None, Mode::Up) => (200, String::new(), "{\"ok\":true}".to_string()),
                (None, Mode::Status(s, ra)) => (
                    *s,
                    ra.as_ref()
                        .map(|r| format!("Retry-After: {r}\r\n"))
                        .unwrap_or_default(),
                    format!("{{\"error\":\"scripted {s}\"}}"),
                ),
                (None, Mode::Refuse) => {
                    self.record(req);
                    return;
                }
                (None, Mode::Hang) => {
                    self.record(req);
                    // Hold the connection until the mode changes (bounded).
                    let until = Instant::now() + Duration::from_secs(120);
                    while self.mode() == Mode::Hang && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    return;
                }
                (None, Mode::DropMidResponse) => {
                    req.answered = 200;
                    self.record(req);
                    let _ =
                        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"ok\":");
                    return;
                }
            };
            req.answered = status;
            self.record(req);
            let reason = if status < 300 { "OK" } else { "Scripted" };
            let resp = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if out.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn record(&self, r: Received) {
        self.state.lock().unwrap().received.push(r);
    }
}

/// A FHIR OperationOutcome body for a 4xx.
pub fn operation_outcome(diagnostics: &str) -> String {
    serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": diagnostics}]
    })
    .to_string()
}
