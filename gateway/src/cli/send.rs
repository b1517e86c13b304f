//! `gateway send`: deliver HL7 files to an MLLP(S) listener and print the ACKs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::net::mllp_client::Client;
use crate::net::tls_config;

#[derive(Args)]
pub struct SendArgs {
    /// HOST:PORT of the MLLP listener.
    #[arg(long)]
    to: String,
    /// Use TLS and trust this CA (PEM) for the server certificate.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --tls-key and --tls-ca.
    #[arg(long, requires = "tls_key", requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds to wait for the connection and for each ACK.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// HL7 files; a file holding several messages (each starting with MSH) sends each in turn.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Split a file into messages at each line that starts with MSH, and give
/// each the standard CR segment terminator whatever the file used.
pub fn messages_in(bytes: &[u8]) -> Vec<Vec<u8>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for line in bytes.split(|&b| b == b'\r' || b == b'\n') {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if line.starts_with(b"MSH") || messages.is_empty() {
            messages.push(Vec::new());
        }
        if let Some(m) = messages.last_mut() {
            m.extend_from_slice(line);
            m.push(b'\r');
        }
    }
    messages
}

pub async fn run(args: SendArgs) -> ExitCode {
    let tls = match &args.tls_ca {
        None => None,
        Some(ca) => {
            let client_cert = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
            match tls_config::client_config(ca, client_cert) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let wait = Duration::from_secs(args.timeout.max(1));
    let mut client = match Client::connect(&args.to, tls, wait).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut all_ok = true;
    for file in &args.files {
        match send_file(&mut client, file).await {
            Ok(ok) => all_ok &= ok,
            Err(e) => {
                eprintln!("{}: error: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the receiver will answer for a message, from its MSH-15 (enhanced mode).
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Original mode, AL, SU, or empty: wait for the ACK.
    Ack,
    /// NE: no commit ACK will come.
    Nothing,
    /// ER: an ACK comes only on error; silence means accepted.
    OnlyOnError,
}

fn expectation(msg: &[u8]) -> (Expect, String) {
    match hl7::Message::parse(msg) {
        Ok(m) => {
            let h = m.header();
            let expect = match h.accept_ack_type.as_str() {
                "NE" => Expect::Nothing,
                "ER" => Expect::OnlyOnError,
                _ => Expect::Ack,
            };
            (expect, h.control_id)
        }
        // Let the receiver say what is wrong with it.
        Err(_) => (Expect::Ack, String::new()),
    }
}

/// How long to listen for an error ACK when MSH-15 = ER asks for ACKs on errors only.
const ER_GRACE: Duration = Duration::from_secs(2);

/// Returns whether every message in the file was accepted (AA/CA).
async fn send_file(client: &mut Client, file: &Path) -> Result<bool, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let messages = messages_in(&bytes);
    if messages.is_empty() {
        return Err("no HL7 message in the file".into());
    }
    let mut ok = true;
    for (i, msg) in messages.iter().enumerate() {
        let label = if messages.len() > 1 {
            format!("{} #{}", file.display(), i + 1)
        } else {
            file.display().to_string()
        };
        let (expect, control_id) = expectation(msg);
        client.send(msg).await.map_err(|e| e.to_string())?;
        let wait = match expect {
            Expect::Ack => client.timeout(),
            Expect::OnlyOnError => ER_GRACE.min(client.timeout()),
            Expect::Nothing => {
                println!("{label}: sent (MSH-15=NE: the receiver sends no commit ACK)");
                continue;
            }
        };
        let reply = loop {
            match client.read_reply(wait).await.map_err(|e| e.to_string())? {
                None if expect == Expect::OnlyOnError => break None,
                None => return Err(format!("no ACK within {} s", wait.as_secs())),
                Some(r) => {
                    // Skip a stale ACK for an earlier NE message whose receiver answered anyway.
                    let stale = hl7::parse_ack(&r).is_ok_and(|a| {
                        !control_id.is_empty()
                            && !a.acked_control_id.is_empty()
                            && a.acked_control_id != control_id
                    });
                    if !stale {
                        break Some(r);
                    }
                }
            }
        };
        let Some(reply) = reply else {
            println!(
                "{label}: accepted (MSH-15=ER: no error ACK within {} s)",
                wait.as_secs()
            );
            continue;
        };
        ok &= print_ack(&label, &reply);
    }
    Ok(ok)
}

fn print_ack(label: &str, reply: &[u8]) -> bool {
    let shown = String::from_utf8_lossy(reply)
        .trim_end_matches('\r')
        .replace('\r', "\n  ");
    match hl7::parse_ack(reply) {
        Ok(ack) => {
            let accepted = ack.code == "AA" || ack.code == "CA";
            println!(
                "{label}: {} (MSA-2 {}){}",
                ack.code,
                ack.acked_control_id,
                if ack.text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", ack.text)
                }
            );
            println!("  {shown}");
            accepted
        }
        Err(e) => {
            println!("{label}: unreadable ACK ({e})");
            println!("  {shown}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_normalises_terminators() {
        let m = messages_in(b"\xEF\xBB\xBFMSH|^~\\&|A\r\nPID|1\n\nMSH|^~\\&|B\rEVN|x\r");
        assert_eq!(
            m,
            vec![
                b"MSH|^~\\&|A\rPID|1\r".to_vec(),
                b"MSH|^~\\&|B\rEVN|x\r".to_vec()
            ]
        );
    }

    #[test]
    fn enhanced_mode_expectations() {
        let base = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1|||";
        assert_eq!(
            expectation(format!("{base}NE|AL\r").as_bytes()).0,
            Expect::Nothing
        );
        assert_eq!(
            expectation(format!("{base}ER|AL\r").as_bytes()).0,
            Expect::OnlyOnError
        );
        assert_eq!(
            expectation(format!("{base}AL|NE\r").as_bytes()).0,
            Expect::Ack
        );
        assert_eq!(expectation(format!("{base}\r").as_bytes()).0, Expect::Ack);
    }
}
