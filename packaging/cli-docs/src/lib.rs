//! Shell completions (bash, zsh, fish) and man pages made from a binary's own
//! clap `Command`, so what the .deb ships cannot drift from the CLI. Both
//! `gateway cli-docs` and `updater cli-docs` (hidden verbs) call [`write`];
//! `scripts/deb` runs them while it stages the package.

use clap::Command;
use clap_complete::Shell;
use std::io;
use std::path::Path;

/// Where each file goes under `root`: the paths Debian's bash-completion,
/// zsh and fish packages read, and man section 1.
pub const BASH_DIR: &str = "usr/share/bash-completion/completions";
pub const ZSH_DIR: &str = "usr/share/zsh/vendor-completions";
pub const FISH_DIR: &str = "usr/share/fish/vendor_completions.d";
pub const MAN_DIR: &str = "usr/share/man/man1";

/// Writes the completions for `bin` and one man page per visible
/// (sub)command (`NAME.1`, `NAME-verb.1`, ... after the command's own
/// name) under `root`, creating the directories. Returns the files written,
/// relative to `root`.
pub fn write(cmd: Command, bin: &str, root: &Path) -> io::Result<Vec<String>> {
    let mut written = Vec::new();
    // bash-completion loads `completions/NAME` on first use of NAME (not
    // clap_complete's NAME.bash), zsh `_NAME`, fish `NAME.fish`.
    for (shell, dir, file) in [
        (Shell::Bash, BASH_DIR, bin.to_owned()),
        (Shell::Zsh, ZSH_DIR, format!("_{bin}")),
        (Shell::Fish, FISH_DIR, format!("{bin}.fish")),
    ] {
        let out = root.join(dir);
        std::fs::create_dir_all(&out)?;
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), bin, &mut text);
        std::fs::write(out.join(&file), text)?;
        written.push(format!("{dir}/{file}"));
    }
    let man = root.join(MAN_DIR);
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(cmd, &man)?;
    for entry in std::fs::read_dir(&man)? {
        written.push(relative(root, &entry?.path()));
    }
    written.sort();
    Ok(written)
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Command {
        Command::new("demo")
            .about("A demo")
            .subcommand(Command::new("run").about("Run it"))
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn writes_completions_and_one_man_page_per_visible_verb() {
        let dir = tempfile::tempdir().unwrap();
        let files = write(demo(), "demo", dir.path()).unwrap();
        assert_eq!(
            files,
            [
                "usr/share/bash-completion/completions/demo",
                "usr/share/fish/vendor_completions.d/demo.fish",
                "usr/share/man/man1/demo-run.1",
                "usr/share/man/man1/demo.1",
                "usr/share/zsh/vendor-completions/_demo",
            ]
        );
        let man = std::fs::read_to_string(dir.path().join(MAN_DIR).join("demo.1")).unwrap();
        assert!(man.contains("A demo"), "{man}");
        assert!(!man.contains("secret"), "a hidden verb leaked: {man}");
        let bash = std::fs::read_to_string(dir.path().join(BASH_DIR).join("demo")).unwrap();
        assert!(bash.contains("run"), "{bash}");
    }
}
