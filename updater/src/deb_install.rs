//! A box installed from the .deb (a mini-PC the clinic already owns) has no
//! A/B slots: apt updates it, from the signed repository `scripts/deb --repo`
//! builds. The package installs [`MARKER`]; when it is there, every verb that
//! works on this box's slots stands aside and says so (docs/install-deb.md).

use std::path::Path;

/// Installed by the clinic-gateway package only (never by the image); holds
/// the package's version.
pub const MARKER: &str = "/usr/share/clinic-gateway/deb-install";

/// The exit code of `updater check`, `install` and `health` on a .deb
/// install: nothing was done, by design (`status` exits 0).
pub const EXIT_STANDS_ASIDE: u8 = 3;

/// The package version the marker names, if this is a .deb install.
pub fn detect(marker: &Path) -> Option<String> {
    let text = std::fs::read_to_string(marker).ok()?;
    let version = text.lines().next().unwrap_or("").trim();
    Some(if version.is_empty() {
        "unknown".to_owned()
    } else {
        version.to_owned()
    })
}

/// What the updater says instead of acting, naming apt.
pub fn message(version: &str) -> String {
    format!(
        "this box runs the clinic-gateway .deb (version {version}), not the A/B image: \
         it has no update slots, so the updater stands aside. Update it with apt: \
         `apt update && apt install clinic-gateway` (see /usr/share/doc/clinic-gateway/install-deb.md)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_names_the_version_and_its_absence_means_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("deb-install");
        assert_eq!(detect(&marker), None);
        std::fs::write(&marker, "1.2.3\n").unwrap();
        assert_eq!(detect(&marker).as_deref(), Some("1.2.3"));
        std::fs::write(&marker, "").unwrap();
        assert_eq!(detect(&marker).as_deref(), Some("unknown"));
        assert!(message("1.2.3").contains("apt install clinic-gateway"));
    }
}
