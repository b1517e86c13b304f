//! Paths in the config are relative to the config file's directory. Pure:
//! lexical joins only, nothing is looked up.

use std::path::{Component, Path, PathBuf};

/// `p` as written, made absolute against `base` (the config file's directory).
pub fn absolute(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    normalize(&joined)
}

/// Drop `.` and fold `dir/..` lexically, so messages show `/srv/var`, not `/srv/config/../var`.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_base_and_fold_dots() {
        let base = Path::new("/etc/gw");
        assert_eq!(absolute(base, "../var"), PathBuf::from("/etc/var"));
        assert_eq!(absolute(base, "./out"), PathBuf::from("/etc/gw/out"));
        assert_eq!(absolute(base, "/srv/x"), PathBuf::from("/srv/x"));
    }
}
