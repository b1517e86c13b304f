//! A loopback HTTP/1.1 file server with injectable faults. Every connection
//! is answered and closed; the server thread stops when dropped. Loopback
//! only; each wait is bounded.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the next matching responses do.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Send the headers and this many body bytes, then drop the connection.
    DropAfter(usize),
    /// Send the headers, then stall this long before the body.
    Stall(Duration),
    /// Flip every byte of the body (the image changed on the server).
    Corrupt,
    /// Ignore Range and send an endless body.
    Endless,
}

#[derive(Default)]
pub struct Faults {
    /// (path substring, fault) applied once each, in order.
    pub queue: VecDeque<(String, Fault)>,
    /// (path substring, fault) applied every time.
    pub always: Vec<(String, Fault)>,
}

pub struct Server {
    pub addr: SocketAddr,
    tls: bool,
    pub faults: Arc<Mutex<Faults>>,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves files under `root` over plain HTTP.
    pub fn start(root: PathBuf) -> Server {
        Self::start_with(root, None)
    }

    /// Serves files under `root` over HTTPS with `tls`.
    pub fn start_tls(root: PathBuf, tls: Arc<rustls::ServerConfig>) -> Server {
        Self::start_with(root, Some(tls))
    }

    fn start_with(root: PathBuf, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let tls_on = tls.is_some();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, r, s) = (faults.clone(), requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (root, f, r, tls) = (root.clone(), f.clone(), r.clone(), tls.clone());
                        std::thread::spawn(move || {
                            let _ = c.set_nonblocking(false);
                            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                            let _ = match tls {
                                None => handle(c, &root, &f, &r),
                                Some(cfg) => match rustls::ServerConnection::new(cfg) {
                                    Ok(conn) => {
                                        handle(rustls::StreamOwned::new(conn, c), &root, &f, &r)
                                    }
                                    Err(_) => Ok(()),
                                },
                            };
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            tls: tls_on,
            faults,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> url::Url {
        let scheme = if self.tls { "https" } else { "http" };
        url::Url::parse(&format!("{scheme}://{}/{path}", self.addr)).unwrap()
    }

    pub fn push(&self, path: &str, f: Fault) {
        self.faults
            .lock()
            .unwrap()
            .queue
            .push_back((path.into(), f));
    }

    pub fn always(&self, path: &str, f: Fault) {
        self.faults.lock().unwrap().always.push((path.into(), f));
    }

    pub fn clear(&self) {
        let mut f = self.faults.lock().unwrap();
        f.queue.clear();
        f.always.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads the request head (up to the blank line) byte by byte; bounded.
fn read_head<S: Read>(s: &mut S) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if s.read(&mut b)? == 0 {
            break;
        }
        head.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn handle<S: Read + Write>(
    mut w: S,
    root: &std::path::Path,
    faults: &Mutex<Faults>,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    let head = read_head(&mut w)?;
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let mut range: Option<(u64, u64)> = None;
    for h in lines {
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            if let Some((a, b)) = v.trim().split_once('-') {
                if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                    range = Some((a, b));
                }
            }
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let fault = {
        let mut f = faults.lock().unwrap();
        let pos = f.queue.iter().position(|(p, _)| path.contains(p.as_str()));
        match pos {
            Some(i) => f.queue.remove(i).map(|x| x.1),
            None => f
                .always
                .iter()
                .find(|(p, _)| path.contains(p.as_str()))
                .map(|x| x.1.clone()),
        }
    };
    if let Some(Fault::Status(s)) = fault {
        write!(
            w,
            "HTTP/1.1 {s} Fault\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return w.flush();
    }
    if let Some(Fault::Endless) = fault {
        // Claims to be the range asked for (if any), then never ends.
        let status = if range.is_some() {
            "206 Partial Content"
        } else {
            "200 OK"
        };
        write!(w, "HTTP/1.1 {status}\r\nConnection: close\r\n\r\n")?;
        let junk = vec![b'x'; 64 * 1024];
        // Bounded: stops when the client hangs up, or after 256 MiB.
        for _ in 0..4096 {
            w.write_all(&junk)?;
        }
        return Ok(());
    }
    let file = root.join(path.trim_start_matches('/'));
    let Ok(data) = std::fs::read(&file) else {
        write!(
            w,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return w.flush();
    };
    let (status, mut body) = match range {
        Some((a, b)) if (a as usize) < data.len() => {
            let b = (b as usize).min(data.len() - 1);
            ("206 Partial Content", data[a as usize..=b].to_vec())
        }
        _ => ("200 OK", data),
    };
    if let Some(Fault::Corrupt) = fault {
        body.iter_mut().for_each(|x| *x ^= 0xFF);
    }
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    match fault {
        Some(Fault::DropAfter(n)) => {
            w.write_all(&body[..n.min(body.len())])?;
            w.flush()?;
            // Returning drops the connection.
        }
        Some(Fault::Stall(d)) => {
            w.flush()?;
            std::thread::sleep(d);
            let _ = w.write_all(&body);
        }
        _ => w.write_all(&body)?,
    }
    w.flush()
}
