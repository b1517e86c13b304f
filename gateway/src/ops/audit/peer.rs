//! Who is on the other end of the admin socket: the kernel's answer
//! (`SO_PEERCRED`: uid, gid, pid at connect time), never a name the client
//! claims, and whether that user may use the socket: root, the daemon's
//! own user, members of the static `gateway-admin` group, and whoever
//! `[admin] allow_users` / `allow_groups` list (docs/audit.md).

use nix::unistd::{Gid, Group, Uid, User};
use tokio::net::UnixStream;

use crate::config::AdminConfig;

/// The static group whose members may use the admin socket.
pub const ADMIN_GROUP: &str = "gateway-admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// The user name for `uid` from the user database, if it has one.
    pub user: Option<String>,
}

impl Peer {
    /// The connecting process's credentials, from the kernel.
    pub fn of(stream: &UnixStream) -> std::io::Result<Peer> {
        let c = stream.peer_cred()?;
        Ok(Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
            user: User::from_uid(Uid::from_raw(c.uid()))
                .ok()
                .flatten()
                .map(|u| u.name),
        })
    }

    /// For the audit trail and logs: `uid 1000 (alice)`.
    pub fn who(&self) -> String {
        match &self.user {
            Some(u) => format!("uid {} ({u})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// Whether `peer` may use the admin socket; `Err` is the refusal text.
pub fn authorise(peer: &Peer, cfg: &AdminConfig) -> Result<(), String> {
    if peer.uid == 0 || peer.uid == Uid::effective().as_raw() {
        return Ok(());
    }
    if let Some(u) = &peer.user {
        if cfg.allow_users.iter().any(|a| a == u) {
            return Ok(());
        }
    }
    let groups = std::iter::once(ADMIN_GROUP).chain(cfg.allow_groups.iter().map(String::as_str));
    for g in groups {
        if member_of(peer, g) {
            return Ok(());
        }
    }
    let name = peer
        .user
        .clone()
        .unwrap_or_else(|| format!("uid {}", peer.uid));
    Err(format!(
        "refused: {} is not root and not in the {ADMIN_GROUP} group. Add the operator with `usermod -aG {ADMIN_GROUP} {name}` (then log in again), or list them in the config under [admin] allow_users = [\"{name}\"] or allow_groups = [...]",
        peer.who()
    ))
}

/// Whether `peer`'s primary group is `group` or its user is listed in it.
fn member_of(peer: &Peer, group: &str) -> bool {
    let Ok(Some(g)) = Group::from_name(group) else {
        return false;
    };
    g.gid == Gid::from_raw(peer.gid)
        || peer
            .user
            .as_ref()
            .is_some_and(|u| g.mem.iter().any(|m| m == u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, user: Option<&str>) -> Peer {
        Peer {
            uid,
            gid: 65534,
            pid: None,
            user: user.map(str::to_string),
        }
    }

    #[test]
    fn root_and_listed_users_pass_others_are_refused_with_the_fix() {
        let cfg = AdminConfig::default();
        assert!(authorise(&peer(0, Some("root")), &cfg).is_ok());
        let e = authorise(&peer(4242, Some("mallory")), &cfg).unwrap_err();
        assert!(
            e.contains("uid 4242 (mallory)") && e.contains(ADMIN_GROUP),
            "{e}"
        );
        assert!(
            e.contains("[admin] allow_users") && e.contains("usermod -aG"),
            "{e}"
        );
        let listed = AdminConfig {
            allow_users: vec!["mallory".into()],
            allow_groups: vec![],
        };
        assert!(authorise(&peer(4242, Some("mallory")), &listed).is_ok());
    }
}
