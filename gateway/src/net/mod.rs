//! Network plumbing shared by sources, destinations and ops: TLS
//! configuration from PEM files (`tls_config`: the MLLP listener's and the
//! status page's server configs, the MLLP client's), the MLLP client
//! (`mllp_client`: `gateway send`, the benchmark, MLLP destinations), the
//! HTTPS client for destinations (system roots + CA file + SPKI pins), and
//! the minimal DER walk behind pins, and the SSH/SFTP client (`ssh_client`,
//! with host keys pinned by `known_hosts`) for sftp destinations and pollers.

pub mod der;
pub mod https_client;
pub mod known_hosts;
pub mod mllp_client;
pub mod ssh_client;
pub mod tls_config;
