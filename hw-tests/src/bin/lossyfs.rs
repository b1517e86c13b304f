//! `lossyfs MOUNTPOINT`: mounts lossyfs in the foreground for manual tests.
//!
//! Control by signal (to this process's pid):
//! * SIGUSR1: power cut (drop everything unsynced);
//! * SIGUSR2: partial power cut (keep a random prefix of unsynced writes);
//! * SIGHUP: print stats and what a cut would drop now;
//! * SIGINT/SIGTERM: unmount and exit.
//!
//! Each event prints one line to stdout; `ready` once mounted.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use hw_tests::LossyMount;

fn usage() -> ExitCode {
    eprintln!(
        "usage: lossyfs MOUNTPOINT\n\
         signals: USR1 = power cut, USR2 = partial (torn) power cut,\n\
         HUP = print stats and unsynced paths, INT/TERM = unmount and exit"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mountpoint] = args.as_slice() else {
        return usage();
    };
    if mountpoint.starts_with('-') {
        return usage();
    }
    // Block the control signals before any thread exists, so that every
    // thread inherits the mask and only sigwait below sees them.
    // SAFETY: plain libc signal-set manipulation on a local set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGTERM,
        ] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let fs = match LossyMount::mount(&PathBuf::from(mountpoint)) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("lossyfs: cannot mount {mountpoint}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "ready mountpoint={} pid={}",
        fs.path().display(),
        std::process::id()
    );
    let _ = out.flush();
    let mut seed: u64 = std::process::id().into();
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: set is initialised; sig is a valid out-pointer.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        match sig {
            libc::SIGUSR1 => {
                let c = fs.power_cut();
                let _ = writeln!(out, "power_cut {c:?}");
            }
            libc::SIGUSR2 => {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let c = fs.power_cut_partial(seed);
                let _ = writeln!(out, "power_cut_partial seed={seed} {c:?}");
            }
            libc::SIGHUP => {
                let _ = writeln!(out, "stats {:?}", fs.stats());
                for line in fs.unsynced() {
                    let _ = writeln!(out, "unsynced {line}");
                }
            }
            _ => break,
        }
        let _ = out.flush();
    }
    match fs.unmount() {
        Ok(()) => {
            let _ = writeln!(out, "unmounted");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lossyfs: unmount failed: {e}");
            ExitCode::FAILURE
        }
    }
}
