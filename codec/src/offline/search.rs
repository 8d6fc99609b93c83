//! The baselines the paper compares against.
//!
//! - Table 1: simulated annealing (t₀ = 1, t_i = t₀·e^(−0.05 i)) and a genetic
//!   algorithm (population ⌈0.25·|L|⌉) over the wordlength vectors, each with
//!   the same wall-clock budget as QuantSR-WLopt's run; the score is the BOPs
//!   reduction vs uniform A16W8 of the best design that meets the constraint.
//! - Table 2: RandDRE, NAWQ-SR's wordlengths with a uniformly random number of
//!   DRE layers placed on uniformly random layers (§5.2).
//!
//! Both searches minimise one scalar: BOPs / BOPs(A16W8) ∈ [0.5, 1] for a
//! design within ε, and 1 + (violation in dB) otherwise, so every infeasible
//! design ranks below every feasible one and less-violating ones rank higher.
use std::time::{Duration, Instant};

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::{Config, Quality, bops};
use crate::error::Result;
use crate::quant::Bits;

/// Best design one search run found.
#[derive(Clone, Debug)]
pub struct SearchResult {
    /// Best feasible wordlengths (None if the run met no feasible design).
    pub best: Option<Vec<Bits>>,
    /// Its BOPs reduction vs uniform A16W8 (1.0 when none was found: the
    /// fallback is A16W8 itself).
    pub reduction: f64,
    /// Quality evaluations requested (including repeats served from cache).
    pub evaluations: usize,
    pub elapsed: Duration,
}

struct Objective<'q, 'a> {
    quality: &'q mut Quality<'a>,
    macs: &'q [u64],
    a16: f64,
    q_ref: f64,
    eps: f64,
    best: Option<(f64, Vec<Bits>)>,
    evaluations: usize,
}

impl Objective<'_, '_> {
    fn cost(&mut self, bits: &[Bits]) -> Result<f64> {
        self.evaluations += 1;
        let c = Config::integer(bits.to_vec(), vec![false; bits.len()]);
        let q = (self.quality)(&c)?;
        let violation = self.q_ref - q - self.eps;
        if violation <= 0.0 {
            let rel = bops::bops(self.macs, bits) as f64 / self.a16;
            if self.best.as_ref().is_none_or(|(b, _)| rel < *b) {
                self.best = Some((rel, bits.to_vec()));
            }
            Ok(rel)
        } else {
            Ok(1.0 + violation)
        }
    }

    fn result(self, start: Instant) -> SearchResult {
        let (reduction, best) = match self.best {
            Some((rel, b)) => (1.0 / rel, Some(b)),
            None => (1.0, None),
        };
        SearchResult {
            best,
            reduction,
            evaluations: self.evaluations,
            elapsed: start.elapsed(),
        }
    }
}

fn objective<'q, 'a>(
    quality: &'q mut Quality<'a>,
    macs: &'q [u64],
    q_ref: f64,
    eps: f64,
) -> Objective<'q, 'a> {
    let a16 = bops::bops(macs, &vec![Bits::B16; macs.len()]) as f64;
    Objective {
        quality,
        macs,
        a16,
        q_ref,
        eps,
        best: None,
        evaluations: 0,
    }
}

fn flip(b: Bits) -> Bits {
    match b {
        Bits::B8 => Bits::B16,
        Bits::B16 => Bits::B8,
    }
}

/// Simulated annealing [68] from uniform A16W8 (WLopt's starting point): each
/// iteration flips one random layer's wordlength and accepts a worse design
/// with probability e^(−Δ/t_i), t_i = t₀·e^(−0.05 i), t₀ = 1 (Table 1 footnote).
pub fn simulated_annealing(
    quality: &mut Quality,
    macs: &[u64],
    q_ref: f64,
    eps: f64,
    budget: Duration,
    seed: u64,
) -> Result<SearchResult> {
    let start = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut obj = objective(quality, macs, q_ref, eps);
    let n = macs.len();
    let mut x = vec![Bits::B16; n];
    let mut fx = obj.cost(&x)?;
    let t0 = 1.0f64;
    let mut i = 0u32;
    while start.elapsed() < budget && n > 0 {
        let t = t0 * (-0.05 * i as f64).exp();
        let mut y = x.clone();
        let l = rng.random_range(0..n);
        y[l] = flip(y[l]);
        let fy = obj.cost(&y)?;
        let d = fy - fx;
        if d <= 0.0 || rng.random::<f64>() < (-d / t).exp() {
            x = y;
            fx = fy;
        }
        i += 1;
    }
    Ok(obj.result(start))
}

/// A generational genetic algorithm [69]: population ⌈0.25·|L|⌉ (Table 1
/// footnote), binary tournament selection, uniform crossover, per-gene
/// mutation 1/|L|, one elite. The initial population is uniform A16W8 (the
/// feasible design the other searches start from) plus random designs, each
/// with its own probability of 8-bit genes so that all BOPs levels appear.
pub fn genetic(
    quality: &mut Quality,
    macs: &[u64],
    q_ref: f64,
    eps: f64,
    budget: Duration,
    seed: u64,
) -> Result<SearchResult> {
    let start = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut obj = objective(quality, macs, q_ref, eps);
    let n = macs.len();
    if n == 0 {
        return Ok(obj.result(start));
    }
    let pop_size = (n as f64 * 0.25).ceil().max(2.0) as usize;
    let mut pop: Vec<(Vec<Bits>, f64)> = Vec::with_capacity(pop_size);
    let a16 = vec![Bits::B16; n];
    let f = obj.cost(&a16)?;
    pop.push((a16, f));
    while pop.len() < pop_size && start.elapsed() < budget {
        let p8: f64 = rng.random();
        let g: Vec<Bits> = (0..n)
            .map(|_| {
                if rng.random::<f64>() < p8 {
                    Bits::B8
                } else {
                    Bits::B16
                }
            })
            .collect();
        let f = obj.cost(&g)?;
        pop.push((g, f));
    }
    let pm = 1.0 / n as f64;
    'outer: while start.elapsed() < budget {
        pop.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut next = vec![pop[0].clone()];
        while next.len() < pop_size {
            if start.elapsed() >= budget {
                break 'outer;
            }
            let pick = |rng: &mut rand::rngs::StdRng| {
                let a = &pop[rng.random_range(0..pop.len())];
                let b = &pop[rng.random_range(0..pop.len())];
                if a.1 <= b.1 { a.0.clone() } else { b.0.clone() }
            };
            let (pa, pb) = (pick(&mut rng), pick(&mut rng));
            let child: Vec<Bits> = (0..n)
                .map(|l| {
                    let g = if rng.random::<bool>() { pa[l] } else { pb[l] };
                    if rng.random::<f64>() < pm { flip(g) } else { g }
                })
                .collect();
            let f = obj.cost(&child)?;
            next.push((child, f));
        }
        pop = next;
    }
    Ok(obj.result(start))
}

/// RandDRE (§5.2): a number of DRE layers uniform in 1..=n, then that many
/// layers uniformly at random. Returns the DRE flag per conv position.
pub fn rand_dre(n: usize, seed: u64) -> Vec<bool> {
    let mut d = vec![false; n];
    if n == 0 {
        return d;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let k = rng.random_range(1..=n);
    for p in sample(&mut rng, n, k) {
        d[p] = true;
    }
    d
}
