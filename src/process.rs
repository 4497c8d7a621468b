//! Children that take their whole process tree with them: rdagent (and the `--hook auto` probe) runs in a
//! process group of its own, so every worker it starts (Qlib, Docker clients, conda interpreters) can be
//! signalled at once, and nothing it started outlives rd-chain, however rd-chain ends.
//!
//! - `spawn` starts the command as the leader of a new process group. On Linux it also gets the parent-death
//!   signal (SIGTERM) and rd-chain becomes a child subreaper, so workers that leave the group and are orphaned
//!   come back to rd-chain, which kills and reaps them.
//! - A guard process (rd-chain itself, re-executed in the hidden `__guard` mode) holds the read end of a pipe
//!   from rd-chain. rd-chain never writes to it until the group is done; if rd-chain dies first (even by
//!   SIGKILL) the kernel closes the pipe and the guard sends the group SIGTERM, then SIGKILL after the grace
//!   period. The guard ignores SIGINT/SIGTERM/SIGHUP and has a group of its own, so what kills rd-chain does not
//!   kill it. On Linux the guard also records, once a second from `/proc`, every descendant of the leader as
//!   (pid, start time), and ends those too: a worker that moved to another group (setsid, setpgid) is found
//!   through its parent while rd-chain lives, and a pid since reused by another process is never signalled.
//! - Because the group is not the terminal's foreground group, Ctrl-C reaches rd-chain only; the caller
//!   forwards SIGINT with `Group::signal`.
//! - `Group::finish` (also run on drop): once the leader has exited, any member still running gets SIGTERM,
//!   then SIGKILL after the grace period; orphans re-parented to rd-chain are killed and reaped; the guard is
//!   released. A later retry or stall restart uses the same calls.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use crate::signals::{SIGINT, SIGTERM};
/// SIGKILL's number (the same on every unix).
pub const SIGKILL: i32 = 9;

/// The hidden first argument that runs rd-chain as a guard.
pub const GUARD_ARG: &str = "__guard";
/// What rd-chain writes to the guard when the group is done: the guard then exits without signalling.
const RELEASE: &[u8] = b"done\n";

static ADOPTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Make rd-chain a child subreaper (Linux): workers whose parent dies are re-parented to rd-chain instead of
/// init, and `finish` kills and reaps them. Only the rd-chain program calls this (every other child of the
/// process is then one of its groups or guards); elsewhere it does nothing.
pub fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    if sys::become_subreaper() {
        ADOPTING.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

static GUARDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Start guards from now on. Only the rd-chain program calls this (its `main`), since a guard is the program
/// itself re-executed; a library user (or a test binary) gets process groups without guards.
pub fn use_guards() {
    GUARDED.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn adopting() -> bool {
    ADOPTING.load(std::sync::atomic::Ordering::SeqCst)
}

/// A child leading its own process group, and the guard that ends the group if rd-chain dies.
pub struct Group {
    child: Child,
    pgid: i32,
    grace: Duration,
    guard: Option<(Child, ChildStdin)>,
    status: Option<ExitStatus>,
    finished: bool,
}

/// Start `cmd` as the leader of a new process group, with a guard that ends the group (SIGTERM, then SIGKILL
/// after `grace`) if rd-chain dies before `finish`.
pub fn spawn(cmd: &mut Command, grace: Duration) -> std::io::Result<Group> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        crate::signals::terminate_with_parent(cmd);
    }
    let child = cmd.spawn()?;
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    let guard = start_guard(pgid, grace);
    if guard.is_none() && GUARDED.load(std::sync::atomic::Ordering::SeqCst) {
        log::warn!(
            "cannot start rd-chain's guard process: if rd-chain is killed, process group {pgid} is signalled \
             only through rdagent's parent-death signal"
        );
    }
    Ok(Group {
        child,
        pgid,
        grace,
        guard,
        status: None,
        finished: false,
    })
}

fn start_guard(pgid: i32, grace: Duration) -> Option<(Child, ChildStdin)> {
    if !cfg!(unix) || pgid <= 0 || !GUARDED.load(std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let mut cmd = Command::new(exe);
    cmd.arg(GUARD_ARG)
        .arg(pgid.to_string())
        .arg(grace.as_millis().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut guard = cmd.spawn().ok()?;
    let pipe = guard.stdin.take()?;
    Some((guard, pipe))
}

impl Group {
    /// The leader's pid (also the group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The leader's stdout/stderr, when piped.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The leader's status once it has exited (the rest of the group may still run: see `finish`).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let s = self.child.try_wait()?;
        self.status = s;
        Ok(s)
    }

    /// Send `sig` to every process of the group.
    pub fn signal(&self, sig: i32) {
        #[cfg(unix)]
        sys::kill_group(self.pgid, sig);
        #[cfg(not(unix))]
        let _ = sig;
    }

    /// SIGKILL the group and every orphan re-parented to rd-chain; no grace.
    pub fn kill(&mut self) {
        self.signal(SIGKILL);
        #[cfg(not(unix))]
        let _ = self.child.kill();
        self.kill_orphans();
    }

    /// Is any process of the group still there (a zombie of rd-chain's counts until reaped)?
    pub fn group_alive(&self) -> bool {
        #[cfg(unix)]
        {
            sys::group_exists(self.pgid)
        }
        #[cfg(not(unix))]
        false
    }

    fn kill_orphans(&self) {
        #[cfg(target_os = "linux")]
        for pid in self.orphans() {
            sys::kill_pid(pid, SIGKILL);
            sys::reap(pid);
        }
    }

    /// Reap zombies re-parented to rd-chain (workers of the group whose parent died before them).
    fn reap_orphans(&self) {
        #[cfg(target_os = "linux")]
        for pid in self.orphans() {
            if sys::is_zombie(pid) {
                sys::reap(pid);
            }
        }
    }

    /// Wait for the leader, then end what is left of the group: SIGTERM, SIGKILL after the grace period; kill
    /// and reap orphans; release the guard. Returns the leader's status.
    pub fn finish(&mut self) -> std::io::Result<ExitStatus> {
        let status = match self.status {
            Some(s) => s,
            None => {
                let s = self.child.wait()?;
                self.status = Some(s);
                s
            }
        };
        if !self.finished {
            self.finished = true;
            self.reap_orphans();
            if self.group_alive() {
                log::warn!(
                    "rdagent exited but processes of its group {} are still running; sending them SIGTERM",
                    self.pgid
                );
                self.signal(SIGTERM);
                let deadline = Instant::now().checked_add(self.grace);
                while self.group_alive() && deadline.is_none_or(|d| Instant::now() < d) {
                    std::thread::sleep(Duration::from_millis(20));
                    self.reap_orphans();
                }
                if self.group_alive() {
                    log::warn!("killing what is left of process group {}", self.pgid);
                }
            }
            // Members that ignored SIGTERM, and orphans that left the group: no more grace.
            self.sweep();
            self.release_guard();
        }
        Ok(status)
    }

    /// SIGKILL the group and every orphan until none is left. A worker's children are re-parented to rd-chain
    /// only once the worker has died, so this repeats (bounded: SIGKILL cannot be ignored) until the group is
    /// empty and rd-chain has no child but the leader and the guard.
    fn sweep(&self) {
        let deadline = Instant::now().checked_add(Duration::from_secs(5));
        loop {
            self.reap_orphans();
            let group = self.group_alive();
            let orphans = self.orphans();
            if !group && orphans.is_empty() {
                return;
            }
            if group {
                self.signal(SIGKILL);
            }
            self.kill_orphans();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                log::warn!(
                    "processes of rdagent's group {} are still there after SIGKILL (stuck in the kernel?)",
                    self.pgid
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Children of rd-chain that it did not start itself: workers re-parented to it (Linux subreaper).
    fn orphans(&self) -> Vec<u32> {
        if !adopting() {
            return Vec::new();
        }
        #[cfg(target_os = "linux")]
        {
            sys::own_children()
                .into_iter()
                .filter(|&pid| {
                    pid != self.child.id() && self.guard.as_ref().is_none_or(|(g, _)| g.id() != pid)
                })
                .collect()
        }
        #[cfg(not(target_os = "linux"))]
        Vec::new()
    }

    fn release_guard(&mut self) {
        if let Some((mut guard, mut pipe)) = self.guard.take() {
            let _ = pipe.write_all(RELEASE);
            drop(pipe);
            let _ = guard.wait();
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.finished {
            if self.status.is_none() {
                self.kill();
            }
            let _ = self.finish();
        }
    }
}

/// How often the guard looks for new descendants of the leader while rd-chain lives.
const SCAN_EVERY: Duration = Duration::from_secs(1);

/// The guard: `rd-chain __guard PGID GRACE_MS`, stdin the pipe from rd-chain. Returns the exit code.
///
/// While it waits, the guard records every descendant of the leader (Linux: `Tree`, a `/proc` scan every
/// `SCAN_EVERY`), since a worker that moved to another group is found only through its parent, and once
/// rd-chain is dead the orphans are re-parented and that link is lost.
pub fn guard_main(args: &[std::ffi::OsString]) -> u8 {
    #[cfg(unix)]
    sys::ignore_stop_signals();
    let number = |i: usize| {
        args.get(i)
            .and_then(|a| a.to_str())
            .and_then(|t| t.parse::<u64>().ok())
    };
    let (Some(pgid), Some(grace_ms)) = (number(0), number(1)) else {
        eprintln!("rd-chain: {GUARD_ARG} is internal: it takes PGID GRACE_MS");
        return crate::exit::USAGE;
    };
    let Ok(pgid) = i32::try_from(pgid) else {
        return crate::exit::USAGE;
    };
    let mut tree = Tree::new(pgid);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = Vec::new();
        let _ = std::io::stdin().lock().read_to_end(&mut said);
        let _ = tx.send(said);
    });
    let said = loop {
        match rx.recv_timeout(SCAN_EVERY) {
            Ok(said) => break said,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tree.scan(),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break Vec::new(),
        }
    };
    if said == RELEASE {
        return crate::exit::OK;
    }
    // rd-chain is gone without releasing the group: end it and every descendant seen.
    #[cfg(unix)]
    {
        tree.scan();
        sys::kill_group(pgid, SIGTERM);
        tree.signal(SIGTERM);
        let deadline = Instant::now().checked_add(Duration::from_millis(grace_ms));
        let mut scanned = Instant::now();
        while (sys::group_exists(pgid) || tree.any_running())
            && deadline.is_none_or(|d| Instant::now() < d)
        {
            std::thread::sleep(Duration::from_millis(20));
            if scanned.elapsed() >= SCAN_EVERY {
                // Descendants started during the grace period get their SIGTERM too.
                scanned = Instant::now();
                tree.scan();
                tree.signal(SIGTERM);
            }
        }
        // SIGKILL until nothing is left: a process forked just before its parent was killed is found by the
        // next scan (bounded, SIGKILL cannot be ignored).
        let deadline = Instant::now().checked_add(Duration::from_secs(5));
        loop {
            sys::kill_group(pgid, SIGKILL);
            tree.scan();
            tree.signal(SIGKILL);
            if !sys::group_exists(pgid) && !tree.any_running()
                || deadline.is_some_and(|d| Instant::now() >= d)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    #[cfg(not(unix))]
    let _ = (pgid, grace_ms);
    crate::exit::OK
}

/// The descendants of a group's leader, each as (pid, start time) so that a pid reused by an unrelated
/// process is never signalled. Elsewhere than on Linux it is empty and the guard signals the group only.
struct Tree {
    #[cfg(target_os = "linux")]
    seen: std::collections::HashMap<u32, u64>,
}

impl Tree {
    fn new(leader: i32) -> Tree {
        #[cfg(target_os = "linux")]
        {
            let mut seen = std::collections::HashMap::new();
            if let Some(p) = u32::try_from(leader).ok().and_then(sys::stat) {
                seen.insert(p.pid, p.start);
            }
            Tree { seen }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = leader;
            Tree {}
        }
    }

    /// Read every process's parent from `/proc` and add the children of recorded processes (transitively);
    /// forget the recorded ones that are gone. Cost: one read of `/proc/PID/stat` per process on the machine.
    fn scan(&mut self) {
        #[cfg(target_os = "linux")]
        {
            let procs = sys::all_processes();
            adopt_descendants(&mut self.seen, &procs);
        }
    }

    /// Send `sig` to every recorded descendant that is still running.
    fn signal(&self, sig: i32) {
        #[cfg(target_os = "linux")]
        for pid in self.running() {
            sys::kill_pid(pid, sig);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = sig;
    }

    fn any_running(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.running().next().is_some()
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// The recorded descendants that are still the same process (same start time) and not zombies.
    #[cfg(target_os = "linux")]
    fn running(&self) -> impl Iterator<Item = u32> + '_ {
        self.seen.iter().filter_map(|(&pid, &start)| {
            sys::stat(pid)
                .is_some_and(|p| p.start == start && p.state != 'Z')
                .then_some(pid)
        })
    }
}

/// Given the processes now running, keep the recorded ones still there (same pid and start time) and add
/// every process whose parent is recorded, and theirs, in one pass over a parent -> children index: work
/// linear in the number of processes, whatever the order of `/proc` or the depth of the tree.
#[cfg(target_os = "linux")]
fn adopt_descendants(seen: &mut std::collections::HashMap<u32, u64>, procs: &[sys::Proc]) {
    use std::collections::HashMap;
    let mut children: HashMap<u32, Vec<&sys::Proc>> = HashMap::new();
    let mut now = HashMap::with_capacity(procs.len());
    for p in procs {
        crate::work::add(1);
        children.entry(p.ppid).or_default().push(p);
        now.insert(p.pid, p.start);
    }
    seen.retain(|pid, start| now.get(pid) == Some(start));
    let mut todo: Vec<u32> = seen.keys().copied().collect();
    while let Some(parent) = todo.pop() {
        crate::work::add(1);
        for child in children.get(&parent).into_iter().flatten() {
            crate::work::add(1);
            if let std::collections::hash_map::Entry::Vacant(e) = seen.entry(child.pid) {
                e.insert(child.start);
                todo.push(child.pid);
            }
        }
    }
}

#[cfg(unix)]
mod sys {
    use std::os::raw::c_int;

    extern "C" {
        fn kill(pid: c_int, sig: c_int) -> c_int;
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        #[cfg(target_os = "linux")]
        fn prctl(option: c_int, ...) -> c_int;
        #[cfg(target_os = "linux")]
        fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    }

    /// A handler that does nothing: the guard outlives what stops rd-chain (a read it interrupts is retried).
    extern "C" fn ignore(_: c_int) {}

    pub fn kill_group(pgid: i32, sig: i32) {
        if pgid > 1 {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
            unsafe {
                kill(-pgid, sig);
            }
        }
    }

    pub fn group_exists(pgid: i32) -> bool {
        // SAFETY: signal 0 only checks that the group has a member.
        pgid > 1 && unsafe { kill(-pgid, 0) } == 0
    }

    pub fn ignore_stop_signals() {
        for sig in [super::SIGINT, super::SIGTERM, crate::signals::SIGHUP] {
            // SAFETY: `ignore` touches nothing, which is async-signal-safe.
            unsafe {
                signal(sig, ignore);
            }
        }
    }

    #[cfg(target_os = "linux")]
    pub fn become_subreaper() -> bool {
        const PR_SET_CHILD_SUBREAPER: c_int = 36;
        // SAFETY: prctl with this option only sets a flag of the calling process.
        unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1 as std::os::raw::c_ulong) == 0 }
    }

    #[cfg(target_os = "linux")]
    pub fn kill_pid(pid: u32, sig: i32) {
        if let Ok(pid) = c_int::try_from(pid) {
            if pid > 1 {
                // SAFETY: kill(2) with a positive pid signals that one process.
                unsafe {
                    kill(pid, sig);
                }
            }
        }
    }

    /// Wait for `pid` (a child of rd-chain that std does not own) so no zombie is left.
    #[cfg(target_os = "linux")]
    pub fn reap(pid: u32) {
        if let Ok(pid) = c_int::try_from(pid) {
            let mut status: c_int = 0;
            // SAFETY: waitpid writes the status into our local; pid names one child, not std's.
            unsafe {
                waitpid(pid, &mut status, 0);
            }
        }
    }

    /// One line of `/proc/PID/stat`: state, parent and start time (clock ticks after boot, field 22).
    #[cfg(target_os = "linux")]
    pub struct Proc {
        pub pid: u32,
        pub state: char,
        pub ppid: u32,
        pub start: u64,
    }

    #[cfg(target_os = "linux")]
    pub fn stat(pid: u32) -> Option<Proc> {
        use std::io::Read;
        // Read through `Take` so std does not stat the file for a size hint first: the guard reads every
        // process's stat each second, and this keeps it to open, read, read (end of file), close.
        let file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
        let mut bytes = Vec::with_capacity(1024);
        file.take(u64::MAX).read_to_end(&mut bytes).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        // The command name is in parentheses and may contain anything: read after the last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        // Fields 5 to 21 lie between the parent and the start time.
        let start = fields.nth(17)?.parse().ok()?;
        Some(Proc {
            pid,
            state,
            ppid,
            start,
        })
    }

    #[cfg(target_os = "linux")]
    pub fn is_zombie(pid: u32) -> bool {
        stat(pid).is_some_and(|p| p.state == 'Z')
    }

    /// Every process on the machine (those that end while `/proc` is read are left out).
    #[cfg(target_os = "linux")]
    pub fn all_processes() -> Vec<Proc> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(stat)
            .collect()
    }

    /// Every process whose parent is rd-chain.
    #[cfg(target_os = "linux")]
    pub fn own_children() -> Vec<u32> {
        let me = std::process::id();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| stat(pid).is_some_and(|p| p.ppid == me))
            .collect()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_state_and_parent_even_with_parentheses_in_the_name() {
        let mut child = Command::new("sh")
            .args(["-c", "exec sleep 30"])
            .spawn()
            .unwrap();
        let kids = sys::own_children();
        assert!(kids.contains(&child.id()), "{kids:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn proc(pid: u32, ppid: u32, start: u64) -> sys::Proc {
        sys::Proc {
            pid,
            state: 'S',
            ppid,
            start,
        }
    }

    #[test]
    fn descendants_are_found_through_any_depth_and_a_reused_pid_is_not_one() {
        let mut seen = std::collections::HashMap::from([(100, 5)]);
        let procs = [
            proc(1, 0, 0),
            // A grandchild listed before its parent, and an unrelated process.
            proc(300, 200, 7),
            proc(200, 100, 6),
            proc(100, 1, 5),
            proc(400, 1, 8),
        ];
        adopt_descendants(&mut seen, &procs);
        let mut pids: Vec<_> = seen.keys().copied().collect();
        pids.sort_unstable();
        assert_eq!(pids, [100, 200, 300]);
        // 200 has ended and its pid now names another process (another start time), with a child of its own:
        // neither is a descendant; 300 (re-parented to init) still is.
        let procs = [
            proc(1, 0, 0),
            proc(100, 1, 5),
            proc(200, 1, 50),
            proc(500, 200, 51),
            proc(300, 1, 7),
        ];
        adopt_descendants(&mut seen, &procs);
        let mut pids: Vec<_> = seen.into_iter().collect();
        pids.sort_unstable();
        assert_eq!(pids, [(100, 5), (300, 7)]);
    }

    #[test]
    fn finding_descendants_is_linear_in_the_number_of_processes() {
        // A chain 0 <- 1 <- 2 ... listed deepest first: a fixed-point search would take n^2 steps.
        let count = |n: u32| {
            let procs: Vec<_> = (1..=n)
                .rev()
                .map(|p| proc(p, p - 1, u64::from(p)))
                .collect();
            let mut seen = std::collections::HashMap::from([(1, 1)]);
            crate::work::take();
            adopt_descendants(&mut seen, &procs);
            assert_eq!(seen.len(), n as usize);
            crate::work::take()
        };
        let (small, large) = (count(1_000), count(10_000));
        assert!(small >= 1_000, "{small}");
        assert!(
            large <= small * 11,
            "1000 -> {small} steps, 10000 -> {large}"
        );
    }

    #[test]
    fn a_scan_records_a_grandchild_with_its_start_time() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let mut tree = Tree::new(i32::try_from(child.id()).unwrap());
        tree.scan();
        let start = sys::stat(grandchild).unwrap().start;
        assert_eq!(tree.seen.get(&grandchild), Some(&start), "{:?}", tree.seen);
        assert!(tree.seen.contains_key(&child.id()));
        assert!(!tree.seen.contains_key(&std::process::id()));
        assert!(tree.any_running());
        tree.signal(SIGKILL);
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sys::stat(grandchild).is_some_and(|p| p.start == start && p.state != 'Z') {
            assert!(Instant::now() < deadline, "the grandchild survived SIGKILL");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
