//! Watchers that the waiting loop ticks (about every 20 ms) while a phase runs. None of them looks at the
//! session dir itself: the phase's progress watcher (`crate::progress`, one thread per phase, stat-only) is
//! the one owner of that, and `PhaseStall` reads its last-snapshot time to notice a phase that has written no
//! new snapshot for `--stall-after`.

use std::time::{Duration, Instant};

use crate::plan::PhaseKind;
use crate::progress::PhaseWatch;

/// What a watcher asks of the waiting loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchAction {
    /// Keep waiting.
    Continue,
    /// Terminate the phase (SIGTERM, then SIGKILL after the grace period); it will be resumed.
    Restart,
}

/// Something the waiting loop ticks while a phase runs.
pub trait PhaseWatcher {
    fn tick(&mut self, now: Instant) -> WatchAction;
}

/// How often `PhaseStall` reads the progress watcher's status (a lock, no file-system work).
const STALL_CHECK: Duration = Duration::from_secs(1);

/// A stall found: how long no new snapshot was seen, and what the watch asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stalled {
    pub idle: Duration,
    pub action: WatchAction,
}

/// Decides, from when a new snapshot was last seen, whether a phase is stalled: once, after `after` without
/// a new snapshot; with `restart`, it then asks for a restart.
#[derive(Debug)]
pub struct StallWatch {
    after: Duration,
    restart: bool,
    phase: PhaseKind,
    started: Instant,
    /// Set once the phase was found stalled.
    pub stalled: bool,
}

impl StallWatch {
    pub fn new(phase: PhaseKind, after: Duration, restart: bool, now: Instant) -> StallWatch {
        StallWatch {
            after,
            restart,
            phase,
            started: now,
            stalled: false,
        }
    }

    /// `last_snapshot`: when a new snapshot was last seen (the phase's start until one is). Returns the stall
    /// the first time there is one (and warns), `None` otherwise.
    pub fn observe(&mut self, now: Instant, last_snapshot: Instant) -> Option<Stalled> {
        if self.stalled {
            return None;
        }
        let idle = now.saturating_duration_since(last_snapshot.max(self.started));
        if idle < self.after {
            return None;
        }
        self.stalled = true;
        let action = if self.restart {
            log::warn!(
                "the {} phase has written no snapshot for {}s (--stall-after); terminating it to resume it \
                 (--on-stall restart)",
                self.phase.name(),
                idle.as_secs()
            );
            WatchAction::Restart
        } else {
            log::warn!(
                "the {} phase has written no snapshot for {}s (--stall-after): it may be stalled (an LLM call \
                 or a backtest that hangs); rd-chain keeps waiting (--on-stall restart with a retry left would resume it)",
                self.phase.name(),
                idle.as_secs()
            );
            WatchAction::Continue
        };
        Some(Stalled { idle, action })
    }
}

/// The stall watch of a running phase, fed by its progress watcher; emits the `stall` event.
pub struct PhaseStall<'a> {
    watch: &'a PhaseWatch,
    stall: StallWatch,
    next_check: Instant,
}

impl<'a> PhaseStall<'a> {
    pub fn new(watch: &'a PhaseWatch, stall: StallWatch) -> PhaseStall<'a> {
        let next_check = stall.started;
        PhaseStall {
            watch,
            stall,
            next_check,
        }
    }

    /// Whether the phase was found stalled.
    pub fn stalled(&self) -> bool {
        self.stall.stalled
    }
}

impl PhaseWatcher for PhaseStall<'_> {
    fn tick(&mut self, now: Instant) -> WatchAction {
        if self.stall.stalled || now < self.next_check {
            return WatchAction::Continue;
        }
        self.next_check = now + STALL_CHECK.min(self.stall.after.max(Duration::from_millis(100)));
        let Some(status) = self.watch.status() else {
            return WatchAction::Continue;
        };
        match self.stall.observe(now, status.last_snapshot) {
            Some(found) => {
                let action = match found.action {
                    WatchAction::Restart => "restart",
                    WatchAction::Continue => "warn",
                };
                self.watch
                    .events()
                    .stall(self.stall.phase, found.idle, action);
                found.action
            }
            None => WatchAction::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_reported_once_and_a_new_snapshot_resets_the_timer() {
        let t0 = Instant::now();
        let after = Duration::from_secs(10);
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut w = StallWatch::new(PhaseKind::Factor, after, true, t0);
        let act = |r: Option<Stalled>| r.map(|s| s.action);
        assert_eq!(act(w.observe(s(5), t0)), None);
        // A new snapshot seen at 9: the timer starts again from there.
        assert_eq!(act(w.observe(s(9), s(9))), None);
        assert_eq!(act(w.observe(s(15), s(9))), None);
        assert!(!w.stalled);
        let found = w.observe(s(20), s(9)).unwrap();
        assert_eq!(found.action, WatchAction::Restart);
        assert_eq!(found.idle, Duration::from_secs(11));
        assert!(w.stalled);
        // Reported once.
        assert_eq!(act(w.observe(s(40), s(9))), None);
    }

    #[test]
    fn without_restart_a_stall_only_warns() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(PhaseKind::Model, Duration::from_secs(3), false, t0);
        // Before the phase started nothing counts: idle is measured from the start at the earliest.
        let found = w
            .observe(
                t0 + Duration::from_secs(3),
                t0.checked_sub(Duration::from_secs(100)).unwrap_or(t0),
            )
            .unwrap();
        assert_eq!(found.action, WatchAction::Continue);
        assert_eq!(found.idle, Duration::from_secs(3));
    }
}
