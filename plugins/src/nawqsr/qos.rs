//! The precision ladder: which codec mode to run given the QoS feedback of the
//! sinks. Pure policy, no GStreamer types, so it can be tested on its own.
//!
//! QoS events carry a *proportion*: the sink's long-term estimate of processing
//! rate relative to real time (> 1: data arrives late, < 1: there is headroom).
//! - After `down_after` consecutive events with proportion > `late_above`, step one
//!   rung faster (fp32 → a16w8 → hybrid → int8 → bicubic).
//! - After `up_after` consecutive events with proportion < `headroom_below`, step one
//!   rung back up, never above the user's mode (the ceiling).
//! - Modes the codec cannot build (`mark_unavailable`) are skipped.
//! - Every switch restarts both streaks, because the sink's proportion still
//!   reflects the old mode for a while.
//! - A step up into a mode that is undone (a step down) within `up_after` events
//!   doubles the headroom needed to step up into *that mode* again (up to ×16), so
//!   that a mode that is just too slow is retried exponentially less often while
//!   the faster rungs below it stay reachable. A mode that holds for
//!   `4 × up_after` events after a step up into it is forgiven (×1 again).
//! - The element reports each frame's processing time as a fraction of the frame
//!   interval (`record_cost`). A mode measured slower than real time (> 1) is only
//!   retried after the longest wait (×16): QoS proportions cannot predict what a
//!   mode never run recently costs, but a measurement can.
use nawqsr_codec::runtime::Mode;

/// Ladder rungs from slowest/most accurate to fastest.
pub const RUNGS: [Mode; 5] = [
    Mode::Fp32,
    Mode::A16w8,
    Mode::Hybrid,
    Mode::Int8,
    Mode::Bicubic,
];

/// Largest multiplier on `up_after`.
const MAX_BACKOFF: u32 = 16;

fn rung(mode: Mode) -> usize {
    RUNGS
        .iter()
        .position(|&m| m == mode)
        .expect("every mode is on the ladder")
}

/// Thresholds of the policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LadderConfig {
    /// Proportion above which an event counts as late.
    pub late_above: f64,
    /// Proportion below which an event counts as headroom.
    pub headroom_below: f64,
    /// Consecutive late events before stepping down.
    pub down_after: u32,
    /// Consecutive headroom events before stepping up.
    pub up_after: u32,
}

impl Default for LadderConfig {
    fn default() -> Self {
        LadderConfig {
            late_above: 1.0,
            headroom_below: 0.8,
            down_after: 3,
            up_after: 10,
        }
    }
}

/// A change of mode decided by the ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    pub from: Mode,
    pub to: Mode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Down,
    Up,
}

#[derive(Clone, Debug)]
pub struct Ladder {
    cfg: LadderConfig,
    ceiling: usize,
    current: usize,
    available: [bool; 5],
    late: u32,
    headroom: u32,
    /// The last switch: where it came from, its direction, and how many events ago.
    last: Option<(usize, Dir, u32)>,
    /// Per rung: multiplier on `up_after` for stepping up into it (1, 2, 4, … 16).
    up_backoff: [u32; 5],
    /// Per rung: smoothed processing time / frame interval, once measured.
    cost: [Option<f64>; 5],
}

impl Ladder {
    pub fn new(ceiling: Mode, cfg: LadderConfig) -> Ladder {
        let c = rung(ceiling);
        Ladder {
            cfg,
            ceiling: c,
            current: c,
            available: [true; 5],
            late: 0,
            headroom: 0,
            last: None,
            up_backoff: [1; 5],
            cost: [None; 5],
        }
    }

    /// The mode the element should run now.
    pub fn current(&self) -> Mode {
        RUNGS[self.current]
    }

    pub fn ceiling(&self) -> Mode {
        RUNGS[self.ceiling]
    }

    /// Forget the streaks (after a flush or a seek the old feedback is stale).
    pub fn reset_streaks(&mut self) {
        self.late = 0;
        self.headroom = 0;
    }

    /// Feed one QoS proportion; returns the switch to perform, if any.
    pub fn observe(&mut self, proportion: f64) -> Option<Switch> {
        if !proportion.is_finite() || proportion < 0.0 {
            return None;
        }
        if let Some((_, dir, age)) = &mut self.last {
            *age = age.saturating_add(1);
            if *dir == Dir::Up && *age == self.cfg.up_after.saturating_mul(4) {
                self.up_backoff[self.current] = 1;
            }
        }
        if proportion > self.cfg.late_above {
            self.late += 1;
            self.headroom = 0;
        } else if proportion < self.cfg.headroom_below {
            self.headroom += 1;
            self.late = 0;
        } else {
            self.reset_streaks();
        }
        if self.late >= self.cfg.down_after {
            return self.step(Dir::Down);
        }
        if let Some(up) = self.next(self.current, Dir::Up)
            && self.headroom >= self.up_threshold(up)
        {
            return self.step(Dir::Up);
        }
        None
    }

    /// The codec could not build `mode`: never pick it again. If it is the current
    /// mode, redo the last step skipping it, or go back where that step came from.
    pub fn mark_unavailable(&mut self, mode: Mode) -> Option<Switch> {
        let r = rung(mode);
        self.available[r] = false;
        if r != self.current {
            return None;
        }
        let (from, dir) = match self.last {
            Some((from, dir, _)) => (from, dir),
            // The starting mode itself is unavailable: only faster modes remain.
            None => (self.current, Dir::Down),
        };
        let to = self
            .next(from, dir)
            .or_else(|| self.available[from].then_some(from))?;
        let switch = Switch {
            from: RUNGS[self.current],
            to: RUNGS[to],
        };
        self.current = to;
        Some(switch)
    }

    /// One frame of `mode` took `fraction` of the frame interval (exponential
    /// moving average, weight 1/4).
    pub fn record_cost(&mut self, mode: Mode, fraction: f64) {
        if !fraction.is_finite() || fraction < 0.0 {
            return;
        }
        let c = &mut self.cost[rung(mode)];
        *c = Some(c.map_or(fraction, |c| 0.75 * c + 0.25 * fraction));
    }

    /// Consecutive headroom events needed to step up into rung `to`.
    fn up_threshold(&self, to: usize) -> u32 {
        let too_slow = self.cost[to].is_some_and(|c| c > 1.0);
        let b = if too_slow {
            MAX_BACKOFF
        } else {
            self.up_backoff[to]
        };
        self.cfg.up_after.saturating_mul(b)
    }

    fn next(&self, from: usize, dir: Dir) -> Option<usize> {
        match dir {
            Dir::Down => (from + 1..RUNGS.len()).find(|&r| self.available[r]),
            Dir::Up => (self.ceiling..from).rev().find(|&r| self.available[r]),
        }
    }

    fn step(&mut self, dir: Dir) -> Option<Switch> {
        self.reset_streaks();
        let to = self.next(self.current, dir)?;
        // Undoing a recent step up: the current mode is too slow for now.
        if let (Dir::Down, Some((_, Dir::Up, age))) = (dir, self.last)
            && age <= self.cfg.up_after
        {
            let b = &mut self.up_backoff[self.current];
            *b = (*b * 2).min(MAX_BACKOFF);
        }
        let switch = Switch {
            from: RUNGS[self.current],
            to: RUNGS[to],
        };
        self.last = Some((self.current, dir, 0));
        self.current = to;
        Some(switch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(l: &mut Ladder, p: f64, n: u32) -> Vec<Switch> {
        (0..n).filter_map(|_| l.observe(p)).collect()
    }

    #[test]
    fn steps_down_after_sustained_lateness_only() {
        let mut l = Ladder::new(Mode::Fp32, LadderConfig::default());
        // Two late events, then one on time: the streak restarts.
        assert!(feed(&mut l, 1.5, 2).is_empty());
        assert!(feed(&mut l, 0.9, 1).is_empty());
        assert!(feed(&mut l, 1.5, 2).is_empty());
        assert_eq!(
            feed(&mut l, 1.5, 1),
            [Switch {
                from: Mode::Fp32,
                to: Mode::A16w8
            }]
        );
        assert_eq!(l.current(), Mode::A16w8);
    }

    #[test]
    fn walks_the_whole_ladder_and_stops_at_bicubic() {
        let mut l = Ladder::new(Mode::Fp32, LadderConfig::default());
        let tos: Vec<Mode> = feed(&mut l, 2.0, 30).into_iter().map(|s| s.to).collect();
        assert_eq!(tos, [Mode::A16w8, Mode::Hybrid, Mode::Int8, Mode::Bicubic]);
        assert_eq!(l.current(), Mode::Bicubic);
    }

    #[test]
    fn steps_up_after_sustained_headroom_never_above_ceiling() {
        let mut l = Ladder::new(Mode::Hybrid, LadderConfig::default());
        feed(&mut l, 2.0, 6);
        assert_eq!(l.current(), Mode::Bicubic);
        // 0.85 is neither late nor headroom: nothing happens.
        assert!(feed(&mut l, 0.85, 50).is_empty());
        let ups = feed(&mut l, 0.5, 100);
        assert_eq!(
            ups,
            [
                Switch {
                    from: Mode::Bicubic,
                    to: Mode::Int8
                },
                Switch {
                    from: Mode::Int8,
                    to: Mode::Hybrid
                }
            ]
        );
        assert_eq!(l.current(), Mode::Hybrid);
        assert_eq!(l.ceiling(), Mode::Hybrid);
    }

    #[test]
    fn unavailable_modes_are_skipped() {
        let mut l = Ladder::new(Mode::Fp32, LadderConfig::default());
        l.mark_unavailable(Mode::A16w8);
        l.mark_unavailable(Mode::Hybrid);
        assert_eq!(
            feed(&mut l, 2.0, 3),
            [Switch {
                from: Mode::Fp32,
                to: Mode::Int8
            }]
        );
        // Int8 fails to build when the element tries it: on to bicubic.
        assert_eq!(
            l.mark_unavailable(Mode::Int8),
            Some(Switch {
                from: Mode::Int8,
                to: Mode::Bicubic
            })
        );
        // Going up skips everything unavailable and lands on fp32.
        assert_eq!(
            feed(&mut l, 0.1, 10),
            [Switch {
                from: Mode::Bicubic,
                to: Mode::Fp32
            }]
        );
    }

    #[test]
    fn failed_step_up_returns_to_where_it_came_from() {
        let mut l = Ladder::new(Mode::A16w8, LadderConfig::default());
        feed(&mut l, 2.0, 3);
        assert_eq!(l.current(), Mode::Hybrid);
        assert_eq!(
            feed(&mut l, 0.1, 10),
            [Switch {
                from: Mode::Hybrid,
                to: Mode::A16w8
            }]
        );
        assert_eq!(
            l.mark_unavailable(Mode::A16w8),
            Some(Switch {
                from: Mode::A16w8,
                to: Mode::Hybrid
            })
        );
        assert!(feed(&mut l, 0.1, 100).is_empty());
    }

    #[test]
    fn nothing_below_bicubic_and_nothing_above_the_ceiling() {
        let mut l = Ladder::new(Mode::Bicubic, LadderConfig::default());
        assert!(feed(&mut l, 5.0, 20).is_empty());
        assert!(feed(&mut l, 0.0, 50).is_empty());
        assert_eq!(l.current(), Mode::Bicubic);
    }

    #[test]
    fn oscillation_backs_off() {
        let cfg = LadderConfig::default();
        let mut l = Ladder::new(Mode::Int8, cfg);
        feed(&mut l, 2.0, 3);
        assert_eq!(l.current(), Mode::Bicubic);
        assert_eq!(feed(&mut l, 0.5, cfg.up_after).len(), 1);
        // Int8 is too slow again right away: back down, and the next step up needs
        // twice the headroom.
        assert_eq!(feed(&mut l, 2.0, 3).len(), 1);
        assert!(feed(&mut l, 0.5, 2 * cfg.up_after - 1).is_empty());
        assert_eq!(feed(&mut l, 0.5, 1).len(), 1);
        assert_eq!(l.current(), Mode::Int8);
    }

    /// The scenario seen on a live 25 fps source with fp32 at ~1.4 s per frame:
    /// after fp32 fails, the rungs below it are still climbed at the normal pace,
    /// but fp32 itself needs twice the headroom, then four times, …
    #[test]
    fn backoff_is_per_mode() {
        let cfg = LadderConfig::default();
        let mut l = Ladder::new(Mode::Fp32, cfg);
        feed(&mut l, 2.0, 3);
        assert_eq!(l.current(), Mode::A16w8);
        assert_eq!(feed(&mut l, 0.5, cfg.up_after).len(), 1);
        assert_eq!(l.current(), Mode::Fp32);
        // fp32 is too slow: all the way down to bicubic.
        feed(&mut l, 2.0, 3 * 4);
        assert_eq!(l.current(), Mode::Bicubic);
        // Back up to a16w8 at the normal pace (3 steps of up_after)...
        assert_eq!(feed(&mut l, 0.5, 3 * cfg.up_after).len(), 3);
        assert_eq!(l.current(), Mode::A16w8);
        // ...but fp32 needs twice the headroom.
        assert!(feed(&mut l, 0.5, 2 * cfg.up_after - 1).is_empty());
        assert_eq!(
            feed(&mut l, 0.5, 1),
            [Switch {
                from: Mode::A16w8,
                to: Mode::Fp32
            }]
        );
        // Failing again quadruples it.
        feed(&mut l, 2.0, 3);
        assert_eq!(l.current(), Mode::A16w8);
        assert!(feed(&mut l, 0.5, 4 * cfg.up_after - 1).is_empty());
        assert_eq!(feed(&mut l, 0.5, 1).len(), 1);
        // Holding fp32 for 4 × up_after events forgives it.
        assert!(feed(&mut l, 0.9, 4 * cfg.up_after).is_empty());
        feed(&mut l, 2.0, 3);
        assert_eq!(l.current(), Mode::A16w8);
        // Lateness long after the step up is not the mode's fault: ×1.
        assert!(feed(&mut l, 0.5, cfg.up_after - 1).is_empty());
        assert_eq!(
            feed(&mut l, 0.5, 1),
            [Switch {
                from: Mode::A16w8,
                to: Mode::Fp32
            }]
        );
    }

    /// A mode measured slower than real time waits ×16 before it is retried.
    #[test]
    fn measured_cost_blocks_hopeless_step_ups() {
        let cfg = LadderConfig::default();
        let mut l = Ladder::new(Mode::Fp32, cfg);
        l.record_cost(Mode::Fp32, 35.0);
        feed(&mut l, 2.0, 3);
        assert_eq!(l.current(), Mode::A16w8);
        l.record_cost(Mode::A16w8, 0.5);
        assert!(feed(&mut l, 0.5, 16 * cfg.up_after - 1).is_empty());
        assert_eq!(feed(&mut l, 0.5, 1).len(), 1);
        // A cheaper measurement later lifts the block (moving average).
        feed(&mut l, 2.0, 3);
        for _ in 0..20 {
            l.record_cost(Mode::Fp32, 0.3);
        }
        assert_eq!(feed(&mut l, 0.5, 2 * cfg.up_after).len(), 1);
        assert!(l.cost[0].unwrap() < 1.0);
    }

    #[test]
    fn ignores_garbage_proportions() {
        let mut l = Ladder::new(Mode::Fp32, LadderConfig::default());
        assert!(feed(&mut l, f64::NAN, 10).is_empty());
        assert!(feed(&mut l, f64::INFINITY, 10).is_empty());
        assert!(feed(&mut l, -1.0, 10).is_empty());
        assert_eq!(l.current(), Mode::Fp32);
    }
}
