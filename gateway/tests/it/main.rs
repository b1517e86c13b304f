//! The gateway's integration tests, one binary: `cargo test -p gateway`
//! runs them all, `cargo test -p gateway --test it -- delivery::` one
//! module. Most run the real `gateway` binary against real peers on
//! loopback; `tidy` checks docs/ARCHITECTURE.md and the crate rules
//! against the tree. Shared fixtures are in `support/`.

mod support;

mod alertmanager;
mod audit;
mod audit_syslog;
mod auth;
mod bad_input;
mod crash;
mod delivery;
mod disk_full;
mod email;
mod export;
mod export_deliver;
mod fhir;
mod fhir_merge;
mod https_client;
mod iis_soap;
mod ingest;
mod journal_cli;
mod messages;
mod messages_page;
mod ops;
mod pickup;
mod poller;
mod power_loss;
mod prometheus;
mod python_peers;
mod sftp;
mod sftp_poller;
mod smb;
mod systemd;
mod tidy;

mod tls;
mod x12_cli;
