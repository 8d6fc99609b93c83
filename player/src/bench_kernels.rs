//! `nawqsr bench-kernels`: the machine's peak int8/int16 MAC/s per CPU level,
//! measured first in the same run, then every conv shape of IMDN_x4 (320×180)
//! and IMDN_RTC_x2 (960×540), and of the bundled nawq_x4 (320×180), nawq_x3
//! (640×360) and nawq_x2 (960×540), as GMAC/s and % of that level's peak, single thread.
use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use nawqsr_codec::kernels::bench::{bench_conv, bench_float_conv, measure_f32_peak, measure_peak};
use nawqsr_codec::kernels::{ConvGeom, CpuLevel};
use nawqsr_codec::model::{self, Op};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Directory holding IMDN_x4.onnx and IMDN_RTC_x2.onnx.
    #[arg(long, default_value = "../shared/models")]
    models: PathBuf,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 0.3)]
    min_time: f64,
    /// Only this level (default: every level the host supports).
    #[arg(long)]
    level: Option<String>,
    /// Only the shapes of these models (IMDN_x4, IMDN_RTC_x2, nawq_x4, nawq_x3,
    /// nawq_x2; repeatable). Default: all.
    #[arg(long)]
    only: Vec<String>,
    #[arg(long)]
    json: bool,
}

/// Distinct spatial conv shapes of a model at an LR size (1×1 pooled convs skipped).
fn shapes(g: &model::Graph, h: usize, w: usize) -> Result<Vec<ConvGeom>> {
    let mut set = BTreeSet::new();
    for l in &g.layers {
        if let Op::Conv(c) = &l.op {
            if g.values[l.inputs[0]].spatial == model::Spatial::Pooled {
                continue;
            }
            set.insert((c.kh, c.in_c, c.out_c));
        }
    }
    Ok(set
        .into_iter()
        .map(|(k, i, o)| ConvGeom::same(h, w, i, o, k))
        .collect())
}

pub fn run(a: Args) -> Result<()> {
    let levels = match &a.level {
        Some(l) => vec![CpuLevel::parse(l).ok_or_else(|| {
            anyhow::anyhow!("--level {l}: invalid (expected scalar, avx2, avx512vnni or amx)")
        })?],
        None => CpuLevel::supported(),
    };
    const MODELS: [&str; 5] = ["IMDN_x4", "IMDN_RTC_x2", "nawq_x4", "nawq_x3", "nawq_x2"];
    if let Some(m) = a.only.iter().find(|m| !MODELS.contains(&m.as_str())) {
        anyhow::bail!(
            "--only {m}: unknown model (expected one of {})",
            MODELS.join(", ")
        );
    }
    let wanted = |m: &str| a.only.is_empty() || a.only.iter().any(|o| o == m);
    let mut cases = vec![];
    for (m, h, w) in [("IMDN_x4", 180, 320), ("IMDN_RTC_x2", 540, 960)] {
        if !wanted(m) {
            continue;
        }
        let p = a.models.join(format!("{m}.onnx"));
        if p.is_file() {
            for g in shapes(&model::import(&p)?, h, w)? {
                cases.push((m, g));
            }
        } else {
            eprintln!("notice: {} not found, skipping its shapes", p.display());
        }
    }
    // The project's own models at their target sizes.
    for (s, h, w, name) in [
        (4, 180, 320, "nawq_x4"),
        (3, 360, 640, "nawq_x3"),
        (2, 540, 960, "nawq_x2"),
    ] {
        if !wanted(name) {
            continue;
        }
        for g in shapes(&model::import_bytes(&model::bundled::load(s)?)?, h, w)? {
            cases.push((name, g));
        }
    }
    if cases.is_empty() {
        eprintln!("notice: no model shapes; benchmarking the standard 3×3 64→64 at 320×180");
        cases.push(("generic", ConvGeom::same(180, 320, 64, 64, 3)));
    }
    let mut out = vec![];
    for level in levels {
        if level > CpuLevel::host_max() {
            anyhow::bail!(
                "--level {}: this host only supports up to {}",
                level.name(),
                CpuLevel::host_max().name()
            );
        }
        let peak = measure_peak(level);
        eprintln!(
            "{}: peak int8 {:.1} GMAC/s, int16 {:.1} GMAC/s (1 thread)",
            level.name(),
            peak.int8_macs_per_s / 1e9,
            peak.int16_macs_per_s / 1e9
        );
        eprintln!(
            "  {:<12} {:<22} {:>9} {:>7} {:>9} {:>7} {:>7}",
            "model", "conv", "INT8", "%peak", "A16W8", "%peak", "ratio"
        );
        let mut rows = vec![];
        for (m, g) in &cases {
            let i8 = bench_conv(level, g, false, a.min_time);
            let i16 = bench_conv(level, g, true, a.min_time);
            let (p8, p16) = (
                100.0 * i8.gmacs * 1e9 / peak.int8_macs_per_s,
                100.0 * i16.gmacs * 1e9 / peak.int16_macs_per_s,
            );
            let ratio = i16.median_s / i8.median_s;
            let name = format!(
                "{}x{} {}→{} {}x{}",
                g.kh, g.kw, g.in_c, g.out_c, g.in_w, g.in_h
            );
            eprintln!(
                "  {m:<12} {name:<22} {:>9.1} {p8:>6.0}% {:>9.1} {p16:>6.0}% {ratio:>7.2}",
                i8.gmacs, i16.gmacs
            );
            rows.push(json!({"model": m, "kh": g.kh, "in_c": g.in_c, "out_c": g.out_c, "w": g.in_w, "h": g.in_h,
                "int8_gmacs": i8.gmacs, "int8_pct_peak": p8, "a16w8_gmacs": i16.gmacs, "a16w8_pct_peak": p16,
                "a16w8_over_int8_time": ratio,
                // The table's two %peak columns, each against its own unit's peak.
                "pct_of_peak": {"int8": p8, "a16w8": p16}}));
        }
        out.push(
            json!({"level": level.name(), "peak_int8_gmacs": peak.int8_macs_per_s / 1e9,
            "peak_int16_gmacs": peak.int16_macs_per_s / 1e9, "convs": rows}),
        );
    }
    // The float conv kernel (FP32 mode, float partitions) against the f32
    // FMA peak, on the 3×3 shapes (issue 16 item 4's target: ≥ 50 %).
    let (flevel, fpeak) = measure_f32_peak();
    eprintln!(
        "float ({flevel}): peak {:.1} GMAC/s (1 thread)",
        fpeak / 1e9
    );
    eprintln!(
        "  {:<12} {:<22} {:>9} {:>7}",
        "model", "conv", "FP32", "%peak"
    );
    let mut frows = vec![];
    for (m, g) in cases.iter().filter(|(_, g)| g.kh == 3) {
        let (_, gmacs) = bench_float_conv(g, a.min_time);
        let pct = 100.0 * gmacs * 1e9 / fpeak;
        let name = format!(
            "{}x{} {}→{} {}x{}",
            g.kh, g.kw, g.in_c, g.out_c, g.in_w, g.in_h
        );
        eprintln!("  {m:<12} {name:<22} {gmacs:>9.1} {pct:>6.0}%");
        frows.push(json!({"model": m, "kh": g.kh, "in_c": g.in_c, "out_c": g.out_c, "w": g.in_w, "h": g.in_h,
            "fp32_gmacs": gmacs, "pct_of_peak": pct}));
    }
    if a.json {
        println!(
            "{}",
            json!({ "threads": 1, "levels": out,
                "float": {"level": flevel, "peak_gmacs": fpeak / 1e9, "convs": frows} })
        );
    }
    Ok(())
}
