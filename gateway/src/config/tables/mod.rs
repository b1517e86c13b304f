//! The tables of the config file, one file each, and the list that makes
//! [`Config`] of them. To add a table: a file here implementing
//! [`Table`](super::table::Table), its `mod` line, and its line in `tables!`.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::check::Check;
use super::cross::FactSheet;
use super::model::*;
use super::resolve::Resolver;
use super::stage::{Checked, Resolved, Stage};
use super::table::{tables, Table};

mod admin;
mod alert_contacts;
mod alerts;
mod audit;
mod delivery;
mod destination;
mod export;
mod fhir_settings;
mod fleet;
mod health;
mod listener;
mod outbound;
mod pickup;
mod poller;
mod route;
mod sftp_endpoint;
mod status_page;
mod storage;

pub use fleet::default_box_id;

tables! {
    /// The whole configuration: the top-level keys and one field per table.
    pub struct Config<S> {
        /// `[storage]`: journal quota, disk watermarks, quarantine, retention.
        storage: StorageConfig = "storage" via storage::Storage,
        /// `[[listener]]`: MLLP(S) sources.
        listeners: Vec<ListenerConfig<S>> = "listener" via listener::Listeners,
        /// `[[destination]]`: where messages are delivered, with their policy.
        destinations: Vec<DestinationConfig<S>> = "destination" via destination::Destinations,
        /// `[[route]]`: which messages of which sources go to which destinations.
        routes: Vec<RouteConfig> = "route" via route::Routes,
        /// `[[poller]]`: results fetched from the cloud (journaled as ORU^R01)
        /// and files fetched from sftp servers.
        pollers: Pollers<S> = "poller" via poller::Pollers,
        /// `[[pickup]]`: folders eCW drops X12 or HL7 files into.
        pickups: Vec<PickupConfig> = "pickup" via pickup::Pickups,
        /// `[[export]]`: FHIR Bulk Data `$export` jobs.
        exports: Vec<ExportConfig<S>> = "export" via export::Exports,
        /// `[health]`: off unless the table is present.
        health: Option<HealthConfig> = "health" via health::Health,
        /// `[alerts]`: rules run with defaults when the table is absent.
        alerts: AlertsConfig<S> = "alerts" via alerts::Alerts,
        /// `[admin]`: who else may use the admin socket.
        admin: AdminConfig = "admin" via admin::Admin,
        /// `[audit]`: the audit trail's retention and size cap.
        audit: AuditConfig = "audit" via audit::Audit,
        /// `[fleet]`: the heartbeat to the MSP.
        fleet: Option<FleetConfig<S>> = "fleet" via fleet::Fleet,
        /// `[status_page]`: the office's read-only page.
        status_page: Option<StatusPageConfig<S>> = "status_page" via status_page::StatusPage,
    }
}

/// `data_dir` and `admin_socket`.
fn top_level(
    data_dir: &Spanned<String>,
    admin_socket: Option<&Spanned<String>>,
    cx: &mut Check<'_>,
) -> Option<(PathBuf, Option<PathBuf>)> {
    if data_dir.get_ref().trim().is_empty() {
        return cx.fail(
            data_dir,
            "data_dir is empty: give a directory for the journal, e.g. data_dir = \"/var/lib/gateway\"",
        );
    }
    let dir = cx.path(data_dir.get_ref());
    let socket = match admin_socket {
        None => None,
        Some(s) => {
            let path = cx.path(s.get_ref());
            // sun_path holds 108 bytes including the NUL.
            if path.as_os_str().len() > 107 {
                return cx.fail(
                    s,
                    format!(
                        "admin_socket path {} is longer than the 107 bytes a Unix socket allows",
                        path.display()
                    ),
                );
            }
            Some(path)
        }
    };
    Some((dir, socket))
}
