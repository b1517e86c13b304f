//! The baseline `gateway bench ingest` compares with: the obvious durable
//! MLLP server. A thread per connection; for each frame it appends the
//! message to one file, `fdatasync`s it and answers `AA`. No group commit,
//! no index, no outbox: one connection's floor is one fdatasync plus one
//! round trip per message, and connections take turns at the file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hl7::mllp::{frame, Decoder, Event};

pub struct NaiveServer {
    pub addr: String,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl NaiveServer {
    /// Listen on loopback; messages go to `dir/naive.log` (made durable first).
    pub fn start(dir: &Path) -> Result<NaiveServer, String> {
        let path = dir.join("naive.log");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.sync_all()
            .and_then(|_| journal::durable_fs::sync_dir(dir))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let file = Arc::new(Mutex::new(file));
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let file = file.clone();
                std::thread::spawn(move || serve(conn, &file));
            }
        });
        Ok(NaiveServer {
            addr,
            stop,
            accept: Some(accept),
        })
    }
}

impl Drop for NaiveServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(mut conn: TcpStream, file: &Mutex<File>) {
    let _ = conn.set_nodelay(true);
    let mut decoder = Decoder::new(1 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(ev) = decoder.next_event() {
            let Event::Frame(msg) = ev else { return };
            if append_durably(file, &msg).is_err() {
                return;
            }
            if conn.write_all(&frame(&ack_for(&msg))).is_err() {
                return;
            }
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => decoder.push(&buf[..n]),
        }
    }
}

fn append_durably(file: &Mutex<File>, msg: &[u8]) -> std::io::Result<()> {
    let mut f = file
        .lock()
        .map_err(|_| std::io::Error::other("naive log lock poisoned"))?;
    f.write_all(msg)?;
    f.write_all(b"\n")?;
    f.sync_data()
}

/// `AA` echoing MSH-10.
fn ack_for(msg: &[u8]) -> Vec<u8> {
    let msh = msg.split(|&b| b == b'\r').next().unwrap_or_default();
    let control_id = msh.split(|&b| b == b'|').nth(9).unwrap_or_default();
    let mut a = b"MSH|^~\\&|NAIVE||||||ACK|".to_vec();
    a.extend_from_slice(control_id);
    a.extend_from_slice(b"|P|2.5.1\rMSA|AA|");
    a.extend_from_slice(control_id);
    a.push(b'\r');
    a
}

#[cfg(test)]
mod tests {
    #[test]
    fn acks_echo_the_control_id() {
        let a = super::ack_for(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|CID-7|P|2.5.1\rPID|1\r");
        assert_eq!(a, b"MSH|^~\\&|NAIVE||||||ACK|CID-7|P|2.5.1\rMSA|AA|CID-7\r");
    }
}
