//! Online deadline control (FYE-SR's latency target, run time): which point of
//! the schedule's quality/latency front runs, from measured per-frame times.
//! Pure policy, no GStreamer types, so it can be tested on its own.
//!
//! The front's points are ordered by profiled time (and so by quality). The
//! profile was measured at one size on an idle host; the stream's size, the
//! colour conversion and the host's load change every point's time by about
//! the same factor, so the controller learns one factor, `ratio` = measured /
//! predicted of the running point (smoothed), and estimates every point as
//! `predicted × ratio`.
//! - After `down_after` consecutive frames over the target, jump to the best
//!   point whose estimate fits (the fastest when none does): one decision, not
//!   a walk, because the estimate already says where the deadline is met.
//! - After `up_after` consecutive frames in which the next better point's
//!   estimate fits within `headroom` × target, step up to the best point whose
//!   estimate fits there: on a dense front (calibrate --pareto writes dozens
//!   of points a few ms apart) one point per `up_after` frames would take
//!   minutes to climb back, while the estimate already says how far is safe.
//! - The first frame on a point (after a switch, or the first one observed)
//!   is not evidence: a point's codec starts its runtime and touches its
//!   memory then (measured: +20–37 % on IMDN_RTC_x2 at 960×540).
//! - The band between `headroom` × target and the target is the hysteresis that
//!   keeps a fixed load from oscillating; a point stepped up into and left again
//!   within `up_after` frames doubles the frames needed to step up into it
//!   again (up to ×16), as the mode ladder does.
//! - A point is never above `ceiling` (the schedule's own plan for a given
//!   target, or the front's best).

/// Largest multiplier on `up_after`.
const MAX_BACKOFF: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeadlineConfig {
    /// Consecutive frames over the target before moving down.
    pub down_after: u32,
    /// Consecutive frames with room before stepping up.
    pub up_after: u32,
    /// Fraction of the target a better point's estimate must fit in to step up.
    pub headroom: f64,
    /// Smoothing of the measured/predicted ratio (weight of the newest frame).
    pub alpha: f64,
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        DeadlineConfig {
            down_after: 3,
            up_after: 10,
            headroom: 0.9,
            alpha: 0.25,
        }
    }
}

/// A change of front point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointSwitch {
    pub from: usize,
    pub to: usize,
}

#[derive(Clone, Debug)]
pub struct Deadline {
    cfg: DeadlineConfig,
    predicted: Vec<f64>,
    ceiling: usize,
    current: usize,
    ratio: Option<f64>,
    over: u32,
    room: u32,
    /// Frames since the last step up, and into which point.
    last_up: Option<(usize, u32)>,
    backoff: Vec<u32>,
    /// Frames still to ignore (start-up of the point just switched to).
    skip: u32,
}

impl Deadline {
    /// `predicted`: the front's profiled ms per point, increasing; starts at
    /// `start` (≤ `ceiling`).
    pub fn new(predicted: Vec<f64>, start: usize, ceiling: usize, cfg: DeadlineConfig) -> Deadline {
        let n = predicted.len().max(1);
        let ceiling = ceiling.min(n - 1);
        Deadline {
            cfg,
            backoff: vec![1; n],
            predicted,
            ceiling,
            current: start.min(ceiling),
            ratio: None,
            over: 0,
            room: 0,
            last_up: None,
            skip: 1,
        }
    }

    pub fn current(&self) -> usize {
        self.current
    }

    /// Estimated ms of point `k` under the current conditions.
    pub fn estimate(&self, k: usize) -> Option<f64> {
        Some(self.predicted.get(k)? * self.ratio?)
    }

    /// One frame of the running point took `ms`; the deadline is `target_ms`.
    pub fn observe(&mut self, ms: f64, target_ms: f64) -> Option<PointSwitch> {
        let p = *self.predicted.get(self.current)?;
        if !(ms.is_finite() && ms >= 0.0 && target_ms > 0.0 && p > 0.0) {
            return None;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        let r = ms / p;
        let a = self.cfg.alpha;
        self.ratio = Some(self.ratio.map_or(r, |x| (1.0 - a) * x + a * r));
        if let Some((_, age)) = &mut self.last_up {
            *age = age.saturating_add(1);
        }
        let est_now = self.estimate(self.current)?;
        if est_now > target_ms && ms > target_ms {
            self.over += 1;
            self.room = 0;
        } else {
            self.over = 0;
        }
        if self.over >= self.cfg.down_after {
            // The best point that fits, or the fastest.
            let to = (0..self.current)
                .rev()
                .find(|&k| self.estimate(k).is_some_and(|e| e <= target_ms))
                .unwrap_or(0);
            if to == self.current {
                self.over = 0;
                return None;
            }
            if let Some((k, age)) = self.last_up
                && k == self.current
                && age <= self.cfg.up_after
            {
                self.backoff[k] = (self.backoff[k] * 2).min(MAX_BACKOFF);
            }
            return Some(self.switch(to));
        }
        let up = self.current + 1;
        if up <= self.ceiling
            && self
                .estimate(up)
                .is_some_and(|e| e <= self.cfg.headroom * target_ms)
        {
            self.room += 1;
            if self.room >= self.cfg.up_after.saturating_mul(self.backoff[up]) {
                // The best point that fits with headroom and has no pending
                // backoff above the next one.
                let fits = |k: usize| {
                    self.estimate(k)
                        .is_some_and(|e| e <= self.cfg.headroom * target_ms)
                };
                let mut to = up;
                while to < self.ceiling && fits(to + 1) && self.backoff[to + 1] == 1 {
                    to += 1;
                }
                let s = self.switch(to);
                self.last_up = Some((to, 0));
                return Some(s);
            }
        } else {
            self.room = 0;
        }
        None
    }

    fn switch(&mut self, to: usize) -> PointSwitch {
        let s = PointSwitch {
            from: self.current,
            to,
        };
        self.current = to;
        self.over = 0;
        self.room = 0;
        self.skip = 1;
        // The ratio carries over: it describes the host and the stream, not the
        // point.
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A front of 8 points from 20 to 34 ms predicted; the true times differ
    /// from the prediction by up to ±8 % per point (the profile's accuracy).
    fn front() -> (Vec<f64>, Vec<f64>) {
        let pred: Vec<f64> = (0..8).map(|k| 20.0 + 2.0 * k as f64).collect();
        let err = [0.03, -0.05, 0.08, -0.02, 0.06, -0.08, 0.01, 0.04];
        let truth = pred.iter().zip(err).map(|(p, e)| p * (1.0 + e)).collect();
        (pred, truth)
    }

    /// Runs `frames` frames at `load` × the true time, with deterministic
    /// ±3 % jitter; returns the switches.
    fn run(
        d: &mut Deadline,
        truth: &[f64],
        load: f64,
        target: f64,
        frames: usize,
    ) -> Vec<PointSwitch> {
        let mut out = Vec::new();
        for f in 0..frames {
            let jitter = 1.0 + 0.03 * ((f * 7919 % 13) as f64 / 6.0 - 1.0);
            let ms = truth[d.current()] * load * jitter;
            out.extend(d.observe(ms, target));
        }
        out
    }

    #[test]
    fn settles_under_a_fixed_load_and_after_an_injected_slowdown() {
        let (pred, truth) = front();
        let mut d = Deadline::new(pred.clone(), 7, 7, DeadlineConfig::default());
        let target = 27.0;
        run(&mut d, &truth, 1.0, target, 300);
        // Settled: no switch in the next 500 frames, and the point meets the
        // deadline with its true time.
        let late = run(&mut d, &truth, 1.0, target, 500);
        assert!(late.is_empty(), "oscillates: {late:?}");
        let k = d.current();
        assert!(truth[k] * 1.03 <= target, "point {k} misses the target");
        assert!(k >= 2, "settled needlessly low at {k}");

        // Injected slowdown: everything 30 % slower.
        let sw = run(&mut d, &truth, 1.3, target, 300);
        assert!(
            !sw.is_empty() && d.current() < k,
            "did not move down: {sw:?}"
        );
        let late = run(&mut d, &truth, 1.3, target, 500);
        assert!(late.is_empty(), "oscillates after the slowdown: {late:?}");
        let k2 = d.current();
        assert!(truth[k2] * 1.3 * 1.03 <= target || k2 == 0);

        // Load gone: it climbs back up, never to a point that misses the
        // target, and settles again.
        let up = run(&mut d, &truth, 1.0, target, 600);
        assert!(up.iter().any(|s| s.to > s.from), "did not climb: {up:?}");
        assert!(d.current() > k2);
        assert!(truth[d.current()] * 1.03 <= target);
        assert!(run(&mut d, &truth, 1.0, target, 500).is_empty());
    }

    #[test]
    fn climbs_a_dense_front_in_one_jump_and_ignores_start_up_frames() {
        // 30 points, 1 ms apart; the true times equal the prediction.
        let pred: Vec<f64> = (0..30).map(|k| 100.0 + k as f64).collect();
        let mut d = Deadline::new(pred.clone(), 0, 29, DeadlineConfig::default());
        // A slow first frame (start-up) does not count.
        assert!(d.observe(500.0, 125.0).is_none());
        let sw = run(&mut d, &pred, 1.0, 125.0, 40);
        // One jump to the best point within 90 % of the target (112 ms).
        assert!(
            sw.len() == 1 && sw[0].from == 0 && (11..=13).contains(&sw[0].to),
            "{sw:?}"
        );
        // A slow first frame on the new point does not send it back.
        assert!(d.observe(500.0, 125.0).is_none());
        assert!(run(&mut d, &pred, 1.0, 125.0, 200).is_empty());
    }

    #[test]
    fn below_the_front_it_holds_the_fastest_point() {
        let (pred, truth) = front();
        let mut d = Deadline::new(pred, 5, 7, DeadlineConfig::default());
        run(&mut d, &truth, 1.0, 10.0, 100);
        assert_eq!(d.current(), 0);
        assert!(run(&mut d, &truth, 1.0, 10.0, 100).is_empty());
    }

    #[test]
    fn never_above_the_ceiling() {
        let (pred, truth) = front();
        let mut d = Deadline::new(pred, 0, 3, DeadlineConfig::default());
        run(&mut d, &truth, 1.0, 1000.0, 500);
        assert_eq!(d.current(), 3);
    }

    #[test]
    fn ignores_nonsense_times() {
        let (pred, _) = front();
        let mut d = Deadline::new(pred, 4, 7, DeadlineConfig::default());
        for ms in [f64::NAN, -1.0, f64::INFINITY] {
            assert!(d.observe(ms, 20.0).is_none());
        }
        assert_eq!(d.current(), 4);
    }
}
