//! `gateway smb-conf`: the Samba configuration that serves eCW's folders
//! from the box (docs/x12.md, "How eCW's folder reaches the box"), made
//! from the gateway's own configuration so the shares can never disagree
//! with the folders the gateway reads and writes. One share per distinct
//! folder: each `[[pickup]]` path (eCW writes claims there), each pickup's
//! and each `sftp` poller's `ack_dir` (the TA1/999 of refused files) and
//! each `kind = "folder"` destination (eCW imports the TA1/999/277CA/835
//! there).
//!
//! The shares admit one SMB user (`--user`, a Unix account with no login;
//! its password is set with `smbpasswd` by the caller), never a guest;
//! SMB3 only, signing required, encryption offered; smbd listens on the
//! LAN interfaces only (`--interfaces`). Files and folders made over SMB get
//! the shares' group (`--group`) with group read/write, so the gateway's
//! service (a member of that group) can read, archive and delete them.
//!
//! `--paths` prints the share folders instead, one per line, for the boot
//! unit to create and own (image/rootfs/usr/lib/appliance/smb-shares). The
//! configuration is read with `config::load_checked`: no secret is needed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::config::{self, Checked, Config, DestinationKind};

#[derive(Args)]
pub struct SmbConfArgs {
    /// The Unix user eCW's server logs in as (the only user admitted).
    #[arg(long, default_value = "ecw")]
    user: String,
    /// The group files on the shares belong to (the gateway's service is a member).
    #[arg(long, default_value = "gateway-shares")]
    group: String,
    /// The interfaces smbd listens on (Samba syntax: names, wildcards or addresses).
    #[arg(long, default_value = "en* eth*")]
    interfaces: String,
    /// The TCP port smbd listens on.
    #[arg(long, default_value_t = 445)]
    port: u16,
    /// Samba's private, lock, state and cache directories go under this one.
    #[arg(long, default_value = "/var/lib/gateway-smb")]
    state_dir: PathBuf,
    /// Samba's pid file and sockets go under this one.
    #[arg(long, default_value = "/run/gateway-smb")]
    run_dir: PathBuf,
    /// Share only folders under this directory (the appliance serves and lets
    /// the gateway write only there); others are left out, with a note on stderr.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Print the shared folders, one per line, instead of the configuration.
    #[arg(long)]
    paths: bool,
}

/// One shared folder and why it is shared.
#[derive(Debug, PartialEq)]
struct Share {
    name: String,
    path: PathBuf,
    /// What the gateway does with the folder, for the comment above it.
    uses: Vec<String>,
}

pub fn run(config_path: &Path, args: SmbConfArgs) -> ExitCode {
    let cfg = match config::load_checked(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = shares(&cfg, args.root.as_deref()).and_then(|(shares, left_out)| {
        for note in left_out {
            eprintln!("{}: {note}", config_path.display());
        }
        if args.paths {
            Ok(shares
                .iter()
                .map(|s| format!("{}\n", s.path.display()))
                .collect())
        } else {
            render(&cfg.source, &shares, &args)
        }
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", config_path.display());
            ExitCode::FAILURE
        }
    }
}

/// The shares of a configuration, in the order the folders appear in it;
/// a folder used twice (an `ack_dir` that is also a folder destination) is
/// one share, named after its first use. With `root`, a folder outside it is left out (the appliance's
/// default outbox is inside the gateway's private state directory, which
/// must never be shared or re-owned), with a note saying so.
type Shares = (Vec<Share>, Vec<String>);

fn shares(cfg: &Config<Checked>, root: Option<&Path>) -> Result<Shares, String> {
    let mut folders: Vec<(String, &Path, String)> = Vec::new();
    for p in &cfg.pickups {
        folders.push((
            p.name.clone(),
            &p.path,
            format!(
                "pickup \"{}\": eCW writes files here, the gateway takes them",
                p.name
            ),
        ));
        if let Some(acks) = &p.ack_dir {
            folders.push((
                format!("{}-acks", p.name),
                acks,
                format!(
                    "pickup \"{}\" ack_dir: the TA1/999 of refused files",
                    p.name
                ),
            ));
        }
    }
    for p in &cfg.pollers.sftp {
        if let Some(acks) = &p.ack_dir {
            folders.push((
                format!("{}-acks", p.name),
                acks,
                format!(
                    "sftp poller \"{}\" ack_dir: the TA1/999 of refused responses",
                    p.name
                ),
            ));
        }
    }
    for d in &cfg.destinations {
        if let DestinationKind::Folder { path } = &d.kind {
            folders.push((
                d.name.clone(),
                path,
                format!(
                    "folder destination \"{}\": the gateway writes here, eCW imports",
                    d.name
                ),
            ));
        }
    }
    let mut out: Vec<Share> = Vec::new();
    let mut left_out = Vec::new();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (name, path, use_) in folders {
        check_path(&name, path)?;
        if let Some(root) = root {
            if !path.starts_with(root) || path == root {
                left_out.push(format!(
                    "not shared over SMB: {use_}, {} is outside {} (on the appliance eCW's folders and the gateway's writable folders are under it: move the folder there if eCW needs it)",
                    path.display(),
                    root.display()
                ));
                continue;
            }
        }
        if let Some(s) = out.iter_mut().find(|s| s.path == path) {
            s.uses.push(use_);
            continue;
        }
        check_name(&name)?;
        if let Some(other) = names.insert(name.to_ascii_lowercase(), path.to_path_buf()) {
            return Err(format!(
                "two shares would be named \"{name}\" ({} and {}): share names ignore case; rename the pickup, poller or destination",
                other.display(),
                path.display()
            ));
        }
        out.push(Share {
            name,
            path: path.to_path_buf(),
            uses: vec![use_],
        });
    }
    Ok((out, left_out))
}

/// A share name Samba and Windows both take as it is.
fn check_name(name: &str) -> Result<(), String> {
    let reserved = ["global", "homes", "printers", "print$", "ipc$"];
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if name.is_empty() || name.len() > 80 || !plain {
        return Err(format!(
            "\"{name}\" cannot be an SMB share name: use up to 80 letters, digits, '-', '_' or '.' in the pickup, poller or destination name"
        ));
    }
    if reserved.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "\"{name}\" is a name Samba reserves: rename the pickup, poller or destination"
        ));
    }
    Ok(())
}

/// A folder smb.conf can name (absolute, one line, no `%` macro).
fn check_path(name: &str, path: &Path) -> Result<(), String> {
    let text = path.to_string_lossy();
    let bad = |why: &str| Err(format!("\"{name}\": the folder {} {why}", path.display()));
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return bad("must be an absolute path without \"..\"");
    }
    if text.contains(['\n', '\r', '%', '"']) || text.trim() != text {
        return bad("cannot be written in smb.conf (a line break, '%', '\"' or a space at an end): rename the folder");
    }
    Ok(())
}

/// The smb.conf text.
fn render(source: &Path, shares: &[Share], a: &SmbConfArgs) -> Result<String, String> {
    for (what, v) in [("--user", &a.user), ("--group", &a.group)] {
        let ok = !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            return Err(format!(
                "{what} \"{v}\": use letters, digits, '-', '_' or '.'"
            ));
        }
    }
    if a.interfaces.contains(['\n', '\r', '%']) || a.interfaces.trim().is_empty() {
        return Err(format!(
            "--interfaces \"{}\": name one or more interfaces on one line",
            a.interfaces
        ));
    }
    for (name, dir) in [("--state-dir", &a.state_dir), ("--run-dir", &a.run_dir)] {
        check_path(name, dir)?;
    }
    let state = |sub: &str| a.state_dir.join(sub).display().to_string();
    let run = |sub: &str| a.run_dir.join(sub).display().to_string();
    let mut s = String::new();
    // `write!` to a String cannot fail.
    let _ = write!(
        s,
        "# Made by `gateway smb-conf` from {source} at boot: do not edit (edit the\n\
         # gateway's configuration; docs/x12.md, \"How eCW's folder reaches the box\").\n\
         [global]\n\
         \x20  server role = standalone server\n\
         \x20  security = user\n\
         \x20  map to guest = Never\n\
         \x20  restrict anonymous = 2\n\
         \x20  server min protocol = SMB3\n\
         \x20  server signing = mandatory\n\
         \x20  server smb encrypt = desired\n\
         \x20  ntlm auth = ntlmv2-only\n\
         \x20  disable netbios = yes\n\
         \x20  smb ports = {port}\n\
         \x20  interfaces = {interfaces}\n\
         \x20  bind interfaces only = yes\n\
         \x20  passdb backend = tdbsam:{passdb}\n\
         \x20  private dir = {private}\n\
         \x20  lock directory = {lock}\n\
         \x20  state directory = {statedir}\n\
         \x20  cache directory = {cache}\n\
         \x20  pid directory = {pid}\n\
         \x20  ncalrpc dir = {ncalrpc}\n\
         \x20  logging = systemd\n\
         \x20  log level = 1\n\
         \x20  load printers = no\n\
         \x20  printing = bsd\n\
         \x20  printcap name = /dev/null\n\
         \x20  disable spoolss = yes\n\
         \x20  usershare max shares = 0\n\
         \x20  unix password sync = no\n",
        source = source.display(),
        port = a.port,
        interfaces = a.interfaces.trim(),
        passdb = state("private/passdb.tdb"),
        private = state("private"),
        lock = state("lock"),
        statedir = state("state"),
        cache = state("cache"),
        pid = run(""),
        ncalrpc = run("ncalrpc"),
    );
    for share in shares {
        s.push('\n');
        for u in &share.uses {
            let _ = writeln!(s, "# {u}");
        }
        let _ = write!(
            s,
            "[{name}]\n\
             \x20  path = {path}\n\
             \x20  valid users = {user}\n\
             \x20  guest ok = no\n\
             \x20  read only = no\n\
             \x20  browseable = yes\n\
             \x20  force group = {group}\n\
             \x20  create mask = 0660\n\
             \x20  force create mode = 0660\n\
             \x20  directory mask = 2770\n\
             \x20  force directory mode = 2770\n",
            name = share.name,
            path = share.path.display(),
            user = a.user,
            group = a.group,
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: SmbConfArgs,
    }

    fn cfg(text: &str) -> Config<Checked> {
        config::validate(
            text,
            Path::new("/etc/gateway/gateway.toml"),
            Path::new("/etc/gateway"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    const TWO_PICKUPS: &str = r#"
data_dir = "/var/lib/gateway"

[[pickup]]
name = "claims-out"
path = "/var/lib/gateway-shares/claims"
pattern = "*.837"
format = "x12"
ack_dir = "/var/lib/gateway-shares/responses"

[[pickup]]
name = "lab-files"
path = "/var/lib/gateway-shares/lab"
pattern = "*.hl7"
format = "hl7"

[[poller]]
name = "era"
kind = "sftp"
url = "sftp://practice42@sftp.example.com/ReceiveFiles"
pattern = "*.835"
ack_dir = "/var/lib/gateway-shares/era-refused"
[poller.auth]
type = "password"
password_file = "credential:era-pw"
known_hosts = "era.known_hosts"

[[destination]]
name = "responses"
kind = "folder"
path = "/var/lib/gateway-shares/responses"

[[route]]
name = "claims"
from = ["claims-out", "lab-files", "era"]
to = ["responses"]
"#;

    #[test]
    fn one_share_per_folder_in_config_order() {
        let (got, left_out) = shares(
            &cfg(TWO_PICKUPS),
            Some(Path::new("/var/lib/gateway-shares")),
        )
        .unwrap();
        assert!(left_out.is_empty(), "{left_out:?}");
        let names: Vec<(&str, &Path, usize)> = got
            .iter()
            .map(|s| (s.name.as_str(), s.path.as_path(), s.uses.len()))
            .collect();
        assert_eq!(
            names,
            [
                ("claims-out", Path::new("/var/lib/gateway-shares/claims"), 1),
                // The ack_dir and the folder destination are one folder.
                (
                    "claims-out-acks",
                    Path::new("/var/lib/gateway-shares/responses"),
                    2
                ),
                ("lab-files", Path::new("/var/lib/gateway-shares/lab"), 1),
                // The sftp poller's ack_dir: eCW reads refusals there too.
                (
                    "era-acks",
                    Path::new("/var/lib/gateway-shares/era-refused"),
                    1
                ),
            ]
        );
    }

    #[test]
    fn the_configuration_admits_one_user_and_no_guest() {
        let a = Wrap::parse_from(["x", "--port", "4450"]).args;
        let c = cfg(TWO_PICKUPS);
        let text = render(&c.source, &shares(&c, None).unwrap().0, &a).unwrap();
        for line in [
            "map to guest = Never",
            "server min protocol = SMB3",
            "smb ports = 4450",
            "interfaces = en* eth*",
            "bind interfaces only = yes",
            "[claims-out]",
            "path = /var/lib/gateway-shares/claims",
            "valid users = ecw",
            "force group = gateway-shares",
            "guest ok = no",
        ] {
            assert!(
                text.lines().any(|l| l.trim() == line),
                "{line} missing in\n{text}"
            );
        }
        assert!(!text.contains("guest ok = yes"));
        assert_eq!(text.matches("\n[").count(), 5, "{text}");
        assert!(text.contains("# sftp poller \"era\" ack_dir"), "{text}");
    }

    #[test]
    fn refuses_what_smb_conf_cannot_say() {
        let c = cfg(TWO_PICKUPS);
        // Outside the root: left out, and said.
        let (got, left_out) = shares(&c, Some(Path::new("/var/lib/gateway-shares/lab"))).unwrap();
        assert_eq!(got.len(), 0);
        assert_eq!(left_out.len(), 5, "{left_out:?}");
        assert!(left_out[0].contains("pickup \"claims-out\"") && left_out[0].contains("outside"));
        let percent =
            TWO_PICKUPS.replace("/var/lib/gateway-shares/lab", "/var/lib/gateway-shares/50%");
        let e = shares(&cfg(&percent), None).unwrap_err();
        assert!(e.contains("lab-files") && e.contains('%'), "{e}");
        assert!(check_name("global").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("claims-out").is_ok());
        let a = Wrap::parse_from(["x", "--user", "bad user"]).args;
        assert!(render(&c.source, &[], &a).unwrap_err().contains("--user"));
    }
}
