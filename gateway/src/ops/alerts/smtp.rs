//! A small SMTP submission client for the alert mails: EHLO, STARTTLS
//! (RFC 3207) or implicit TLS (RFC 8314), AUTH PLAIN or LOGIN (RFC 4954),
//! MAIL / RCPT / DATA with dot-stuffing, QUIT (RFC 5321). Every reply has
//! a deadline. It never speaks SMTP in clear: the login and the mail go
//! over TLS, verified by the gateway's client TLS settings (system roots
//! plus an optional `ca_file`, `crate::net::https_client`).
//!
//! Our own rather than `lettre`: one mail every few minutes to one relay
//! needs a few hundred lines, and lettre would bring a MIME stack, its own
//! TLS feature set and a pool into the lock for it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::secrets::Secret;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP, then STARTTLS before anything else (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// One SMTP relay and how to log in to it.
#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub tls: Arc<rustls::ClientConfig>,
    /// AUTH username and password; `None` for a relay that takes the box
    /// by its address.
    pub login: Option<(String, Secret)>,
    /// The name the box gives in EHLO.
    pub helo: String,
    pub connect_timeout: Duration,
    /// Per reply from the server.
    pub reply_timeout: Duration,
}

/// Why a mail was not accepted. The texts name what to check; the
/// server's own text is kept short (it may quote addresses, never a
/// message: the mails carry no PHI).
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect to the SMTP server {0}: {1}")]
    Connect(String, String),
    #[error(
        "TLS with the SMTP server failed: {0} (check alerts.email tls.ca_file and the server name)"
    )]
    Tls(String),
    /// Seconds waited, and for what.
    #[error("the SMTP server did not answer within {0} s ({1})")]
    Timeout(u64, &'static str),
    #[error("the connection to the SMTP server broke ({0}): {1}")]
    Io(&'static str, String),
    #[error("the SMTP server does not offer STARTTLS: use alerts.email security = \"tls\" with its implicit-TLS port (465), or ask its operator to enable STARTTLS")]
    NoStartTls,
    #[error(
        "the SMTP server sent data before the TLS handshake (a STARTTLS injection?): not sending"
    )]
    EarlyData,
    #[error(
        "the SMTP server offers neither AUTH PLAIN nor AUTH LOGIN over TLS (it offers: {0:?})"
    )]
    NoAuthMechanism(String),
    #[error("the SMTP server refused the login ({0} {1}): check alerts.email auth (username and password)")]
    AuthRefused(u16, String),
    #[error("the SMTP server answered {1} {2} to {0}")]
    Reply(&'static str, u16, String),
    #[error("the SMTP server sent a malformed reply to {0}")]
    Malformed(&'static str),
    #[error("the SMTP server refused every recipient (last: {0} {1})")]
    NoRecipient(u16, String),
}

impl SmtpError {
    /// Trying again will not help (a 5xx, a refused login, a missing
    /// feature): the sender gives up at once and says what to fix.
    pub fn permanent(&self) -> bool {
        match self {
            SmtpError::Reply(_, code, _) | SmtpError::NoRecipient(code, _) => *code >= 500,
            SmtpError::AuthRefused(code, _) => *code >= 500,
            SmtpError::NoStartTls | SmtpError::NoAuthMechanism(_) => true,
            _ => false,
        }
    }
}

/// A reply: its code and its lines' text.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        let t = self.lines.first().map(String::as_str).unwrap_or("");
        t.chars().take(120).collect()
    }
}

/// Longest reply line read, and most lines in one reply.
const LINE_MAX: u64 = 1024;
const LINES_MAX: usize = 64;

/// Send `message` (headers and body, `\n` or `\r\n` line ends) from
/// `from` to `to`. Returns the recipients the server refused when it took
/// the mail for the others.
pub async fn send(
    server: &Server,
    from: &str,
    to: &[String],
    message: &str,
) -> Result<Vec<String>, SmtpError> {
    let addr = format!("{}:{}", server.host, server.port);
    let tcp = match tokio::time::timeout(
        server.connect_timeout,
        TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await
    {
        Err(_) => {
            return Err(SmtpError::Timeout(
                server.connect_timeout.as_secs(),
                "connect",
            ))
        }
        Ok(Err(e)) => return Err(SmtpError::Connect(addr, e.to_string())),
        Ok(Ok(s)) => s,
    };
    let name = ServerName::try_from(server.host.clone())
        .map_err(|e| SmtpError::Tls(format!("'{}' is not a server name: {e}", server.host)))?;
    let connector = TlsConnector::from(server.tls.clone());
    let tls = match server.security {
        Security::Tls => {
            let tls = handshake(server, &connector, name, tcp).await?;
            let mut r = BufReader::new(tls);
            expect(server, &mut r, "the greeting", &[220]).await?;
            r
        }
        Security::StartTls => {
            let mut r = BufReader::new(tcp);
            expect(server, &mut r, "the greeting", &[220]).await?;
            let ehlo = command(server, &mut r, &format!("EHLO {}", server.helo), "EHLO").await?;
            if !has_extension(&ehlo, "STARTTLS") {
                return Err(SmtpError::NoStartTls);
            }
            let _ = command_expect(server, &mut r, "STARTTLS", "STARTTLS", &[220]).await?;
            if !r.buffer().is_empty() {
                return Err(SmtpError::EarlyData);
            }
            BufReader::new(handshake(server, &connector, name, r.into_inner()).await?)
        }
    };
    transaction(server, tls, from, to, message).await
}

async fn handshake(
    server: &Server,
    connector: &TlsConnector,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SmtpError> {
    match tokio::time::timeout(server.reply_timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(SmtpError::Timeout(
            server.reply_timeout.as_secs(),
            "the TLS handshake",
        )),
        Ok(Err(e)) => Err(SmtpError::Tls(e.to_string())),
        Ok(Ok(s)) => Ok(s),
    }
}

/// Over TLS: EHLO, AUTH, the envelope, DATA, QUIT.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    mut r: BufReader<S>,
    from: &str,
    to: &[String],
    message: &str,
) -> Result<Vec<String>, SmtpError> {
    let ehlo = command(server, &mut r, &format!("EHLO {}", server.helo), "EHLO").await?;
    if let Some((user, password)) = &server.login {
        login(server, &mut r, &ehlo, user, password).await?;
    }
    command_expect(
        server,
        &mut r,
        &format!("MAIL FROM:<{from}>"),
        "MAIL FROM",
        &[250],
    )
    .await?;
    let mut refused = Vec::new();
    let mut last = (0, String::new());
    for rcpt in to {
        let reply = command(server, &mut r, &format!("RCPT TO:<{rcpt}>"), "RCPT TO").await?;
        if !matches!(reply.code, 250 | 251) {
            last = (reply.code, reply.text());
            refused.push(rcpt.clone());
        }
    }
    if refused.len() == to.len() {
        let _ = command(server, &mut r, "QUIT", "QUIT").await;
        return Err(SmtpError::NoRecipient(last.0, last.1));
    }
    command_expect(server, &mut r, "DATA", "DATA", &[354]).await?;
    write(server, &mut r, &dot_stuffed(message), "the message").await?;
    expect(server, &mut r, "the end of the message", &[250]).await?;
    // The mail is taken; a QUIT that goes wrong changes nothing.
    let _ = command(server, &mut r, "QUIT", "QUIT").await;
    Ok(refused)
}

async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    r: &mut BufReader<S>,
    ehlo: &Reply,
    user: &str,
    password: &Secret,
) -> Result<(), SmtpError> {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let offered = ehlo
        .lines
        .iter()
        .find_map(|l| {
            let up = l.to_ascii_uppercase();
            up.strip_prefix("AUTH ")
                .or_else(|| up.strip_prefix("AUTH="))
                .map(str::to_string)
        })
        .unwrap_or_default();
    let has = |m: &str| offered.split_whitespace().any(|x| x == m);
    let refused = |reply: Reply| Err(SmtpError::AuthRefused(reply.code, reply.text()));
    if has("PLAIN") {
        let token = b64(format!("\0{user}\0{}", password.expose()).as_bytes());
        let reply = command(server, r, &format!("AUTH PLAIN {token}"), "AUTH").await?;
        return if reply.code == 235 {
            Ok(())
        } else {
            refused(reply)
        };
    }
    if has("LOGIN") {
        let reply = command(server, r, "AUTH LOGIN", "AUTH").await?;
        if reply.code != 334 {
            return refused(reply);
        }
        let reply = command(server, r, &b64(user.as_bytes()), "AUTH").await?;
        if reply.code != 334 {
            return refused(reply);
        }
        let reply = command(server, r, &b64(password.expose().as_bytes()), "AUTH").await?;
        return if reply.code == 235 {
            Ok(())
        } else {
            refused(reply)
        };
    }
    Err(SmtpError::NoAuthMechanism(offered))
}

fn has_extension(ehlo: &Reply, name: &str) -> bool {
    ehlo.lines.iter().skip(1).any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case(name))
    })
}

/// Send one command line and read its reply (any code).
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    r: &mut BufReader<S>,
    line: &str,
    step: &'static str,
) -> Result<Reply, SmtpError> {
    write(server, r, format!("{line}\r\n").as_bytes(), step).await?;
    read_reply(server, r, step).await
}

async fn command_expect<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    r: &mut BufReader<S>,
    line: &str,
    step: &'static str,
    ok: &[u16],
) -> Result<Reply, SmtpError> {
    write(server, r, format!("{line}\r\n").as_bytes(), step).await?;
    expect(server, r, step, ok).await
}

/// Read a reply; an error unless its code is one of `ok`.
async fn expect<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    r: &mut BufReader<S>,
    step: &'static str,
    ok: &[u16],
) -> Result<Reply, SmtpError> {
    let reply = read_reply(server, r, step).await?;
    if ok.contains(&reply.code) {
        Ok(reply)
    } else {
        Err(SmtpError::Reply(step, reply.code, reply.text()))
    }
}

async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    r: &mut BufReader<S>,
    bytes: &[u8],
    step: &'static str,
) -> Result<(), SmtpError> {
    let w = r.get_mut();
    let io = async {
        w.write_all(bytes).await?;
        w.flush().await
    };
    match tokio::time::timeout(server.reply_timeout, io).await {
        Err(_) => Err(SmtpError::Timeout(server.reply_timeout.as_secs(), step)),
        Ok(Err(e)) => Err(SmtpError::Io(step, e.to_string())),
        Ok(Ok(())) => Ok(()),
    }
}

/// One reply: lines `NNN-text` then `NNN text` (or bare `NNN`), the same
/// code on each.
async fn read_reply<S: AsyncRead + Unpin>(
    server: &Server,
    r: &mut BufReader<S>,
    step: &'static str,
) -> Result<Reply, SmtpError> {
    let read = async {
        let mut lines = Vec::new();
        let mut code = None;
        loop {
            let mut buf = Vec::new();
            let n = (&mut *r).take(LINE_MAX).read_until(b'\n', &mut buf).await;
            match n {
                Err(e) => return Err(SmtpError::Io(step, e.to_string())),
                Ok(0) => return Err(SmtpError::Io(step, "closed by the server".into())),
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\r', '\n']);
            let (num, rest) = line.split_at_checked(3).ok_or(SmtpError::Malformed(step))?;
            let c: u16 = num
                .parse()
                .ok()
                .filter(|c| (200..600).contains(c))
                .ok_or(SmtpError::Malformed(step))?;
            if *code.get_or_insert(c) != c || lines.len() >= LINES_MAX {
                return Err(SmtpError::Malformed(step));
            }
            let more = rest.starts_with('-');
            lines.push(rest.get(1..).unwrap_or("").to_string());
            if !more {
                return Ok(Reply { code: c, lines });
            }
        }
    };
    match tokio::time::timeout(server.reply_timeout, read).await {
        Err(_) => Err(SmtpError::Timeout(server.reply_timeout.as_secs(), step)),
        Ok(r) => r,
    }
}

/// The DATA payload: CRLF line ends, a leading `.` doubled (RFC 5321
/// 4.5.2), and the closing `.` line.
pub fn dot_stuffed(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let body = message.strip_suffix('\n').unwrap_or(message);
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(
            dot_stuffed("a\n.b\r\n..c\n.\n"),
            b"a\r\n..b\r\n...c\r\n..\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuffed("x"), b"x\r\n.\r\n".to_vec());
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        assert!(SmtpError::AuthRefused(535, "no".into()).permanent());
        assert!(SmtpError::Reply("RCPT TO", 550, "no".into()).permanent());
        assert!(!SmtpError::Reply("MAIL FROM", 451, "later".into()).permanent());
        assert!(!SmtpError::Timeout(1, "DATA").permanent());
        assert!(!SmtpError::Connect("h:1".into(), "refused".into()).permanent());
    }
}
