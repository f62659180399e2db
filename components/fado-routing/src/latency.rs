//! Peak-EWMA of response times, as `least_latency` weighs deployments
//! (the estimator of Finagle and linkerd): a slower answer than the
//! estimate replaces it at once, a faster one pulls it down exponentially
//! with the time since the last sample, so a deployment that turns slow is
//! avoided immediately and one that recovers wins traffic back over about
//! [`DECAY_MS`].

/// Time constant of the decay, in milliseconds.
pub const DECAY_MS: f64 = 10_000.0;

/// The estimate and when it was last updated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakEwma {
    pub latency_us: f64,
    pub at_ms: u64,
}

/// The estimate after observing `rtt_us` at `now_ms`.
pub fn observe(prev: Option<PeakEwma>, rtt_us: f64, now_ms: u64) -> PeakEwma {
    let rtt_us = rtt_us.max(0.0);
    let latency_us = match prev {
        None => rtt_us,
        Some(p) if rtt_us > p.latency_us => rtt_us,
        Some(p) => {
            let dt = now_ms.saturating_sub(p.at_ms) as f64;
            let w = (-dt / DECAY_MS).exp();
            p.latency_us * w + rtt_us * (1.0 - w)
        }
    };
    PeakEwma {
        latency_us,
        at_ms: now_ms.max(prev.map_or(0, |p| p.at_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn peaks_jump_and_decay() {
        let e = observe(None, 1_000.0, 0);
        assert_eq!(e.latency_us, 1_000.0);
        let e = observe(Some(e), 50_000.0, 10);
        assert_eq!(e.latency_us, 50_000.0, "a slower answer takes over at once");
        // One time constant later, a fast answer pulls it ~63% of the way.
        let e2 = observe(Some(e), 1_000.0, 10 + DECAY_MS as u64);
        let expected = 50_000.0 * (-1.0f64).exp() + 1_000.0 * (1.0 - (-1.0f64).exp());
        assert!((e2.latency_us - expected).abs() < 1e-6);
        // A fast answer right after barely moves it.
        let e3 = observe(Some(e), 1_000.0, 11);
        assert!(e3.latency_us > 49_000.0);
    }

    proptest! {
        /// The estimate stays between the smallest and largest sample seen.
        #[test]
        fn stays_within_the_samples(samples in prop::collection::vec((0.0f64..1e7, 0u64..100_000), 1..30)) {
            let mut e = None;
            let mut now = 0;
            let (mut lo, mut hi) = (f64::MAX, 0.0f64);
            for (rtt, dt) in samples {
                now += dt;
                e = Some(observe(e, rtt, now));
                lo = lo.min(rtt);
                hi = hi.max(rtt);
                let v = e.unwrap().latency_us;
                prop_assert!(v >= lo - 1e-6 && v <= hi + 1e-6, "{v} not in [{lo}, {hi}]");
            }
        }
    }
}
