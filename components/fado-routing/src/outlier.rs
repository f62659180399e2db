//! Passive outlier detection, in the manner of Envoy's
//! `consecutive_5xx`: a deployment that fails `consecutive_failures`
//! requests in a row (connection failures and 5xx answers) is ejected for
//! `base_ejection_ms` times the number of times it was ejected, capped at
//! `max_ejection_ms`; after that it gets traffic again. A deployment that
//! stays out of trouble for `max_ejection_ms` after an ejection starts over
//! from the base period.

/// Thresholds (the router's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub consecutive_failures: u32,
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            consecutive_failures: 5,
            base_ejection_ms: 5_000,
            max_ejection_ms: 60_000,
        }
    }
}

/// One deployment's record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// Failures since the last success (or ejection).
    pub consecutive: u32,
    /// Ejections in the current streak (decides the next period's length).
    pub ejections: u32,
    /// Ejected until this time (ms since the epoch); 0 when never ejected.
    pub ejected_until_ms: u64,
}

impl State {
    pub fn available(&self, now_ms: u64) -> bool {
        now_ms >= self.ejected_until_ms
    }
}

/// What a recorded outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    None,
    /// The deployment was ejected until this time.
    Ejected {
        until_ms: u64,
    },
}

/// The record after one request's outcome. Outcomes that arrive while the
/// deployment is ejected (requests sent before) change nothing.
pub fn record(state: State, failed: bool, now_ms: u64, cfg: &Config) -> (State, Event) {
    if !state.available(now_ms) {
        return (state, Event::None);
    }
    let mut s = state;
    // A clean stretch after the last ejection ended resets the streak.
    if s.ejections > 0 && now_ms >= s.ejected_until_ms.saturating_add(cfg.max_ejection_ms) {
        s.ejections = 0;
    }
    if !failed {
        s.consecutive = 0;
        return (s, Event::None);
    }
    s.consecutive += 1;
    if s.consecutive < cfg.consecutive_failures.max(1) {
        return (s, Event::None);
    }
    s.consecutive = 0;
    s.ejections += 1;
    let period = cfg
        .base_ejection_ms
        .saturating_mul(u64::from(s.ejections))
        .min(cfg.max_ejection_ms);
    s.ejected_until_ms = now_ms.saturating_add(period);
    (
        s,
        Event::Ejected {
            until_ms: s.ejected_until_ms,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CFG: Config = Config {
        consecutive_failures: 3,
        base_ejection_ms: 1_000,
        max_ejection_ms: 2_500,
    };

    fn fail_n(mut s: State, n: u32, now: u64) -> (State, Event) {
        let mut ev = Event::None;
        for _ in 0..n {
            (s, ev) = record(s, true, now, &CFG);
        }
        (s, ev)
    }

    #[test]
    fn consecutive_failures_eject_for_growing_periods() {
        let (s, ev) = fail_n(State::default(), 2, 0);
        assert_eq!(ev, Event::None);
        assert!(s.available(0));
        let (s, ev) = record(s, true, 0, &CFG);
        assert_eq!(ev, Event::Ejected { until_ms: 1_000 });
        assert!(!s.available(999) && s.available(1_000));
        // Back, fails again: twice as long; then capped.
        let (s, ev) = fail_n(s, 3, 1_000);
        assert_eq!(ev, Event::Ejected { until_ms: 3_000 });
        let (s, ev) = fail_n(s, 3, 3_000);
        assert_eq!(ev, Event::Ejected { until_ms: 5_500 });
        // Outcomes while ejected do not count.
        let (s2, ev) = fail_n(s, 10, 4_000);
        assert_eq!((s2, ev), (s, Event::None));
        // A clean stretch of max_ejection_ms resets the streak.
        let (s, _) = record(s, false, 5_500 + 2_500, &CFG);
        assert_eq!(s.ejections, 0);
        let (_, ev) = fail_n(s, 3, 9_000);
        assert_eq!(ev, Event::Ejected { until_ms: 10_000 });
    }

    #[test]
    fn a_success_resets_the_count() {
        let (s, _) = fail_n(State::default(), 2, 0);
        let (s, _) = record(s, false, 0, &CFG);
        let (_, ev) = fail_n(s, 2, 0);
        assert_eq!(ev, Event::None);
    }

    proptest! {
        /// Never ejected without `consecutive_failures` failures in a row,
        /// and never for longer than the cap.
        #[test]
        fn ejections_need_a_streak_and_respect_the_cap(
            outcomes in prop::collection::vec((any::<bool>(), 0u64..2_000), 1..200)
        ) {
            let (mut s, mut now, mut streak) = (State::default(), 0u64, 0u32);
            for (failed, dt) in outcomes {
                now += dt;
                let was_available = s.available(now);
                let (next, ev) = record(s, failed, now, &CFG);
                if was_available {
                    streak = if failed { streak + 1 } else { 0 };
                }
                if let Event::Ejected { until_ms } = ev {
                    prop_assert!(streak >= CFG.consecutive_failures);
                    prop_assert!(until_ms - now <= CFG.max_ejection_ms);
                    streak = 0;
                }
                s = next;
            }
        }
    }
}
