//! Signals rd-chain receives while a phase runs, and the ones it sends to the phase's child.
//!
//! Ctrl-C reaches the child directly through the terminal's foreground process group, so rd-chain only counts
//! it (via `ctrlc`). SIGTERM and SIGHUP sent to rd-chain alone (a CI job being cancelled) are counted by a
//! handler of our own so the chain can tell them apart and forward SIGTERM to the child. Handlers only bump
//! atomics; every decision is made by the waiting thread. Nothing here may block or allocate in a handler.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// The signal numbers rd-chain uses (the same on every unix); everything else refers to these.
pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// Is `n` one of the signals that ask a process to stop (SIGINT, SIGTERM, SIGHUP)?
pub fn is_stop_signal(n: i32) -> bool {
    [SIGINT, SIGTERM, SIGHUP].contains(&n)
}

static INT: AtomicUsize = AtomicUsize::new(0);
static TERM: AtomicUsize = AtomicUsize::new(0);
static HUP: AtomicUsize = AtomicUsize::new(0);

/// What arrived so far (monotonic counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub int: usize,
    pub term: usize,
    pub hup: usize,
}

impl Received {
    pub fn now() -> Received {
        Received {
            int: INT.load(Ordering::SeqCst),
            term: TERM.load(Ordering::SeqCst),
            hup: HUP.load(Ordering::SeqCst),
        }
    }

    pub fn any(&self) -> bool {
        self.int + self.term + self.hup > 0
    }
}

/// Which signal stopped (or is stopping) the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
    HangUp,
}

impl Stop {
    pub fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => crate::exit::INTERRUPTED,
            Stop::Terminate => crate::exit::for_signal(SIGTERM),
            Stop::HangUp => crate::exit::for_signal(SIGHUP),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "interrupted (SIGINT)",
            Stop::Terminate => "terminated (SIGTERM)",
            Stop::HangUp => "hung up (SIGHUP)",
        }
    }
}

/// Install the handlers once. Before this, the signals have their default effect.
pub fn install() -> std::io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = ctrlc::set_handler(|| {
            INT.fetch_add(1, Ordering::SeqCst);
        })
        .map_err(|e| std::io::Error::other(format!("cannot install the Ctrl-C handler: {e}")));
        #[cfg(unix)]
        if result.is_ok() {
            // Replace ctrlc's SIGTERM/SIGHUP handlers (termination feature) by counting ones, so the two are
            // told apart from Ctrl-C; ctrlc keeps SIGINT.
            unix::count_term_and_hup();
        }
    });
    result
}

/// Ask the child to stop (SIGTERM on unix; on other platforms the only way std offers: kill).
pub fn terminate(child: &mut std::process::Child) {
    #[cfg(unix)]
    unix::send(child.id(), unix::SIGTERM);
    #[cfg(not(unix))]
    let _ = child.kill();
}

/// Does a process with this pid exist (it may belong to another user)?
pub fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    return unix::alive(pid);
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Make `cmd`'s child receive SIGTERM if rd-chain dies without reaping it (killed with SIGKILL, say), so
/// no rdagent outlives rd-chain even then (Linux's parent-death signal; elsewhere the handlers above are all).
pub fn terminate_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    linux::terminate_with_parent(cmd);
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::raw::{c_int, c_ulong};
    use std::os::unix::process::CommandExt;

    const PR_SET_PDEATHSIG: c_int = 1;
    const SIGTERM: c_ulong = super::SIGTERM as c_ulong;

    extern "C" {
        fn prctl(option: c_int, ...) -> c_int;
        fn getppid() -> c_int;
    }

    pub fn terminate_with_parent(cmd: &mut std::process::Command) {
        // rd-chain's pid is the child's parent pid.
        let parent = std::process::id() as c_int;
        // SAFETY: the closure runs in the forked child before exec and makes only the async-signal-safe calls
        // prctl and getppid, touching no memory shared with the parent.
        unsafe {
            cmd.pre_exec(move || {
                if prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // rd-chain may have died between fork and prctl: then nobody would send the signal.
                if getppid() != parent {
                    return Err(std::io::Error::other(
                        "rd-chain exited while starting rdagent",
                    ));
                }
                Ok(())
            });
        }
    }
}

#[cfg(unix)]
mod unix {
    use super::{HUP, TERM};
    use std::os::raw::c_int;
    use std::sync::atomic::Ordering;

    pub const SIGHUP: c_int = super::SIGHUP;
    pub const SIGTERM: c_int = super::SIGTERM;

    extern "C" {
        fn kill(pid: c_int, sig: c_int) -> c_int;
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    }

    extern "C" fn on_signal(sig: c_int) {
        if sig == SIGTERM {
            TERM.fetch_add(1, Ordering::SeqCst);
        } else if sig == SIGHUP {
            HUP.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn count_term_and_hup() {
        // SAFETY: `on_signal` only touches atomics, which is async-signal-safe.
        unsafe {
            signal(SIGTERM, on_signal);
            signal(SIGHUP, on_signal);
        }
    }

    pub fn alive(pid: u32) -> bool {
        let Ok(pid) = c_int::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: kill(2) with signal 0 only checks that the process exists; nothing is sent.
        let r = unsafe { kill(pid, 0) };
        // EPERM (1): it exists but belongs to someone else.
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(1)
    }

    pub fn send(pid: u32, sig: c_int) {
        if let Ok(pid) = c_int::try_from(pid) {
            if pid > 0 {
                // SAFETY: kill(2) with a positive pid signals that one process; no memory is involved.
                unsafe {
                    kill(pid, sig);
                }
            }
        }
    }
}
