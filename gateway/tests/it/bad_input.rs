//! Bad input gets a specific answer, and the daemon keeps serving a
//! well-behaved client throughout (contract 5).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{ack_code, adt, send_one, Gateway, Options};

fn raw_conn(g: &Gateway) -> TcpStream {
    let s = TcpStream::connect(g.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Read one MLLP reply frame; None if the server closed the connection first.
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => {
                buf.push(byte[0]);
                if buf.ends_with(&[0x1c, 0x0d]) {
                    let start = buf.iter().position(|&b| b == 0x0b)? + 1;
                    return Some(buf[start..buf.len() - 2].to_vec());
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn assert_good_client_served(g: &Gateway, id: &str) {
    let ack = send_one(&g.addr(), &adt(id, "GOOD")).unwrap();
    assert_eq!(ack_code(&ack), "AA", "well-behaved client must be served");
}

fn err_text(ack: &[u8]) -> String {
    String::from_utf8_lossy(ack).into_owned()
}

#[test]
fn junk_before_start_block_is_skipped_and_counted() {
    let g = Gateway::start();
    let mut s = raw_conn(&g);
    let mut wire = b"\r\nGARBAGE".to_vec();
    wire.extend(hl7::mllp::frame(&adt("J1", "M")));
    s.write_all(&wire).unwrap();
    let ack = read_frame(&mut s).unwrap();
    assert_eq!(ack_code(&ack), "AA");
    let st = g.status_json();
    assert_eq!(st["listeners"][0]["junk_bytes"], 9);
}

#[test]
fn end_block_without_cr_is_a_framing_error_that_closes_the_connection() {
    let g = Gateway::start();
    let mut s = raw_conn(&g);
    let mut wire = vec![0x0b];
    wire.extend(adt("F1", "M"));
    wire.extend([0x1c, b'X']);
    s.write_all(&wire).unwrap();
    assert!(
        read_frame(&mut s).is_none(),
        "connection must be closed without an ACK"
    );
    let st = g.status_json();
    assert_eq!(st["listeners"][0]["framing_errors"], 1);
    assert!(
        g.log_text().contains("framing error"),
        "framing error must be a visible log event"
    );
    assert_good_client_served(&g, "F2");
}

#[test]
fn message_without_msh_gets_ar_saying_why() {
    let g = Gateway::start();
    let ack = send_one(&g.addr(), b"PID|1||123\rPV1|1|O\r").unwrap();
    assert_eq!(ack_code(&ack), "AR", "{}", err_text(&ack));
    let text = err_text(&ack);
    assert!(text.contains("\rERR|"), "{text}");
    assert!(text.contains("MSH"), "the reason must name MSH: {text}");
    assert_good_client_served(&g, "N1");
    assert_eq!(g.status_json()["journal"]["quarantined"], 1);
}

#[test]
fn truncated_msh_gets_ar_naming_the_field() {
    let g = Gateway::start();
    let ack = send_one(&g.addr(), b"MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101||").unwrap();
    assert_eq!(ack_code(&ack), "AR", "{}", err_text(&ack));
    let text = err_text(&ack);
    assert!(
        text.contains("MSH-9") || text.contains("MSH-10") || text.contains("MSH-12"),
        "{text}"
    );
    assert_good_client_served(&g, "T1");
}

#[test]
fn oversized_frame_gets_ar_naming_the_limit_and_echoing_the_control_id() {
    let g = Gateway::start_with(Options {
        listener_extra: "max_frame_bytes = 4096".into(),
        ..Default::default()
    });
    let mut big = adt("BIG-1", "M");
    big.extend(format!("OBX|1|TX|X^Y||{}\r", "A".repeat(10_000)).bytes());
    let ack = send_one(&g.addr(), &big).unwrap();
    let text = err_text(&ack);
    assert_eq!(ack_code(&ack), "AR", "{text}");
    assert!(text.contains("4096"), "must name the limit: {text}");
    assert!(text.contains("MSA|AR|BIG-1"), "must echo MSH-10: {text}");
    // The same connection keeps working after the oversized frame.
    assert_good_client_served(&g, "B2");
}

#[test]
fn slowloris_peer_is_cut_off_while_others_are_served() {
    let g = Gateway::start_with(Options {
        listener_extra: "frame_timeout_secs = 2\nidle_timeout_secs = 30".into(),
        ..Default::default()
    });
    let mut slow = raw_conn(&g);
    let msg = hl7::mllp::frame(&adt("SLOW", "M"));
    let started = Instant::now();
    let mut closed = false;
    for b in msg.iter().take(msg.len() - 1) {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        // Meanwhile a good client is served promptly.
        if started.elapsed() < Duration::from_millis(600) {
            assert_good_client_served(&g, &format!("G{}", started.elapsed().as_micros()));
        }
        std::thread::sleep(Duration::from_millis(150));
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    if !closed {
        // The server closed its side: a read returns EOF (or reset).
        let mut b = [0u8; 1];
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        closed = matches!(slow.read(&mut b), Ok(0) | Err(_));
    }
    assert!(closed, "slowloris connection must be closed");
    assert!(
        g.status_json()["listeners"][0]["timeouts"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_good_client_served(&g, "AFTER");
}

#[test]
fn connection_flood_from_one_host_does_not_starve_another() {
    let g = Gateway::start_with(Options {
        listener_extra: "max_connections = 64\nmax_connections_per_peer = 8".into(),
        ..Default::default()
    });
    // The flood comes from 127.0.0.2, the good client from 127.0.0.1.
    let target: SocketAddr = g.socket_addr();
    let mut flood = Vec::new();
    for _ in 0..200 {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        if sock
            .connect_timeout(&target.into(), Duration::from_secs(2))
            .is_ok()
        {
            flood.push(sock);
        }
    }
    for i in 0..5 {
        assert_good_client_served(&g, &format!("FLOOD-GOOD-{i}"));
    }
    // The accept loop refuses the excess asynchronously; give it a moment to catch up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = g.status_json();
        let refused = st["listeners"][0]["connections_refused"].as_u64().unwrap();
        if refused >= 150 || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        st["listeners"][0]["connections_refused"].as_u64().unwrap() >= 150,
        "{st}"
    );
    assert!(
        st["listeners"][0]["connections_open"].as_u64().unwrap() <= 9,
        "{st}"
    );
    drop(flood);
}

#[test]
fn allowlist_refuses_other_peers() {
    let g = Gateway::start_with(Options {
        listener_extra: "allow = [\"127.0.0.2/32\"]".into(),
        ..Default::default()
    });
    let r = send_one(&g.addr(), &adt("DENY", "M"));
    assert!(
        r.is_err(),
        "a peer outside the allow list must get no ACK: {r:?}"
    );
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.connect(&g.socket_addr().into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&hl7::mllp::frame(&adt("ALLOW", "M"))).unwrap();
    assert_eq!(ack_code(&read_frame(&mut s).unwrap()), "AA");
    assert!(g.log_text().contains("not in the allow list"));
}

#[test]
fn several_messages_on_one_connection_are_acked_in_turn() {
    let g = Gateway::start();
    let mut s = raw_conn(&g);
    // Pipelined: all frames written at once; ACKs must come back in order.
    let mut wire = Vec::new();
    for i in 0..20 {
        wire.extend(hl7::mllp::frame(&adt(&format!("P{i}"), "M")));
    }
    s.write_all(&wire).unwrap();
    for i in 0..20 {
        let ack = String::from_utf8(read_frame(&mut s).unwrap()).unwrap();
        assert!(
            ack.contains(&format!("MSA|AA|P{i}\r")),
            "ACK {i} out of order: {ack}"
        );
    }
}
