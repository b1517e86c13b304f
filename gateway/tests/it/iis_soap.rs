//! The `iis_soap` destination against a registry on loopback that follows
//! the CDC IIS WSDL (`tests/peers/iis_soap_server.py`: Python's own XML
//! parser validates every envelope): AA delivers, AE dead-letters with the
//! registry's text, MessageTooLargeFault dead-letters, a SecurityFault (a
//! wrong password) holds the destination with every message still pending.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::daemon::{Gateway, Options};
use crate::support::peers::{start_peer, KillOnDrop};
use crate::support::{ack_code, send_one};

fn start_registry(log: &Path) -> Option<(KillOnDrop, u16)> {
    let args = [
        log.as_os_str(),
        "clinic42".as_ref(),
        "s3cret-2024".as_ref(),
        "FAC-0042".as_ref(),
    ];
    start_peer("iis_soap_server.py", &["xml.etree.ElementTree"], &args)
}

fn vxu(control: &str, mrn: &str, cvx: &str, pad: usize) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ECW|CLINIC|IIS|STATE|20240101120000||VXU^V04^VXU_V04|{control}|P|2.5.1\r\
         PID|1||{mrn}^^^CLINIC^MR||DOE^JANE||20200101|F\r\
         ORC|RE||{control}\r\
         RXA|0|1|20240101|20240101|{cvx}^vaccine^CVX|0.5|mL^^UCUM{}\r",
        "X".repeat(pad)
    )
    .into_bytes()
}

fn gateway(port: u16, dir: &Path, password: &str) -> Gateway {
    let pw = dir.join("registry.pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    Gateway::start_with(Options {
        listener_extra: "max_frame_bytes = 4194304".into(),
        routing: Some(format!(
            "[[destination]]\nname = \"state-iis\"\nkind = \"iis_soap\"\nurl = \"http://127.0.0.1:{port}/iis\"\n\
             facility_id = \"FAC-0042\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"500ms\"\n\
             circuit_failures = 2\nprobe_interval = \"300ms\"\ntimeout = \"10s\"\n\
             [destination.auth]\ntype = \"basic\"\nusername = \"clinic42\"\npassword_file = {:?}\n\n\
             [[route]]\nname = \"vaccines\"\nfrom = [\"ehr\"]\nto = [\"state-iis\"]\ntypes = [\"VXU^*\"]\n",
            pw.display().to_string()
        )),
        ..Default::default()
    })
}

fn registry_log(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_registry_ack_decides_delivered_or_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("registry.jsonl");
    let Some((_reg, port)) = start_registry(&log) else {
        return;
    };
    let g = gateway(port, dir.path(), "s3cret-2024");
    let good = vxu("V-1", "M1", "08", 0);
    for m in [
        &good,
        &vxu("V-2", "M2", "BADVAX", 0),
        &vxu("V-3", "M3", "08", 300_000),
    ] {
        assert_eq!(ack_code(&send_one(&g.addr(), m).unwrap()), "AA");
    }
    g.wait_for("all three settled", Duration::from_secs(60), || {
        let d = g.dest_status("state-iis");
        d["delivered"] == 1 && d["dead_letters"] == 2
    });
    let seen = registry_log(&log);
    assert!(seen.iter().all(|r| r.get("invalid").is_none()), "{seen:?}");
    let accepted: Vec<_> = seen.iter().filter(|r| r["code"] == "AA").collect();
    assert_eq!(accepted.len(), 1, "{seen:?}");
    // The registry got the message exactly as eCW sent it (CRs included).
    assert_eq!(accepted[0]["hl7"].as_str().unwrap().as_bytes(), &good[..]);
    let out = g.cli(&["dlq", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["last_error"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("AE from the registry")
            && r.contains("BADVAX is not in the CVX table")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("MessageTooLargeFault")),
        "{reasons:?}"
    );
    assert_eq!(g.dest_status("state-iis")["kind"], "iis_soap");
}

#[test]
fn a_security_fault_holds_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("registry.jsonl");
    let Some((_reg, port)) = start_registry(&log) else {
        return;
    };
    let g = gateway(port, dir.path(), "expired");
    for i in 0..3 {
        let m = vxu(&format!("S-{i}"), &format!("M{i}"), "08", 0);
        assert_eq!(ack_code(&send_one(&g.addr(), &m).unwrap()), "AA");
    }
    g.wait_for(
        "the destination to be held",
        Duration::from_secs(30),
        || {
            let d = g.dest_status("state-iis");
            d["circuit"] != "closed"
                && d["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("SecurityFault"))
        },
    );
    let d = g.dest_status("state-iis");
    assert_eq!(d["pending"], 3, "{d}");
    assert_eq!(d["dead_letters"], 0, "{d}");
    assert!(registry_log(&log)
        .iter()
        .all(|r| r.get("security").is_some()));
}
